//! Problem details (RFC 9457, `application/problem+json`): how the API listener says no,
//! and the one place its error status codes are chosen. Pure apart from being an axum
//! response; knows nothing of the resources that use it.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::fleet::{FleetError, Kind};
use crate::store::StoreError;

/// The media type of a problem document.
pub(crate) const MEDIA_TYPE: &str = "application/problem+json";

/// One problem document. `type` is `about:blank` where the status says it all (no
/// route, wrong method, a malformed query), with the status's reason phrase as `title`;
/// otherwise one of the stable [`types`], each with its own `title`.
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
    /// Extension members: what the problem is about.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub about: Option<Box<About>>,
}

/// The extension members of a [`Problem`] (boxed: most problems have none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct About {
    /// The kind of thing a not-found or conflict is about (`machine`, `pin`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'static str>,
    /// The name of that thing, or the request field that is not acceptable.
    pub name: String,
}

/// The stable problem types: `(type, title)`. Clients match on `type`, never on text.
pub(crate) mod types {
    pub(crate) const UNAUTHORIZED: (&str, &str) = (
        "urn:tabula:problem:unauthorized",
        "A valid token is required",
    );
    pub(crate) const FORBIDDEN: (&str, &str) = (
        "urn:tabula:problem:insufficient-scope",
        "The token's scope does not allow this",
    );
    pub(crate) const NOT_FOUND: (&str, &str) = ("urn:tabula:problem:not-found", "No such resource");
    pub(crate) const CONFLICT: (&str, &str) = (
        "urn:tabula:problem:conflict",
        "The request conflicts with the current state",
    );
    pub(crate) const INVALID: (&str, &str) = (
        "urn:tabula:problem:invalid",
        "A value of the request is not acceptable",
    );
    pub(crate) const BAD_BODY: (&str, &str) = (
        "urn:tabula:problem:malformed-body",
        "The request body cannot be read",
    );
    pub(crate) const UNKNOWN_REFERENCE: (&str, &str) = (
        "urn:tabula:problem:unknown-reference",
        "The request names something that does not exist",
    );
    pub(crate) const INTERNAL: (&str, &str) = (
        "urn:tabula:problem:internal",
        "The server failed; the log says why",
    );
    pub(crate) const STORE_UNAVAILABLE: (&str, &str) = (
        "urn:tabula:problem:store-unavailable",
        "The state store is unreachable: writes are refused until it is back",
    );
    pub(crate) const DIGEST_MISMATCH: (&str, &str) = (
        "urn:tabula:problem:digest-mismatch",
        "The uploaded bytes do not hash to the digest named",
    );
}

impl Problem {
    fn new(status: StatusCode, detail: String, instance: Option<String>) -> Problem {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or(""),
            status: status.as_u16(),
            detail,
            instance,
            about: None,
        }
    }

    /// A problem of one of the stable [`types`].
    pub(crate) fn typed(
        status: StatusCode,
        (kind, title): (&'static str, &'static str),
        path: &str,
        detail: String,
    ) -> Problem {
        Problem {
            kind,
            title,
            ..Problem::new(status, detail, Some(path.to_string()))
        }
    }

    /// With the thing it is about (extension members `resource` and `name`).
    pub(crate) fn about(mut self, resource: Option<&'static str>, name: String) -> Problem {
        self.about = Some(Box::new(About { resource, name }));
        self
    }

    /// 401: no usable token (the caller adds the `WWW-Authenticate` challenge).
    pub(crate) fn unauthorized(path: &str, detail: String) -> Problem {
        Problem::typed(StatusCode::UNAUTHORIZED, types::UNAUTHORIZED, path, detail)
    }

    /// 403: a valid token whose scope is too small.
    pub(crate) fn forbidden(path: &str, detail: String) -> Problem {
        Problem::typed(StatusCode::FORBIDDEN, types::FORBIDDEN, path, detail)
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

    /// 503 `store-unavailable`: a write while this server runs degraded (its membership
    /// heartbeat cannot reach the store), refused before it reaches the resource.
    pub(crate) fn store_unavailable(path: &str) -> Problem {
        Problem::typed(
            StatusCode::SERVICE_UNAVAILABLE,
            types::STORE_UNAVAILABLE,
            path,
            "this server cannot reach the state store (degraded mode, see /readyz); \
             machines with a known plan keep booting, writes wait until the store is back"
                .to_string(),
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

    /// The answer for a fleet error about the resource at `path`, whose own kind is
    /// `subject`: not found (404) when the resource itself is missing; something the
    /// request names missing, 422 `unknown-reference`; conflict, 409; invalid, 422; a
    /// store failure, 503; anything else, 500 (both logged, not shown).
    pub(crate) fn fleet(path: &str, subject: Kind, e: FleetError) -> Problem {
        match e {
            FleetError::NotFound {
                kind,
                name,
                message,
            } => {
                let p = if kind == subject {
                    Problem::typed(StatusCode::NOT_FOUND, types::NOT_FOUND, path, message)
                } else {
                    Problem::typed(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        types::UNKNOWN_REFERENCE,
                        path,
                        message,
                    )
                };
                p.about(Some(kind.as_str()), name)
            }
            FleetError::Conflict {
                kind,
                name,
                message,
            } => Problem::typed(StatusCode::CONFLICT, types::CONFLICT, path, message)
                .about(Some(kind.as_str()), name),
            FleetError::Invalid { field, message, .. } => Problem::invalid(path, field, message),
            FleetError::Store(e) => {
                tracing::warn!(error = %e, path, "api: state store failed");
                Problem::unavailable(path)
            }
            e => Problem::internal(path, &e),
        }
    }

    /// 404 for a `resource` named `name` at `path`.
    pub(crate) fn missing(
        path: &str,
        resource: &'static str,
        name: &str,
        detail: String,
    ) -> Problem {
        Problem::typed(StatusCode::NOT_FOUND, types::NOT_FOUND, path, detail)
            .about(Some(resource), name.to_string())
    }

    /// 422: request `field` is not acceptable.
    pub(crate) fn invalid(path: &str, field: &str, detail: String) -> Problem {
        Problem::typed(
            StatusCode::UNPROCESSABLE_ENTITY,
            types::INVALID,
            path,
            detail,
        )
        .about(None, field.to_string())
    }

    /// 500, logged with `e`.
    pub(crate) fn internal(path: &str, e: &dyn std::fmt::Display) -> Problem {
        tracing::warn!(error = %e, path, "api: request failed");
        Problem::typed(
            StatusCode::INTERNAL_SERVER_ERROR,
            types::INTERNAL,
            path,
            "the server failed to do this; its log says why".to_string(),
        )
    }

    /// 503 for a failed store read, logged.
    pub(crate) fn store(path: &str, e: &StoreError) -> Problem {
        tracing::warn!(error = %e, path, "api: state store failed");
        Problem::unavailable(path)
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
