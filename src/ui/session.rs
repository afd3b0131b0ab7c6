//! Sessions: sign in with an API token, sign out, and the check every page makes.
//!
//! `POST /ui/login` verifies the token with [`crate::auth::verify`] and opens a session
//! held in memory (a restart signs everyone out; no table): a random 32-byte id in the
//! cookie `tabula_session` (`HttpOnly; SameSite=Strict; Path=/ui`), the token itself
//! (never sent back), and a random CSRF token that every form of the session carries.
//! Each request re-verifies the session's token, so revoking the token ends the session.
//! The login form is protected by a double-submit token: a `tabula_login` cookie whose
//! value the form must repeat. A POST without the right token is refused with 403 and
//! changes nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Chrome, Ui, error, render};
use crate::auth::{self, Principal};

/// The session cookie.
const COOKIE: &str = "tabula_session";
/// The login form's double-submit cookie.
const LOGIN_COOKIE: &str = "tabula_login";
/// A session ends this long after it was opened.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// At most this many sessions are kept; past it the oldest is closed.
const MAX_SESSIONS: usize = 4096;

#[derive(Debug)]
struct Session {
    token: String,
    csrf: String,
    opened: Instant,
}

/// The open sessions, by id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `token`: (id, csrf).
    fn open(&self, token: String) -> (String, String) {
        let id = random_hex();
        let csrf = random_hex();
        let mut open = self.lock();
        open.retain(|_, s| s.opened.elapsed() < LIFETIME);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.opened)
                .map(|(k, _)| k.clone())
        {
            open.remove(&oldest);
        }
        open.insert(
            id.clone(),
            Session {
                token,
                csrf: csrf.clone(),
                opened: Instant::now(),
            },
        );
        (id, csrf)
    }

    /// The token and CSRF token of a live session.
    fn get(&self, id: &str) -> Option<(String, String)> {
        let mut open = self.lock();
        match open.get(id) {
            Some(s) if s.opened.elapsed() < LIFETIME => Some((s.token.clone(), s.csrf.clone())),
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// 32 random bytes in hex.
fn random_hex() -> String {
    let mut b = [0u8; 32];
    // getrandom failing means the OS has no randomness: nothing safe can be done.
    if getrandom::fill(&mut b).is_err() {
        tracing::error!("ui: no randomness for a session id");
    }
    hex::encode(b)
}

/// Equal in time that depends only on the lengths.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && std::hint::black_box(
            a.bytes()
                .zip(b.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y)),
        ) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A signed-in request: who, and the session's CSRF token. As an extractor it sends
/// anyone not signed in to the login page (and a request for the event stream gets 401).
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub principal: Principal,
    pub csrf: String,
}

impl Signed {
    pub(crate) fn chrome(&self, tab: &'static str) -> Chrome {
        Chrome::new(&self.principal, &self.csrf, tab)
    }

    /// Whether `given` is this session's CSRF token.
    pub(crate) fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| same(g, &self.csrf))
    }
}

/// The `csrf` field of a posted form whose other fields do not matter (a command button);
/// `None` when the body is not a form or has no such field.
pub(crate) fn form_csrf(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct CsrfOnly {
        csrf: Option<String>,
    }
    serde_urlencoded::from_str::<CsrfOnly>(body)
        .ok()
        .and_then(|f| f.csrf)
}

impl FromRequestParts<Ui> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Signed, Response> {
        let to_login = |why: &str| {
            if parts.uri.path().ends_with("/stream") {
                (StatusCode::UNAUTHORIZED, why.to_string()).into_response()
            } else {
                let next = parts.uri.path_and_query().map_or("/ui/", |p| p.as_str());
                Redirect::to(&format!("/ui/login?next={}", urlencode(next))).into_response()
            }
        };
        let Some(id) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login("not signed in"));
        };
        let Some((token, csrf)) = ui.sessions.get(id) else {
            return Err(to_login("the session has ended"));
        };
        match auth::verify(&ui.api.store, &token).await {
            Ok(principal) => Ok(Signed { principal, csrf }),
            Err(e) if e.is_credentials() => {
                ui.sessions.close(id);
                Err(to_login("the token is no longer valid"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "ui: cannot verify a session's token");
                Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "the state store cannot be read",
                ))
            }
        }
    }
}

