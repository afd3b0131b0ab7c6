//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the API, generated from the
//! route table ([`super::routes::TABLE`]) so it cannot drift from what is served: every
//! route with its path parameters, scope (`x-tabula-scope`), bearer security, success
//! status and problem+json error answers. Served without a token, like the index.

use axum::Json;
use serde_json::{Map, Value, json};

use super::routes::{Route, TABLE};

/// The document's path.
pub(crate) const PATH: &str = "/api/v1/openapi.json";

/// The handler.
pub(crate) async fn document() -> Json<Value> {
    Json(build())
}

fn operation_id(r: &Route) -> String {
    let mut id = r.method.to_string();
    for seg in r.path.trim_start_matches("/api/v1/").split('/') {
        let seg = seg.trim_start_matches('{').trim_end_matches('}');
        id.push('_');
        id.push_str(&seg.replace(['-', '.'], "_"));
    }
    id
}

/// The success status of a route.
fn success(r: &Route) -> (&'static str, &'static str) {
    match r.method {
        "delete" => ("204", "Done (also when it was already gone)"),
        "post" if !r.path.ends_with("/rollback") => ("201", "Created"),
        "put" if r.path.starts_with("/api/v1/blobs/") => {
            ("201", "Stored (200 when it was already)")
        }
        _ => ("200", "OK"),
    }
}

