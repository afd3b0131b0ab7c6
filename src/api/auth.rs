//! Who may call what: the scope each request needs ([`required`], the one table), and
//! the middleware in front of every `/api/v1` resource that checks the bearer token with
//! [`crate::auth::verify`] and hands the handler its [`Principal`] (the actor its writes
//! record). 401 with `WWW-Authenticate: Bearer` (RFC 6750) when the token is missing,
//! wrong, revoked or expired; 403 with `error="insufficient_scope"` when its scope is too
//! small. Knows no resource: paths are matched by their first segment only.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiState, Problem};
use crate::auth::{self, AuthError, Principal, Scope};

/// The scope a request needs: `read` for every GET (and HEAD); `operate` to change
/// machines and pins, and for boot actions (boot-once, releasing holds) and a rollout's
/// commands (start, pause, …); `admin` for everything else (images, blobs, tokens,
/// webhooks, and creating a rollout: it decides what a fleet boots).
pub(crate) fn required(method: &Method, path: &str) -> Scope {
    if method == Method::GET || method == Method::HEAD {
        return Scope::Read;
    }
    let mut segments = path.strip_prefix("/api/v1/").unwrap_or("").split('/');
    let resource = segments.next().unwrap_or("");
    match resource {
        "machines" | "pins" | "boots" | "holds" => Scope::Operate,
        // `/rollouts/{name}/{command}`; creating one (`/rollouts`) is admin's.
        "rollouts" if segments.nth(1).is_some_and(|c| !c.is_empty()) => Scope::Operate,
        _ => Scope::Admin,
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The middleware: verifies, checks the scope, and passes the [`Principal`] on as a
/// request extension.
pub(crate) async fn require(State(st): State<ApiState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let needed = required(req.method(), &path);
    let verified = match bearer(req.headers()) {
        None => Err(AuthError::Missing),
        Some(t) => auth::verify(&st.store, t).await,
    };
    match verified {
        Ok(p) if p.allows(needed) => {
            tracing::debug!(actor = %p.name, scope = %p.scope, "api: authorised");
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Ok(p) => challenge(
            Problem::forbidden(
                &path,
                format!(
                    "token {:?} has scope {}; {} {path} needs {needed}",
                    p.name,
                    p.scope,
                    req.method()
                ),
            ),
            format!(r#"Bearer realm="tabula", error="insufficient_scope", scope="{needed}""#),
        ),
        Err(e @ AuthError::Missing) => challenge(
            Problem::unauthorized(&path, e.to_string()),
            r#"Bearer realm="tabula""#.to_string(),
        ),
        Err(e) if e.is_credentials() => challenge(
            Problem::unauthorized(&path, e.to_string()),
            format!(r#"Bearer realm="tabula", error="invalid_token", error_description="{e}""#),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "api: cannot verify a token");
            Problem::unavailable(&path).into_response()
        }
    }
}

/// `problem` with its `WWW-Authenticate` challenge.
fn challenge(problem: Problem, www: String) -> Response {
    let mut res = problem.into_response();
    if let Ok(v) = HeaderValue::from_str(&www) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// The principal of an authorised request (the middleware put it there).
pub(crate) type Actor = axum::Extension<Principal>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_get_is_read_machines_and_pins_operate_the_rest_admin() {
        let p = "/api/v1/images/demo/versions/1";
        assert_eq!(required(&Method::GET, p), Scope::Read);
        assert_eq!(required(&Method::HEAD, "/api/v1/tokens"), Scope::Read);
        assert_eq!(required(&Method::DELETE, p), Scope::Admin);
        assert_eq!(
            required(&Method::PUT, "/api/v1/blobs/sha256/00"),
            Scope::Admin
        );
        assert_eq!(required(&Method::POST, "/api/v1/machines"), Scope::Operate);
        assert_eq!(
            required(&Method::PATCH, "/api/v1/machines/a"),
            Scope::Operate
        );
        assert_eq!(
            required(&Method::PUT, "/api/v1/pins/default"),
            Scope::Operate
        );
        assert_eq!(required(&Method::POST, "/api/v1/pinsx"), Scope::Admin);
        assert_eq!(required(&Method::POST, "/api/v1/tokens"), Scope::Admin);
        assert_eq!(required(&Method::POST, "/api/v1/rollouts"), Scope::Admin);
        assert_eq!(required(&Method::POST, "/api/v1/rollouts/r1"), Scope::Admin);
        assert_eq!(
            required(&Method::POST, "/api/v1/rollouts/r1/start"),
            Scope::Operate
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/machines/n1/boot-once"),
            Scope::Operate
        );
        assert_eq!(
            required(&Method::DELETE, "/api/v1/machines/n1/hold"),
            Scope::Operate
        );
        assert_eq!(required(&Method::POST, "/api/v1/webhooks"), Scope::Admin);
        assert_eq!(
            required(&Method::DELETE, "/api/v1/webhooks/wh_1"),
            Scope::Admin
        );
    }

    #[test]
    fn bearer_tokens_are_read_in_any_case_and_nothing_else() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(bearer(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&h("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&h("Basic abc")), None);
        assert_eq!(bearer(&h("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
