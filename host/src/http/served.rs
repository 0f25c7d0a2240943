//! Documents serialised once and served many times: the JSON bytes of a cached
//! effective configuration, and their gzip encoding for clients that accept it
//! (made once too, so a cache hit neither serialises nor compresses).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write as _;

/// Bodies smaller than this are sent as they are: gzip would save next to nothing.
const GZIP_FROM: usize = 1024;

/// The suffix of the ETag of the gzip representation (it is a different byte
/// sequence, so it gets its own strong validator).
const GZIP_ETAG_SUFFIX: &str = "-gzip";

/// A serialised document and, when that is smaller, its gzip encoding, each
/// with its ETag.
#[derive(Debug, Clone)]
pub struct ServedDocument {
    json: Bytes,
    etag: HeaderValue,
    gzip: Option<(Bytes, HeaderValue)>,
}

impl ServedDocument {
    /// Keeps `json` with its (quoted) `etag` and, for a body worth compressing,
    /// its gzip encoding, whose ETag gets a suffix.
    pub fn new(json: Vec<u8>, etag: HeaderValue) -> Self {
        let gzip = (json.len() >= GZIP_FROM)
            .then(|| gzip(&json))
            .flatten()
            .filter(|g| g.len() < json.len())
            .map(|g| (Bytes::from(g), gzip_etag(&etag)));
        Self {
            json: Bytes::from(json),
            etag,
            gzip,
        }
    }

    /// The answer to `request`: a 304 carrying the validator of the
    /// representation it would get when its `If-None-Match` names either
    /// representation's (or `*`), else [`ServedDocument::respond`].
    pub fn answer(&self, request: &HeaderMap) -> Response {
        if !self.not_modified(request) {
            return self.respond(request);
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.pick(request).1.clone());
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        response
    }

    /// Whether `If-None-Match` names this document (identity or gzip) or `*`.
    fn not_modified(&self, request: &HeaderMap) -> bool {
        let own = self.etag.to_str().unwrap_or("").trim_matches('"');
        request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',').any(|tag| {
                    let tag = tag.trim();
                    tag == "*" || {
                        let tag = tag.trim_start_matches("W/");
                        let tag = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
                        tag.is_some_and(|t| t.strip_suffix(GZIP_ETAG_SUFFIX).unwrap_or(t) == own)
                    }
                })
            })
    }

    /// The body, ETag and whether it is gzip, of what `request` accepts.
    fn pick(&self, request: &HeaderMap) -> (&Bytes, &HeaderValue, bool) {
        match self.gzip.as_ref().filter(|_| accepts_gzip(request)) {
            Some((bytes, etag)) => (bytes, etag, true),
            None => (&self.json, &self.etag, false),
        }
    }

    /// A 200 response with the representation the request accepts.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let (body, etag, gzip) = self.pick(request);
        let (body, etag) = (body.clone(), etag.clone());
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.insert(header::ETAG, etag);
        if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// `"v"` → `"v-gzip"`.
fn gzip_etag(etag: &HeaderValue) -> HeaderValue {
    let tag = etag.to_str().unwrap_or("\"\"").trim_end_matches('"');
    HeaderValue::from_str(&format!("{tag}{GZIP_ETAG_SUFFIX}\"")).unwrap_or_else(|_| etag.clone())
}

/// Whether `Accept-Encoding` names gzip (or `*`) with a non-zero weight.
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let named = coding.eq_ignore_ascii_case("gzip")
                || coding.eq_ignore_ascii_case("x-gzip")
                || coding == "*";
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            named && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        h
    }

    #[test]
    fn negotiates_gzip_by_weight() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("br, GZIP;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(accepts_gzip(&headers("x-gzip")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("gzip; q=0.0, br")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn small_bodies_are_not_compressed() {
        let doc = ServedDocument::new(b"{\"a\":1}".to_vec(), HeaderValue::from_static("\"v\""));
        let response = doc.respond(&headers("gzip"));
        assert!(response.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(response.headers()[header::ETAG], "\"v\"");
    }

    #[test]
    fn gzip_round_trips_with_its_own_etag() {
        let json = serde_json::to_vec(&vec!["repeated text"; 500]).unwrap();
        let doc = ServedDocument::new(json.clone(), HeaderValue::from_static("\"v\""));
        let (gz, _) = doc.gzip.clone().expect("compressible");
        assert!(gz.len() < json.len() / 10);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        assert_eq!(out, json);
        let response = doc.respond(&headers("gzip, deflate"));
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(response.headers()[header::ETAG], "\"v-gzip\"");
        assert_eq!(response.headers()[header::VARY], "accept-encoding");
        let plain = doc.respond(&HeaderMap::new());
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::ETAG], "\"v\"");
    }

    #[test]
    fn conditional_requests_match_either_validator() {
        let json = serde_json::to_vec(&vec!["repeated text"; 500]).unwrap();
        let doc = ServedDocument::new(json, HeaderValue::from_static("\"v\""));
        let ask = |inm: &str, accept: &str| {
            let mut h = headers(accept);
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(inm).unwrap());
            doc.answer(&h)
        };
        for tag in ["\"v\"", "\"v-gzip\"", "W/\"v\"", "\"x\", \"v\"", "*"] {
            let response = ask(tag, "gzip");
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{tag}");
            assert_eq!(response.headers()[header::ETAG], "\"v-gzip\"");
        }
        assert_eq!(
            ask("\"v-gzip\"", "identity").headers()[header::ETAG],
            "\"v\""
        );
        for tag in ["\"w\"", "\"v2\"", "v", "\"v-br\""] {
            assert_eq!(ask(tag, "gzip").status(), StatusCode::OK, "{tag}");
        }
    }
}
