//! The API's contract as an OpenAPI 3.1 document, generated from the code:
//! each handler carries one `#[utoipa::path]` (method, path, parameters,
//! bodies, success responses, the security scheme it needs and the error
//! codes it can answer), each body type derives `utoipa::ToSchema`, and every
//! `/v1` route is registered through utoipa-axum's `routes!`, so the router
//! and the document are made from the same list. Served at
//! `GET /v1/openapi.json` on every host, without authentication.
//!
//! The error codes a route can answer are declared beside its handler as
//! [`errors`] (groups such as [`MEMBER`] for what the extractors refuse, plus
//! the handler's own [`Code`]s); [`finish`] turns them into one response per
//! status whose schema is the house error shape, `{"error":{"code","message"}}`
//! (the `Error` component), with `code` limited to the codes of that status.
//! Shapes only: nothing here handles a request but the document's own route.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::{Value, json};

use crate::http::{Code, ServedDocument};

/// The vendor extension a handler's `#[utoipa::path]` lists its error codes
/// in; [`finish`] replaces it with responses.
pub(crate) const ERRORS: &str = "x-veneer-errors";

/// What every route can answer whatever it does: the request ran out of time
/// (`request_timeout`, the timeout middleware) or the server failed (a
/// panic, a storage failure).
const ALWAYS: &[Code] = &[Code::RequestTimeout, Code::Internal];

/// How the request's host is read (`http::request_host`) and what an unknown
/// one answers: every route that reads its host.
pub(crate) const HOST: &[Code] = &[
    Code::DuplicateHost,
    Code::InvalidHost,
    Code::ConflictingHost,
    Code::MissingHost,
    Code::UnknownHost,
];

/// A tenant's host (`TenantHost`): the host, the tenant's status, and the
/// database read of its row.
pub(crate) const TENANT_HOST: &[Code] = &[
    Code::DuplicateHost,
    Code::InvalidHost,
    Code::ConflictingHost,
    Code::MissingHost,
    Code::UnknownHost,
    Code::TenantDeleted,
    Code::TenantSuspended,
    Code::DatabaseUnavailable,
];

/// A bearer token that does not verify (`auth`'s errors).
pub(crate) const TOKEN: &[Code] = &[
    Code::MissingToken,
    Code::MalformedToken,
    Code::AlgorithmNotAllowed,
    Code::UnknownKey,
    Code::BadSignature,
    Code::Expired,
    Code::TokenLifetimeTooLong,
    Code::NotYetValid,
    Code::WrongIssuer,
    Code::UnauthorizedParty,
    Code::MissingClaim,
    Code::KeysUnavailable,
];

/// A member (or admin) of the host's tenant (`Member`, `TenantAdmin`): the
/// tenant's host, the token, its organisation, its revocation, its role and
/// the tenant's request rate.
pub(crate) const MEMBER: &[Code] = &[
    Code::WrongTenant,
    Code::TokenRevoked,
    Code::InsufficientRole,
    Code::RateLimited,
];

/// A platform admin on the platform's host (`PlatformAdmin`), beside
/// [`HOST`] and [`TOKEN`]; every admin route then reads the database.
pub(crate) const PLATFORM_ADMIN: &[Code] = &[Code::Forbidden, Code::DatabaseUnavailable];

/// A JSON body (`JsonBody`).
pub(crate) const JSON: &[Code] = &[Code::InvalidJson, Code::InvalidJsonType, Code::BodyTooLarge];

/// A raw body (`RawBody`).
pub(crate) const RAW: &[Code] = &[Code::BadBody, Code::BodyTooLarge];

/// A query string (`ApiQuery`).
pub(crate) const QUERY: &[Code] = &[Code::InvalidQuery];

/// The value of a handler's [`ERRORS`] extension: every code of `groups`,
/// each as `"<code> <status>"` (a code may come with two statuses).
/// Written `extensions(("x-veneer-errors" = json!(errors(&[MEMBER, &[Code::NotFound]]))))`
/// in the handler's `#[utoipa::path]`; the extractor groups of a tenant route
/// ([`TENANT_HOST`], [`TOKEN`], [`MEMBER`]) are listed by the route.
pub(crate) fn errors(groups: &[&[Code]]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for code in groups.iter().flat_map(|group| group.iter()) {
        let entry = entry(*code);
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

fn entry(code: Code) -> String {
    format!("{} {}", code.as_str(), code.status().as_u16())
}

fn code_of(entry: &str) -> Option<Code> {
    Code::ALL
        .iter()
        .copied()
        .find(|code| self::entry(*code) == entry)
}

/// The whole document: the operations utoipa-axum collected from the routes,
/// finished by [`finish`]. Built once per process.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let collected = super::routes(usize::MAX).into_openapi();
        finish(serde_json::to_value(collected).unwrap_or(Value::Null))
    })
}

