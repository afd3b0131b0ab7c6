//! The web dashboard under `/ui/` on the API listener: server-rendered pages (askama
//! templates compiled into the binary, assets by `include_str!`, no CDN), one file per
//! page, each calling the same facade and read models the CLI calls.
//!
//! | route | what |
//! |---|---|
//! | `GET /ui/login`, `POST /ui/login`, `POST /ui/logout` | sign in with an API token, sign out ([`session`]) |
//! | `GET /ui/` | the fleet, grouped by state ([`fleet`]) |
//! | `GET /ui/machines/{name}`, `POST …/pin`, `…/rollback`, `…/release`, `…/boot-once` | one machine ([`machine`], [`machine_fleet`]) |
//! | `GET /ui/rollouts`, `GET /ui/rollouts/{name}`, `POST …/{command}` | rollouts: steps, budget, versions over time, members; pause, resume, promote, abort ([`rollouts`]) |
//! | `GET /ui/images` | versions, channels, who runs what, a diff ([`images`]) |
//! | `GET /ui/live`, `GET /ui/live/stream` | the live feed and storm view ([`live`]) |
//! | `GET /ui/assets/{file}` | the stylesheet and the live page's script |
//!
//! Auth: a session cookie (HttpOnly, SameSite=Strict, Path=/ui) names an in-memory
//! session holding the token it was opened with; every request re-verifies that token,
//! so a revoked or expired token ends its sessions at once. Every form carries the
//! session's CSRF token. What a page offers follows the token's scope. Every answer
//! carries `Server-Timing: app;dur=<ms>` (the benchmark reads it).
//!
//! Must not: write anything but through [`crate::fleet::Fleet`], or import the data plane.

mod fleet;
mod images;
mod live;
mod machine;
mod machine_fleet;
mod rollout_view;
mod rollouts;
mod session;
mod state;
mod timeline;

use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::ApiState;
use crate::auth::{Principal, Scope};

pub(crate) use session::Sessions;

/// The dashboard's shared state: the API's, and the open sessions.
#[derive(Clone, Debug)]
pub(crate) struct Ui {
    pub api: ApiState,
    pub sessions: Arc<Sessions>,
}

/// Every `/ui` route, with its state bound (merge it into the API router).
pub(crate) fn router<S: Clone + Send + Sync + 'static>(api: ApiState) -> Router<S> {
    let ui = Ui {
        api,
        sessions: Arc::new(Sessions::default()),
    };
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(fleet::page))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/machines/{name}", get(machine::page))
        .route("/ui/machines/{name}/pin", post(machine::pin))
        .route("/ui/machines/{name}/rollback", post(machine::rollback))
        .route("/ui/machines/{name}/release", post(machine_fleet::release))
        .route(
            "/ui/machines/{name}/boot-once",
            post(machine_fleet::boot_once),
        )
        .route("/ui/rollouts", get(rollouts::list))
        .route("/ui/rollouts/{name}", get(rollouts::page))
        .route("/ui/rollouts/{name}/{command}", post(rollouts::command))
        .route("/ui/images", get(images::page))
        .route("/ui/live", get(live::page))
        .route("/ui/live/stream", get(live::stream))
        .route("/ui/assets/{file}", get(asset))
        .layer(middleware::from_fn(timing))
        .with_state(ui)
}

/// What every page's frame shows: who is signed in, the form token, the active tab.
#[derive(Clone, Debug)]
pub(crate) struct Chrome {
    pub user: String,
    pub scope: Scope,
    pub csrf: String,
    pub tab: &'static str,
}

impl Chrome {
    pub(crate) fn new(p: &Principal, csrf: &str, tab: &'static str) -> Chrome {
        Chrome {
            user: p.name.clone(),
            scope: p.scope,
            csrf: csrf.to_string(),
            tab,
        }
    }

    /// Whether the signed-in token may change pins and machines.
    pub(crate) fn can_operate(&self) -> bool {
        self.scope >= Scope::Operate
    }
}

/// Renders a template, or a 500 that says why.
pub(crate) fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "ui: template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// A page that explains a failure in one sentence.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Option<Chrome>,
    status: u16,
    message: &'a str,
}

/// `status` with `message`, in the dashboard's frame when someone is signed in.
pub(crate) fn error(status: StatusCode, chrome: Option<Chrome>, message: &str) -> Response {
    let page = ErrorPage {
        chrome,
        status: status.as_u16(),
        message,
    };
    let mut res = render(&page);
    *res.status_mut() = status;
    res
}

/// The stylesheet and the live page's script, compiled in.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "ui.css" => (include_str!("assets/ui.css"), "text/css; charset=utf-8"),
        "live.js" => (
            include_str!("assets/live.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return error(StatusCode::NOT_FOUND, None, "no such asset"),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Adds `Server-Timing: app;dur=<ms>` and the pages' security headers.
async fn timing(req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let mut res = next.run(req).await;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={ms:.1}")) {
        h.insert("server-timing", v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; style-src-attr 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// A Unix-ms time as pages print it: UTC, to the second (`2026-12-02 04:18:41`).
pub(crate) fn when(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}
