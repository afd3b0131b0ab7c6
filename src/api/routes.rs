//! The `/api/v1` resources: one table ([`TABLE`]) of every route with its scope and what
//! it does, which the OpenAPI document ([`super::openapi`]) is generated from, and the
//! router that wires the same routes to their handlers behind the token check
//! ([`super::auth::require`]). A unit test holds the two together: every route of the
//! table is served, and its scope is the one [`super::auth::required`] enforces.

use axum::Router;
use axum::middleware;
use axum::routing::{get, post, put};

use super::{
    ApiState, auth, blobs, event_list, events, explain, fleet_machines, images, leases, machines,
    pins, rollouts, servers, timeline, tokens, webhooks,
};
use crate::auth::Scope;

/// One route, as documented.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Route {
    pub method: &'static str,
    /// The path, with `{name}` parameters as axum and OpenAPI both write them.
    pub path: &'static str,
    pub scope: Scope,
    pub summary: &'static str,
    /// The schema of its JSON body, if it takes one (in [`super::openapi`]'s components).
    pub body: Option<&'static str>,
    /// Its query parameters: name and meaning.
    pub query: &'static [(&'static str, &'static str)],
}

impl Route {
    /// With query parameters.
    const fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Route {
        self.query = query;
        self
    }
}

/// `?limit` and `?after`, the same on every list ([`super::page`]).
const PAGE: &[(&str, &str)] = &[
    ("limit", "page size, 1-1000 (default 100)"),
    ("after", "cursor: the `next` of the previous page"),
];

const fn r(
    method: &'static str,
    path: &'static str,
    scope: Scope,
    summary: &'static str,
    body: Option<&'static str>,
) -> Route {
    Route {
        method,
        path,
        scope,
        summary,
        body,
        query: &[],
    }
}

use Scope::{Admin, Operate, Read};