/// The served bytes of [`document`], with an ETag of their digest.
fn served() -> &'static ServedDocument {
    static SERVED: OnceLock<ServedDocument> = OnceLock::new();
    SERVED.get_or_init(|| {
        let json = serde_json::to_vec(document()).unwrap_or_default();
        let digest = crate::digest::Digest::new().bytes(&json).to_short_hex();
        let etag = HeaderValue::from_str(&format!("\"{digest}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
        ServedDocument::new(json, etag)
    })
}

/// This document (OpenAPI 3.1): every route of the API, its parameters,
/// bodies, responses, error codes and security. On every host, without
/// authentication; `If-None-Match` with its ETag answers 304.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[])))),
)]
pub(crate) async fn openapi_json(headers: HeaderMap) -> Response {
    served().answer(&headers)
}

/// Completes what utoipa collected: the title, the security schemes, the
/// `Error` schema, and one error response per status of each operation from
/// its [`ERRORS`] extension (plus [`ALWAYS`]). Panics on a code that is not a
/// [`Code`] (a test builds the document).
pub fn finish(mut doc: Value) -> Value {
    doc["info"] = json!({
        "title": "Veneer API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Multi-tenant configuration host. Tenant routes are served on the tenant's host (`<tenant>.<base-domain>` or a verified custom domain); `/v1/admin/...` routes on the platform's own host. Every error is `{\"error\":{\"code\",\"message\"}}` with a stable code; docs/api.md lists them all.",
        "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
    });
    let components = doc
        .as_object_mut()
        .expect("an OpenAPI document is an object")
        .entry("components")
        .or_insert_with(|| json!({}));
    components["securitySchemes"] = security_schemes();
    components
        .as_object_mut()
        .expect("components is an object")
        .entry("schemas")
        .or_insert_with(|| json!({}))["Error"] = error_schema();
    any_of(&mut doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            add_errors(path, method, operation);
        }
    }
    doc
}

/// utoipa writes `oneOf` for untagged enums and for `Option`s, but serde
/// takes the first variant that fits, and variants overlap (a value of
/// `{"type":"null"}`-or-any, a variant whose fields another has too): the
/// document says `anyOf`, which is what the JSON answers hold to.
fn any_of(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(variants) = map.remove("oneOf") {
                map.insert("anyOf".to_owned(), variants);
            }
            map.values_mut().for_each(any_of);
        }
        Value::Array(items) => items.iter_mut().for_each(any_of),
        _ => {}
    }
}

fn add_errors(path: &str, method: &str, operation: &mut Value) {
    let listed = operation
        .get_mut("extensions")
        .and_then(Value::as_object_mut)
        .and_then(|ext| ext.remove(ERRORS))
        .or_else(|| operation.as_object_mut()?.remove(ERRORS))
        .unwrap_or_else(|| panic!("{method} {path} lists no error codes ({ERRORS})"));
    if let Some(ext) = operation.get("extensions").and_then(Value::as_object)
        && ext.is_empty()
        && let Some(op) = operation.as_object_mut()
    {
        op.remove("extensions");
    }
    let mut by_status: BTreeMap<u16, Vec<Code>> = BTreeMap::new();
    let listed = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let entry = entry.as_str().unwrap_or_default();
            code_of(entry).unwrap_or_else(|| panic!("{method} {path}: `{entry}` is no Code"))
        })
        .chain(ALWAYS.iter().copied());
    for code in listed {
        let codes = by_status.entry(code.status().as_u16()).or_default();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let responses = operation
        .as_object_mut()
        .expect("an operation is an object")
        .entry("responses")
        .or_insert_with(|| json!({}));
    for (status, codes) in by_status {
        let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        let described: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        assert!(
            responses.get(status.to_string()).is_none(),
            "{method} {path} documents {status} both as a success and as an error"
        );
        responses[status.to_string()] = json!({
            "description": format!("Error: {}", described.join(", ")),
            "content": { "application/json": { "schema": {
                "allOf": [
                    { "$ref": "#/components/schemas/Error" },
                    { "type": "object", "properties": { "error": {
                        "type": "object",
                        "properties": { "code": { "enum": names } },
                    } } },
                ],
            } } },
        });
    }
}