fn problem_ref(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json":
        {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn operation(r: &Route) -> Value {
    let params: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
        .chain(r.query.iter().map(|(name, what)| {
            json!({"name": name, "in": "query", "required": false, "description": what,
                   "schema": {"type": "string"}})
        }))
        .collect();
    let (code, what) = success(r);
    let mut responses = Map::new();
    let ok = if code == "204" {
        json!({"description": what})
    } else if r.path.ends_with("/stream") {
        json!({"description": what, "content": {"text/event-stream": {"schema": {"type": "string"}}}})
    } else {
        json!({"description": what, "content": {"application/json": {"schema": {}}}})
    };
    responses.insert(code.into(), ok);
    responses.insert("400".into(), problem_ref("Malformed request"));
    responses.insert(
        "401".into(),
        problem_ref("No valid token (with WWW-Authenticate: Bearer)"),
    );
    responses.insert("403".into(), problem_ref("The token's scope is too small"));
    responses.insert("404".into(), problem_ref("No such resource"));
    if r.method != "get" {
        responses.insert(
            "409".into(),
            problem_ref("Conflicts with the current state"),
        );
        responses.insert(
            "422".into(),
            problem_ref("A value is not acceptable, or names nothing"),
        );
    }
    let mut op = json!({
        "operationId": operation_id(r),
        "summary": r.summary,
        "parameters": params,
        "security": [{"bearer": []}],
        "x-tabula-scope": r.scope.as_str(),
        "responses": responses,
    });
    if let Some(schema) = r.body {
        let media = if r.method == "patch" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        op["requestBody"] = json!({"required": true, "content": {media:
            {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    } else if r.path.starts_with("/api/v1/blobs/") {
        op["requestBody"] = json!({"required": true, "content": {"application/octet-stream":
            {"schema": {"type": "string", "format": "binary"}}}});
    }
    op
}

/// A closed object schema (the API refuses unknown fields).
fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties,
           "additionalProperties": false})
}

/// The whole document.
pub(crate) fn build() -> Value {
    let mut paths = Map::new();
    for r in TABLE {
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method] = operation(r);
    }
    let open = |summary: &str| {
        json!({"get": {"operationId": summary.replace(' ', "_").to_lowercase(), "summary": summary,
            "security": [], "responses": {"200": {"description": "OK",
            "content": {"application/json": {"schema": {}}}}}}})
    };
    paths.insert("/api/v1/".into(), open("API index"));
    paths.insert(PATH.into(), open("This document"));
    paths.insert(
        super::metrics::PATH.into(),
        json!({"get": {"operationId": "metrics", "summary": "Prometheus metrics (text format 0.0.4); a read token only with api.metrics_token_required",
            "security": [{}, {"bearer": []}], "x-tabula-scope": "read",
            "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
                          "401": problem_ref("api.metrics_token_required and no valid token")}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tabula API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The control plane of tabula. Tokens: `tabula token create NAME --scope read|operate|admin`; read = every GET, operate = machines, pins, boot-once, holds and rollout commands, admin = everything (images, tokens, webhooks, creating rollouts).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "NewMachine": object(&["name"], json!({
                    "name": {"type": "string"},
                    "macs": {"type": "array", "items": {"type": "string", "description": "52:54:00:12:34:56"}},
                    "uuid": {"type": ["string", "null"]},
                    "hostname": {"type": ["string", "null"]},
                    "address": {"type": ["string", "null"], "format": "ipv4"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                })),
                "MachinePatch": object(&[], json!({
                    "macs": {"type": "array", "items": {"type": "string"}},
                    "uuid": {"type": ["string", "null"]},
                    "hostname": {"type": ["string", "null"]},
                    "address": {"type": ["string", "null"], "format": "ipv4"},
                    "labels": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                })),
                "SetPin": object(&["ref"], json!({
                    "ref": {"type": "string", "description": "IMAGE@VERSION, IMAGE@sha256:…, IMAGE:CHANNEL, local or none"},
                })),
                "MoveChannel": object(&["version"], json!({"version": {"type": "string"}})),
                "UploadedBlob": object(&["digest", "name"], json!({
                    "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                    "name": {"type": "string"},
                })),
                "Upload": object(&["version", "kernel"], json!({
                    "version": {"type": "string"},
                    "architectures": {"type": "array", "items": {"type": "string"}},
                    "kernel": {"$ref": "#/components/schemas/UploadedBlob"},
                    "initrds": {"type": "array", "items": {"$ref": "#/components/schemas/UploadedBlob"}},
                    "rootfs": {"oneOf": [{"$ref": "#/components/schemas/UploadedBlob"}, {"type": "null"}]},
                    "cmdline": {"type": "string"},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                })),
                "NewToken": object(&["name", "scope"], json!({
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    "scope": {"type": "string", "enum": ["read", "operate", "admin"]},
                    "expires": {"type": ["string", "null"], "description": "a duration such as 90d"},
                })),
                "NewRollout": object(&["name", "target", "to"], json!({
                    "name": {"type": "string"},
                    "target": {"type": "string", "description": "label selector k=v,k2=a|b"},
                    "to": {"type": "string", "description": "IMAGE@VERSION"},
                    "steps": {"type": "string", "description": "default 1,10%,50%,100%"},
                    "max_in_flight": {"type": "integer", "minimum": 0},
                    "failure_budget": {"type": "string", "description": "N or P% (default 0)"},
                    "bake": {"type": "string", "description": "a duration (default 0s)"},
                    "deadline": {"type": "string", "description": "a duration (default 30m)"},
                    "on_budget": {"type": "string", "enum": ["pause", "rollback"]},
                    "reboot": {"type": "string", "enum": ["passive", "webhook"]},
                    "dry_run": {"type": "boolean"},
                })),
                "NewBootOnce": object(&["ref"], json!({
                    "ref": {"type": "string", "description": "IMAGE@VERSION, IMAGE:CHANNEL, local…"},
                    "ttl": {"type": "string", "description": "a duration (default 2h)"},
                    "then": {"type": "string", "enum": ["revert", "local"]},
                })),
                "NewWebhook": object(&["url", "events"], json!({
                    "url": {"type": "string", "description": "http://HOST[:PORT]/PATH"},
                    "events": {"type": "string", "description": "booted,failed,machine.*,rollout.*"},
                    "secret": {"type": ["string", "null"], "description": "whsec_…; made when left out"},
                })),
                "Problem": {
                "type": "object",
                "description": "RFC 9457 problem details",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string", "format": "uri-reference"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "resource": {"type": "string"},
                    "name": {"type": "string"},
                },
            }},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_once_with_unique_operation_ids() {
        let doc = build();
        let mut ids = std::collections::HashSet::new();
        for r in TABLE {
            let op = &doc["paths"][r.path][r.method];
            assert_eq!(
                op["x-tabula-scope"],
                r.scope.as_str(),
                "{} {}",
                r.method,
                r.path
            );
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
            let braces = r.path.matches('{').count();
            assert_eq!(
                op["parameters"].as_array().unwrap().len(),
                braces + r.query.len()
            );
            if let Some(schema) = r.body {
                assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
            }
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