/// Every authenticated route.
pub(crate) const TABLE: &[Route] = &[
    r(
        "get",
        "/api/v1/machines",
        Read,
        "List machines (?selector=k=v,k2=a|b, ?limit, ?after)",
        None,
    )
    .query(&[
        ("selector", "label selector k=v,k2=a|b"),
        ("limit", "page size, 1-1000 (default 100)"),
        ("after", "cursor: the `next` of the previous page"),
    ]),
    r(
        "post",
        "/api/v1/machines",
        Operate,
        "Create a machine",
        Some("NewMachine"),
    ),
    r(
        "get",
        "/api/v1/machines/{name}",
        Read,
        "Get a machine",
        None,
    ),
    r(
        "patch",
        "/api/v1/machines/{name}",
        Operate,
        "Patch labels, hostname, address, UUID or MACs (JSON merge patch)",
        Some("MachinePatch"),
    ),
    r(
        "delete",
        "/api/v1/machines/{name}",
        Operate,
        "Delete a machine (204 also when absent)",
        None,
    ),
    r(
        "get",
        "/api/v1/machines/{name}/history",
        Read,
        "Every change of a machine (add, update, label, rm), with its actor",
        None,
    ),
    r(
        "get",
        "/api/v1/machines/{name}/explain",
        Read,
        "What the machine boots now and why (= tabula explain --json; ?mac, ?arch)",
        None,
    )
    .query(&[
        ("mac", "one of its MACs (default: the first)"),
        ("arch", "firmware, as tabula explain --arch (default bios)"),
    ]),
    r(
        "get",
        "/api/v1/machines/{name}/timeline",
        Read,
        "The machine's boots, stage by stage, and its latest events (?limit)",
        None,
    )
    .query(&[("limit", "latest events read, 1-1000 (default 200)")]),
    r(
        "get",
        "/api/v1/machines/{name}/boots",
        Read,
        "The machine's boot attempts, newest first (= tabula machine boots --json; ?limit)",
        None,
    )
    .query(&[("limit", "attempts read, 1-1000 (default 50)")]),
    r(
        "delete",
        "/api/v1/machines/{name}/hold",
        Operate,
        "Release an automatic-rollback hold or quarantine (200 with it; 204 if not held)",
        None,
    ),
    r(
        "post",
        "/api/v1/machines/{name}/boot-once",
        Operate,
        "Boot a reference once: {\"ref\": \"demo@2\", \"ttl\"?: \"2h\", \"then\"?: \"revert\"|\"local\"}",
        Some("NewBootOnce"),
    ),
    r(
        "get",
        "/api/v1/machines/{name}/boot-once/{id}",
        Read,
        "A boot-once request and its result: pending, booting, booted, failed, expired",
        None,
    ),
    r(
        "get",
        "/api/v1/boot-once/{id}",
        Read,
        "A boot-once request by id alone (= tabula pin once-status ID --json)",
        None,
    ),
    r(
        "get",
        "/api/v1/holds",
        Read,
        "Machines held by automatic rollback (or quarantined)",
        None,
    ),
    r(
        "get",
        "/api/v1/rollouts",
        Read,
        "Every rollout with its members by state, newest first",
        None,
    ),
    r(
        "post",
        "/api/v1/rollouts",
        Admin,
        "Create a rollout in draft (tabula rollout create; dry_run: only compute it)",
        Some("NewRollout"),
    ),
    r(
        "get",
        "/api/v1/rollouts/{name}",
        Read,
        "A rollout: state, step, members by state, budget used (= tabula rollout show --json)",
        None,
    ),
    r(
        "post",
        "/api/v1/rollouts/{name}/{command}",
        Operate,
        "Run a command: start, pause, resume, promote, abort or retry (409 if the state does not take it)",
        None,
    ),
    r(
        "get",
        "/api/v1/webhooks",
        Read,
        "Webhooks (never their secrets)",
        None,
    ),
    r(
        "post",
        "/api/v1/webhooks",
        Admin,
        "Add a webhook: {\"url\", \"events\": \"booted,machine.*\", \"secret\"?} (the answer holds the secret, once)",
        Some("NewWebhook"),
    ),
    r(
        "delete",
        "/api/v1/webhooks/{id}",
        Admin,
        "Remove a webhook (204 also when absent)",
        None,
    ),
    r(
        "get",
        "/api/v1/webhooks/{id}/deliveries",
        Read,
        "A webhook's delivery log, newest first (?limit)",
        None,
    )
    .query(&[("limit", "deliveries read, 1-1000 (default 100)")]),
    r(
        "get",
        "/api/v1/explain/{mac}",
        Read,
        "What a MAC boots now and why (= tabula explain MAC --json; ?uuid, ?arch)",
        None,
    )
    .query(&[
        ("uuid", "SMBIOS UUID, as tabula explain --uuid"),
        ("arch", "firmware, as tabula explain --arch (default bios)"),
    ]),
    r("get", "/api/v1/pins", Read, "List pins", None),
    r(
        "get",
        "/api/v1/pins/{target}",
        Read,
        "Get a target's pin",
        None,
    )
    .query(PAGE),
    r(
        "put",
        "/api/v1/pins/{target}",
        Operate,
        "Pin a target: {\"ref\": \"demo@2\"}",
        Some("SetPin"),
    ),
    r(
        "delete",
        "/api/v1/pins/{target}",
        Operate,
        "Remove a target's pin (204 also when absent)",
        None,
    ),
    r(
        "post",
        "/api/v1/pins/{target}/rollback",
        Operate,
        "Move a pin back to the one before it",
        None,
    ),
    r(
        "get",
        "/api/v1/pins/{target}/history",
        Read,
        "Every change of a target's pin, with its actor",
        None,
    )
    .query(PAGE),
    r("get", "/api/v1/images", Read, "List images", None),
    r(
        "get",
        "/api/v1/images/{name}/versions",
        Read,
        "List an image's versions",
        None,
    )
    .query(PAGE),
    r(
        "post",
        "/api/v1/images/{name}/versions",
        Admin,
        "Publish a version from uploaded blobs",
        Some("Upload"),
    )
    .query(PAGE),
    r(
        "get",
        "/api/v1/images/{name}/versions/{version}",
        Read,
        "A version's manifest",
        None,
    ),
    r(
        "delete",
        "/api/v1/images/{name}/versions/{version}",
        Admin,
        "Remove a version (409 while in use)",
        None,
    ),
    r(
        "put",
        "/api/v1/images/{name}/channels/{channel}",
        Admin,
        "Point a channel at a version: {\"version\": \"2\"}",
        Some("MoveChannel"),
    ),
    r(
        "get",
        "/api/v1/images/{name}/history",
        Read,
        "Every publication and removal of an image's versions, with its actor",
        None,
    ),
    r(
        "get",
        "/api/v1/images/{name}/channels/{channel}/history",
        Read,
        "Every move of a channel, with its actor",
        None,
    ),
    r(
        "put",
        "/api/v1/blobs/sha256/{hex}",
        Admin,
        "Upload a blob by digest (streamed, verified; 422 if it does not hash to {hex})",
        None,
    ),
    r(
        "get",
        "/api/v1/leases",
        Read,
        "List stored DHCP leases",
        None,
    )
    .query(PAGE),
    r(
        "get",
        "/api/v1/events",
        Read,
        "List boot events (?mac, ?stage, ?after, ?limit; or ?last; or ?attempt)",
        None,
    )
    .query(&[
        ("mac", "only this MAC"),
        ("stage", "only this stage"),
        ("after", "cursor: an event id"),
        ("limit", "page size, 1-1000 (default 100)"),
        (
            "last",
            "instead: the newest N (0-1000), oldest first; next = the newest id, to follow from",
        ),
        (
            "attempt",
            "instead: the events of this boot attempt (its id), oldest first (with after, limit)",
        ),
    ]),
    r(
        "get",
        "/api/v1/events/stream",
        Read,
        "Boot events as Server-Sent Events, live, resumable by Last-Event-ID",
        None,
    )
    .query(&[
        ("mac", "only this MAC"),
        ("stage", "only this stage"),
        (
            "after",
            "start after this event id (0: all stored); Last-Event-ID wins",
        ),
    ]),
    r(
        "get",
        "/api/v1/servers",
        Read,
        "The servers sharing this store: alive, what each serves, roles, version",
        None,
    ),
    r(
        "get",
        "/api/v1/tokens",
        Read,
        "List API tokens (never their secrets)",
        None,
    )
    .query(PAGE),
    r(
        "post",
        "/api/v1/tokens",
        Admin,
        "Create a token (the answer holds it, once)",
        Some("NewToken"),
    ),
    r(
        "delete",
        "/api/v1/tokens/{name}",
        Admin,
        "Revoke a token",
        None,
    ),
];