/// `{"error":{"code","message"[,"details"]}}`.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Every error the API answers: a stable code (docs/api.md lists them with their statuses) and a message saying what to fix.",
        "required": ["error"],
        "additionalProperties": false,
        "properties": { "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": false,
            "properties": {
                "code": { "type": "string", "enum": all_codes() },
                "message": { "type": "string" },
                "details": {
                    "type": "array",
                    "description": "Where the error has several parts (settings that break their plugin's schema): each one's JSON Pointer and message.",
                    "items": {
                        "type": "object",
                        "required": ["path", "message"],
                        "additionalProperties": false,
                        "properties": {
                            "path": { "type": "string" },
                            "message": { "type": "string" },
                        },
                    },
                },
            },
        } },
    })
}

fn all_codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// The security schemes operations name.
fn security_schemes() -> Value {
    json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Clerk session JWT (RS256), verified against the configured issuer and keys. On a tenant's host its organisation must be that tenant's, and its organisation role (`org:admin` or `org:member`) must allow the route; on the platform's host the configured admin claim must be true.",
        },
        "bounce_token": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Veneer-Bounce-Token",
            "description": "The bounce token the server is configured with (`--bounce-token`), sent by the mail system that reports bounces.",
        },
        "shopify_hmac": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Shopify-Hmac-Sha256",
            "description": "Base64 HMAC-SHA256 of the raw body with the tenant's Shopify app secret, as Shopify signs its webhooks (with X-Shopify-Topic, X-Shopify-Shop-Domain and X-Shopify-Webhook-Id).",
        },
        "clerk_svix": {
            "type": "apiKey",
            "in": "header",
            "name": "svix-signature",
            "description": "Clerk's webhook signature (Svix): `v1,<base64 HMAC-SHA256>` of `<svix-id>.<svix-timestamp>.<body>` with the endpoint's signing secret; the svix-id and svix-timestamp headers are required too.",
        },
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, StatusCode};

    use super::*;
    use crate::config::ServeConfig;
    use crate::test_support::api::in_process;
    use crate::test_support::{Db, TestDb};

    /// A value for a path parameter that every route's own checks take.
    fn placeholder(name: &str) -> &'static str {
        match name {
            "sha256" => "0000000000000000000000000000000000000000000000000000000000000000",
            "id" | "release" => "1",
            "name" => "main",
            "section" => "categories",
            "domain" => "shop.example.com",
            "address" => "a@example.com",
            "version" => "1.0.0",
            _ => "x",
        }
    }

    fn filled(template: &str) -> String {
        template
            .split('/')
            .map(
                |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => placeholder(name).to_owned(),
                    None => part.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The document → the router: every documented method and path, sent in
    /// process on a tenant's host and on the platform's, reaches a route —
    /// never the router's own `no_route` or `method_not_allowed`. (The
    /// router → the document holds by construction: `/v1` routes are only
    /// registered through utoipa-axum's `routes!`, which adds each to the
    /// document; the next test keeps it so.)
    #[tokio::test]
    async fn every_documented_operation_is_routed() {
        let db = TestDb::new(Db::Sqlite).await;
        let (_state, api) = in_process(ServeConfig::for_tests(db.url.clone())).await;
        let paths = document()["paths"].as_object().expect("paths");
        let mut operations = 0;
        for (template, item) in paths {
            for method in item.as_object().expect("a path item").keys() {
                let method =
                    Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
                for host in ["acme.veneer.test", "veneer.test"] {
                    let reply = api
                        .request(method.clone(), host, &filled(template))
                        .send()
                        .await
                        .expect("answered");
                    let body: Value = reply.clone().json().await.unwrap_or(Value::Null);
                    let code = body["error"]["code"].as_str().unwrap_or_default();
                    assert!(
                        code != "no_route" && code != "method_not_allowed",
                        "{method} {template} on {host}: the router has no such route ({})",
                        reply.status()
                    );
                    assert_ne!(reply.status(), StatusCode::METHOD_NOT_ALLOWED);
                }
                operations += 1;
            }
        }
        assert!(operations > 100, "only {operations} operations documented");
    }

    /// The router → the document: no `/v1` route is registered past
    /// utoipa-axum (a plain `.route("/v1…")` would serve an undocumented
    /// route), and every handler module's routes go through `routes!`.
    #[test]
    fn no_v1_route_is_registered_around_the_document() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut files = vec![dir.with_extension("rs")];
        // Every file under src/http, sub-modules' directories (the console) too.
        let mut dirs = vec![dir];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("a src/http directory") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.starts_with("//") {
                    continue;
                }
                for call in [".route(\"", ".route_service(\"", ".nest(\""] {
                    if let Some(rest) = line.split(call).nth(1) {
                        assert!(
                            !rest.starts_with("/v1"),
                            "{}:{}: `{line}` registers a /v1 route the document does not see; use routes!",
                            file.display(),
                            n + 1
                        );
                    }
                }
            }
        }
    }

    /// Schemas are named by their type's name alone: two `ToSchema` types of
    /// one name would be one component, the later hiding the earlier.
    #[test]
    fn no_two_schema_types_share_a_name() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut seen = std::collections::BTreeMap::new();
        let mut dirs = vec![
            root.join("src"),
            root.join("core/src"),
            root.join("runtime/src"),
            root.join("storage/src"),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("a source folder") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("readable");
                let lines: Vec<&str> = text.lines().collect();
                for (n, line) in lines.iter().enumerate() {
                    if !(line.trim_start().starts_with("#[derive(") && line.contains("ToSchema")) {
                        continue;
                    }
                    let name = lines[n..]
                        .iter()
                        .take(12)
                        .find_map(|l| {
                            let l = l.trim_start().trim_start_matches("pub(crate) ");
                            let l = l.trim_start_matches("pub ");
                            let rest = l.strip_prefix("struct ").or(l.strip_prefix("enum "))?;
                            Some(
                                rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                                    .next()?
                                    .to_owned(),
                            )
                        })
                        .expect("a type after the derive");
                    if let Some(other) = seen.insert(name.clone(), path.display().to_string()) {
                        panic!(
                            "two schema types named {name}: {other} and {}",
                            path.display()
                        );
                    }
                }
            }
        }
        assert!(seen.len() > 50);
    }

    #[test]
    fn every_operation_names_its_security_and_the_error_shape() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes = doc["components"]["securitySchemes"]
            .as_object()
            .expect("schemes");
        for (template, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                let security = operation["security"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{method} {template} names no security requirement"));
                for requirement in security {
                    for scheme in requirement.as_object().expect("a requirement").keys() {
                        assert!(
                            schemes.contains_key(scheme),
                            "{method} {template}: {scheme}"
                        );
                    }
                }
                assert!(
                    operation.get(ERRORS).is_none(),
                    "{method} {template}: the errors extension is turned into responses"
                );
                for name in template
                    .split('/')
                    .filter_map(|p| p.strip_prefix('{')?.strip_suffix('}'))
                {
                    let declared = operation["parameters"].as_array().is_some_and(|params| {
                        params
                            .iter()
                            .any(|p| p["in"] == "path" && p["name"] == name)
                    });
                    assert!(
                        declared,
                        "{method} {template} does not describe its `{name}`"
                    );
                }
                let responses = operation["responses"].as_object().expect("responses");
                assert!(responses.contains_key("500") && responses.contains_key("503"));
                assert!(
                    responses
                        .keys()
                        .any(|s| s.starts_with('2') || s.starts_with('3')),
                    "{method} {template} has no success response"
                );
            }
        }
        let tenant = &doc["paths"]["/v1/kv/{key}"]["put"]["responses"];
        let unauthorised = tenant["401"]["content"]["application/json"]["schema"].to_string();
        assert!(
            unauthorised.contains("\"expired\"")
                && unauthorised.contains("#/components/schemas/Error")
        );
        let forbidden = tenant["403"]["content"]["application/json"]["schema"].to_string();
        assert!(
            forbidden.contains("\"wrong_tenant\"") && forbidden.contains("\"insufficient_role\"")
        );
    }

    #[tokio::test]
    async fn the_document_is_served_on_every_host_without_a_token_and_revalidates() {
        let db = TestDb::new(Db::Sqlite).await;
        let (_state, api) = in_process(ServeConfig::for_tests(db.url.clone())).await;
        for host in ["veneer.test", "acme.veneer.test", "unknown.example.com"] {
            let reply = api
                .request(Method::GET, host, "/v1/openapi.json")
                .send()
                .await
                .expect("answered");
            assert_eq!(reply.status(), StatusCode::OK, "{host}");
            let etag = reply.headers()["etag"]
                .to_str()
                .expect("an ETag")
                .to_owned();
            let served: Value = reply.json().await.expect("JSON");
            assert_eq!(&served, document());
            let again = api
                .request(Method::GET, host, "/v1/openapi.json")
                .header("if-none-match", &etag)
                .send()
                .await
                .expect("answered");
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        }
    }
}