/// Percent-encodes for a query value.
pub(crate) fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|t| t.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// Only local dashboard paths are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    chrome: Option<Chrome>,
    csrf: &'a str,
    next: &'a str,
    message: Option<&'a str>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// `GET /ui/login`: the form, with a fresh double-submit token.
pub(crate) async fn login_page(
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    login_form(&safe_next(q.next.as_deref()), None, StatusCode::OK)
}

fn login_form(next: &str, message: Option<&str>, status: StatusCode) -> Response {
    let csrf = random_hex();
    let mut res = render(&LoginPage {
        chrome: None,
        csrf: &csrf,
        next,
        message,
    });
    *res.status_mut() = status;
    set_cookie(
        &mut res,
        &format!("{LOGIN_COOKIE}={csrf}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=3600"),
    );
    res
}

fn set_cookie(res: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[derive(Debug, serde::Deserialize)]
struct LoginForm {
    token: String,
    csrf: Option<String>,
    next: Option<String>,
}

/// `POST /ui/login`: checks the form token, verifies the API token, opens a session.
pub(crate) async fn login(State(ui): State<Ui>, headers: HeaderMap, body: String) -> Response {
    let Ok(form) = serde_urlencoded::from_str::<LoginForm>(&body) else {
        return error(StatusCode::BAD_REQUEST, None, "the form is incomplete");
    };
    let expected = cookie(&headers, LOGIN_COOKIE);
    let csrf_ok = matches!((expected, form.csrf.as_deref()), (Some(e), Some(g)) if same(e, g));
    if !csrf_ok {
        return error(
            StatusCode::FORBIDDEN,
            None,
            "the form's CSRF token is missing or wrong: reload the sign-in page",
        );
    }
    let next = safe_next(form.next.as_deref());
    let token = form.token.trim().to_string();
    match auth::verify(&ui.api.store, &token).await {
        Ok(p) => {
            tracing::info!(actor = %p.name, scope = %p.scope, "ui: signed in");
            let (id, _) = ui.sessions.open(token);
            let mut res = Redirect::to(&next).into_response();
            set_cookie(
                &mut res,
                &format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=43200"),
            );
            set_cookie(
                &mut res,
                &format!("{LOGIN_COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
            );
            res
        }
        Err(e) if e.is_credentials() => {
            login_form(&next, Some(&e.to_string()), StatusCode::UNAUTHORIZED)
        }
        Err(e) => {
            tracing::warn!(error = %e, "ui: cannot verify a token");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the state store cannot be read",
            )
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /ui/logout`: closes the session (with its CSRF token).
pub(crate) async fn logout(
    State(ui): State<Ui>,
    signed: Signed,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form: CsrfForm = serde_urlencoded::from_str(&body).unwrap_or(CsrfForm { csrf: None });
    if !signed.csrf_ok(form.csrf.as_deref()) {
        return forged(&signed);
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        ui.sessions.close(id);
    }
    let mut res = Redirect::to("/ui/login").into_response();
    set_cookie(
        &mut res,
        &format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

/// The answer to a form post without the session's CSRF token.
pub(crate) fn forged(signed: &Signed) -> Response {
    tracing::warn!(actor = %signed.principal.name, "ui: form post without its CSRF token refused");
    error(
        StatusCode::FORBIDDEN,
        Some(signed.chrome("")),
        "refused: the form's CSRF token is missing or wrong (reload the page and try again)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tabula_session=abc; tabula_session_x=no"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/ui/machines/n1")), "/ui/machines/n1");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("//evil.example/ui/")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn sessions_open_find_and_close() {
        let s = Sessions::default();
        let (id, csrf) = s.open("t".into());
        assert_eq!(s.get(&id), Some(("t".into(), csrf.clone())));
        assert_ne!(id, csrf);
        s.close(&id);
        assert_eq!(s.get(&id), None);
        assert!(same("ab", "ab") && !same("ab", "ac") && !same("ab", "abc"));
    }
}
