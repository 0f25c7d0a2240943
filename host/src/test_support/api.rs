//! Drives the API the same way over either transport: in process
//! (`crate::router(state)` called with `tower::ServiceExt::oneshot`, no socket,
//! no server task) or over TCP to a listening server (reqwest). A test written
//! against [`Api`] runs unchanged on both; only what needs a real connection
//! (timeouts on the wire, HTTP/2, connection limits, webhooks a fake sends to
//! the server's URL, background workers) needs the TCP one.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::config::ServeConfig;
use crate::state::AppState;

/// Where requests go.
#[derive(Clone)]
pub enum Api {
    /// The router itself, called in process.
    InProcess(axum::Router),
    /// A listening server at `base` (`http://addr`), through `client`.
    Tcp {
        client: reqwest::Client,
        base: String,
    },
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Api::InProcess(_) => f.write_str("Api::InProcess"),
            Api::Tcp { base, .. } => write!(f, "Api::Tcp({base})"),
        }
    }
}

/// Builds the application state of `config` (seeding the demo tenants in dev
/// mode, as `veneer serve --dev` does) and its router, without listening or
/// starting the job workers.
pub async fn in_process(config: ServeConfig) -> (AppState, Api) {
    let dev = config.dev;
    let state = AppState::build(config).await.expect("the state builds");
    if dev {
        crate::demo::seed_if_empty(&state)
            .await
            .expect("the demo tenants are seeded");
    }
    let router = crate::router(state.clone());
    (state, Api::InProcess(router))
}

impl Api {
    /// A request to `path` with `host` as its Host header.
    pub fn request(&self, method: Method, host: &str, path: &str) -> ApiRequest {
        ApiRequest {
            api: self.clone(),
            method,
            path: path.to_owned(),
            headers: HeaderMap::from_iter([(
                header::HOST,
                HeaderValue::from_str(host).expect("a valid host"),
            )]),
            body: Bytes::new(),
        }
    }
}

/// A request being built; [`ApiRequest::send`] answers a [`Reply`].
#[derive(Debug)]
pub struct ApiRequest {
    api: Api,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl ApiRequest {
    /// Adds a header.
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.headers.append(
            HeaderName::from_bytes(name.as_ref().as_bytes()).expect("a header name"),
            HeaderValue::from_str(value.as_ref()).expect("a header value"),
        );
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// The raw body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body (and its content type).
    pub fn json(mut self, value: &impl Serialize) -> Self {
        self.body = serde_json::to_vec(value).expect("serialisable").into();
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self
    }

    /// Sends it; the whole body is read. The answer is checked against the
    /// API's OpenAPI document ([`super::contract::check`]): an answer the
    /// document does not describe fails the test.
    pub async fn send(self) -> Result<Reply, reqwest::Error> {
        let method = self.method.clone();
        let path = self.path.clone();
        let reply = self.send_unchecked().await?;
        if let Err(broken) =
            super::contract::check(&method, &path, reply.status, &reply.headers, &reply.body)
        {
            panic!("the API's answer breaks its OpenAPI document: {broken}");
        }
        Ok(reply)
    }

    /// Sends it without checking the answer against the document.
    async fn send_unchecked(self) -> Result<Reply, reqwest::Error> {
        match self.api {
            Api::InProcess(router) => {
                let body_len = self.body.len();
                let mut request = Request::builder()
                    .method(self.method)
                    .uri(self.path)
                    .body(Body::from(self.body))
                    .expect("a valid request");
                *request.headers_mut() = self.headers;
                // As a client on the wire would say it.
                if body_len > 0 || ![Method::GET, Method::HEAD].contains(request.method()) {
                    let length = HeaderValue::from(body_len);
                    request
                        .headers_mut()
                        .entry(header::CONTENT_LENGTH)
                        .or_insert(length);
                }
                let response = match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let (parts, body) = response.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .expect("the body is read");
                Ok(Reply {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            }
            Api::Tcp { client, base } => {
                let response = client
                    .request(self.method, format!("{base}{}", self.path))
                    .headers(self.headers)
                    .body(self.body)
                    .send()
                    .await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                Ok(Reply {
                    status,
                    headers,
                    body,
                })
            }
        }
    }
}

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body as sent (not decoded).
    pub async fn bytes(self) -> Result<Bytes, Infallible> {
        Ok(self.body)
    }

    pub async fn text(self) -> Result<String, std::string::FromUtf8Error> {
        String::from_utf8(self.body.to_vec())
    }

    pub async fn json<T: DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}
