//! Problem details (RFC 9457, `application/problem+json`): how the API listener says no,
//! and the one place its error status codes are chosen. Pure apart from being an axum
//! response; knows nothing of the resources that use it.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of a problem document.
pub(crate) const MEDIA_TYPE: &str = "application/problem+json";

/// One problem document. `type` is always `about:blank` (the status says it all), so
/// `title` is the status's reason phrase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// What went wrong with this request, for a person.
    pub detail: String,
    /// The path the problem is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, detail: String, instance: Option<String>) -> Problem {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or(""),
            status: status.as_u16(),
            detail,
            instance,
        }
    }

    /// No resource at `path`.
    pub(crate) fn not_found(path: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            format!("no API resource at {path}"),
            Some(path.to_string()),
        )
    }

    /// A request the resource at `path` cannot take, and why.
    pub(crate) fn bad_request(path: &str, detail: String) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail, Some(path.to_string()))
    }

    /// The resource at `path` failed for a reason of the server's (logged, not shown).
    pub(crate) fn unavailable(path: &str) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state store did not answer; try again".to_string(),
            Some(path.to_string()),
        )
    }

    /// The request to `path` needs credentials it did not bring (the caller adds
    /// `WWW-Authenticate`).
    pub(crate) fn unauthorized(path: &str, detail: &str) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            detail.to_string(),
            Some(path.to_string()),
        )
    }

    /// The resource at `path` does not take `method`.
    pub(crate) fn method_not_allowed(method: &Method, path: &str) -> Problem {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} does not take {method}"),
            Some(path.to_string()),
        )
    }

    /// The status code.
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = (status, axum::Json(self)).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        res
    }
}
