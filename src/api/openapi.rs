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
    if r.body {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    } else if r.path.starts_with("/api/v1/blobs/") {
        op["requestBody"] = json!({"required": true, "content": {"application/octet-stream":
            {"schema": {"type": "string", "format": "binary"}}}});
    }
    op
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
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tabula API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The control plane of tabula. Tokens: `tabula token create NAME --scope read|operate|admin`; read = every GET, operate = machines and pins, admin = everything.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {
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
            assert_eq!(op["parameters"].as_array().unwrap().len(), braces);
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
