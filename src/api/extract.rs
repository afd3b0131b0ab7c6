//! Request extractors that say no in problem+json: a JSON body ([`Body`]: malformed
//! JSON 400, well-formed but wrong 422, not JSON 415, as axum classifies them) and a
//! query string ([`Params`]: 400). Nothing else.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::Problem;
use super::problem::types;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let path = req.uri().path().to_string();
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(e) => Err(Problem::typed(
                e.status(),
                types::BAD_BODY,
                &path,
                e.body_text(),
            )),
        }
    }
}

/// A query string of type `T`.
#[derive(Debug)]
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(e) => Err(Problem::bad_request(parts.uri.path(), e.body_text())),
        }
    }
}