/// The resources, behind the token check.
pub(crate) fn resources(st: ApiState) -> Router<ApiState> {
    Router::new()
        .route(
            "/api/v1/machines",
            get(machines::list).post(machines::create),
        )
        .route(
            "/api/v1/machines/{name}",
            get(machines::get)
                .patch(machines::patch)
                .delete(machines::delete),
        )
        .route("/api/v1/machines/{name}/explain", get(machines::explain))
        .route("/api/v1/machines/{name}/history", get(machines::history))
        .route("/api/v1/machines/{name}/timeline", get(timeline::get))
        .route("/api/v1/machines/{name}/boots", get(fleet_machines::boots))
        .route(
            "/api/v1/machines/{name}/hold",
            axum::routing::delete(fleet_machines::release),
        )
        .route(
            "/api/v1/machines/{name}/boot-once",
            post(fleet_machines::create_boot_once),
        )
        .route(
            "/api/v1/machines/{name}/boot-once/{id}",
            get(fleet_machines::boot_once),
        )
        .route("/api/v1/holds", get(fleet_machines::holds))
        .route(
            "/api/v1/boot-once/{id}",
            get(fleet_machines::boot_once_by_id),
        )
        .route(
            "/api/v1/rollouts",
            get(rollouts::list).post(rollouts::create),
        )
        .route("/api/v1/rollouts/{name}", get(rollouts::get))
        .route("/api/v1/rollouts/{name}/{command}", post(rollouts::command))
        .route(
            "/api/v1/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/api/v1/webhooks/{id}",
            axum::routing::delete(webhooks::delete),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route("/api/v1/explain/{mac}", get(explain::get))
        .route("/api/v1/pins", get(pins::list))
        .route(
            "/api/v1/pins/{target}",
            get(pins::get).put(pins::put).delete(pins::delete),
        )
        .route("/api/v1/pins/{target}/rollback", post(pins::rollback))
        .route("/api/v1/pins/{target}/history", get(pins::history))
        .route("/api/v1/images", get(images::list))
        .route(
            "/api/v1/images/{name}/versions",
            get(images::versions).post(images::publish),
        )
        .route(
            "/api/v1/images/{name}/versions/{version}",
            get(images::manifest).delete(images::delete_version),
        )
        .route(
            "/api/v1/images/{name}/channels/{channel}",
            put(images::put_channel),
        )
        .route("/api/v1/images/{name}/history", get(images::history))
        .route(
            "/api/v1/images/{name}/channels/{channel}/history",
            get(images::channel_history),
        )
        .route("/api/v1/blobs/sha256/{hex}", put(blobs::put))
        .route("/api/v1/leases", get(leases::list))
        .route("/api/v1/events", get(event_list::list))
        .route(events::PATH, get(events::stream))
        .route(servers::PATH, get(servers::list))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route(
            "/api/v1/tokens/{name}",
            axum::routing::delete(tokens::revoke),
        )
        .route_layer(middleware::from_fn_with_state(st, auth::require))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_enforced_scopes_agree() {
        for route in TABLE {
            let method: axum::http::Method = route.method.to_uppercase().parse().unwrap();
            let concrete = route.path.replace(['{', '}'], "");
            assert_eq!(
                auth::required(&method, &concrete),
                route.scope,
                "{} {}",
                route.method,
                route.path
            );
        }
    }
}
