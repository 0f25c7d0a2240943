//! The API's contract checked on every answer a test receives: the answer to
//! a request is compared with what the OpenAPI document
//! ([`crate::openapi_document`], the crate's published contract) says of that method and path — its
//! status must be documented there, and a JSON body must validate against
//! that status's schema (`$ref`s resolved within the document, JSON Schema
//! 2020-12, by the `jsonschema` crate); an error's `code` must be one the
//! route lists for that status. A path no route has must be answered with
//! the router's own `no_route` or `method_not_allowed`.
//!
//! [`crate::test_support::api::ApiRequest::send`] runs [`check`] on every
//! answer, so each test that drives the API through it checks the contract
//! too; a test that sends what is not the API (the metrics listener, the
//! plain-HTTP redirect listener) is not checked there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};

use crate::openapi_document as document;

/// Compares one answer with the document; `Err` says what does not hold.
/// `path` may carry a query string (ignored).
pub fn check(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let path = path.split('?').next().unwrap_or(path);
    let doc = document();
    let Some(template) = template_of(doc, path) else {
        if !path.starts_with("/v1/") {
            // Not the API's (metrics, ACME challenges on the redirect listener).
            return Ok(());
        }
        return expect_router_error(path, status, body, &["no_route"]);
    };
    // axum answers HEAD with the GET route, without a body.
    let looked_up = if method == Method::HEAD {
        Method::GET
    } else {
        method.clone()
    };
    let Some(operation) = doc["paths"][template.as_str()].get(looked_up.as_str().to_lowercase())
    else {
        return expect_router_error(path, status, body, &["method_not_allowed"]);
    };
    let here = format!("{method} {template} answered {status}");
    let Some(response) = operation["responses"].get(status.as_str()) else {
        return Err(format!(
            "{here}, a status the document does not list for it (body: {})",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    };
    if body.is_empty() && (method == Method::HEAD || response.get("content").is_none()) {
        return Ok(());
    }
    if status == StatusCode::NOT_MODIFIED {
        return Ok(());
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return Err(format!(
            "{here} with a body, but the document says it has none"
        ));
    };
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let Some(documented) = content.get(&media) else {
        return Err(format!(
            "{here} as `{media}`, which the document does not list (it lists {:?})",
            content.keys().collect::<Vec<_>>()
        ));
    };
    if media != "application/json" {
        return Ok(());
    }
    let decoded;
    let body = if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"))
    {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)
            .map_err(|err| format!("{here} with a gzip body that does not decode: {err}"))?;
        decoded = out;
        &decoded[..]
    } else {
        body
    };
    let instance: Value = serde_json::from_slice(body)
        .map_err(|err| format!("{here} with a body that is not JSON: {err}"))?;
    let Some(schema) = documented.get("schema") else {
        return Ok(());
    };
    let validator = validator(schema)?;
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{here} with a body the document's schema refuses: {}\nbody: {}",
            errors.join("; "),
            truncate(&instance.to_string())
        ))
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(600).collect()
}

/// The router's own answer to a path or method it has no route for.
fn expect_router_error(
    path: &str,
    status: StatusCode,
    body: &[u8],
    codes: &[&str],
) -> Result<(), String> {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = value["error"]["code"].as_str().unwrap_or_default();
    // The timeout and panic layers answer before routing is known to fail.
    if codes.contains(&code) || code == "request_timeout" || code == "internal" {
        return Ok(());
    }
    Err(format!(
        "{path} is not in the document, yet was answered {status} {}",
        truncate(&String::from_utf8_lossy(body))
    ))
}

/// The document's path template `path` matches: the one with the most
/// literal segments (`/v1/admin/tenants/import` before `…/{id}`).
pub fn template_of(doc: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template.clone())
}

/// A validator for one response schema, the document's components beside it
/// so `#/components/schemas/...` resolves (built once per schema).
fn validator(schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().expect("the cache lock").get(&key) {
        return Ok(found.clone());
    }
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document()["components"],
        "allOf": [schema],
    });
    let built = Arc::new(
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .map_err(|err| format!("the document's schema does not compile: {err}"))?,
    );
    cache
        .lock()
        .expect("the cache lock")
        .insert(key, built.clone());
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_segment_wins_over_a_parameter() {
        let doc = json!({ "paths": {
            "/v1/admin/tenants/{id}": {},
            "/v1/admin/tenants/import": {},
        }});
        assert_eq!(
            template_of(&doc, "/v1/admin/tenants/import").as_deref(),
            Some("/v1/admin/tenants/import")
        );
        assert_eq!(
            template_of(&doc, "/v1/admin/tenants/acme").as_deref(),
            Some("/v1/admin/tenants/{id}")
        );
        assert_eq!(template_of(&doc, "/v1/admin/tenants/acme/x"), None);
    }

    #[test]
    fn an_undocumented_status_or_code_or_shape_is_caught() {
        let json = HeaderMap::from_iter([(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )]);
        let ok = br#"{"entries":[{"key":"a","value":"b"}]}"#;
        check(&Method::GET, "/v1/kv?prefix=a", StatusCode::OK, &json, ok).unwrap();
        let missing = br#"{"entries":[{"key":"a"}]}"#;
        let err = check(&Method::GET, "/v1/kv", StatusCode::OK, &json, missing).unwrap_err();
        assert!(err.contains("value"), "{err}");
        let teapot = check(&Method::GET, "/v1/kv", StatusCode::IM_A_TEAPOT, &json, ok);
        assert!(teapot.unwrap_err().contains("does not list"));
        let expired = br#"{"error":{"code":"expired","message":"m"}}"#;
        check(
            &Method::GET,
            "/v1/kv",
            StatusCode::UNAUTHORIZED,
            &json,
            expired,
        )
        .unwrap();
        let other = br#"{"error":{"code":"shadow_gate","message":"m"}}"#;
        let err = check(
            &Method::GET,
            "/v1/kv",
            StatusCode::UNAUTHORIZED,
            &json,
            other,
        );
        assert!(
            err.is_err(),
            "a code the route does not list at that status"
        );
        let routed = br#"{"error":{"code":"no_route","message":"m"}}"#;
        check(
            &Method::GET,
            "/v1/nothing",
            StatusCode::NOT_FOUND,
            &json,
            routed,
        )
        .unwrap();
        let err = check(&Method::GET, "/v1/nothing", StatusCode::OK, &json, ok);
        assert!(err.is_err(), "an unknown path answered by a route");
        let method = br#"{"error":{"code":"method_not_allowed","message":"m"}}"#;
        check(
            &Method::PATCH,
            "/v1/kv",
            StatusCode::METHOD_NOT_ALLOWED,
            &json,
            method,
        )
        .unwrap();
    }
}
