//! The one error type of the HTTP API. Every error has a status, a stable code
//! and a message saying what to fix, rendered as `{"error":{"code","message"}}`.
//! Server-side failures are logged with their detail and answered with a generic
//! message: internals never reach a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::resolve::InputError;
use crate::runtime::CheckError;
use crate::storage::StorageError;

/// An API error. Clone, so one failed load shared by concurrent requests can
/// answer each of them.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 429 with Retry-After.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this tenant is over its request rate; retry after the time in Retry-After",
            )
        }
    }

    /// 503 with Retry-After.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 500: the detail is logged, the client gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; it has been logged",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"veneer\""),
            );
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound(what) => Self::not_found(what),
            StorageError::Conflict(what) => Self::new(StatusCode::CONFLICT, "conflict", what),
            StorageError::Invalid(what) => Self::bad_request("invalid", what),
            // 409: the store's state, not the request, is what stands in the
            // way, and the caller can change that state (delete keys) and retry.
            StorageError::KvQuotaExceeded(what) => {
                Self::new(StatusCode::CONFLICT, "kv_quota_exceeded", what)
            }
            StorageError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                Self::unavailable(
                    "database_unavailable",
                    "the database is unavailable; retry shortly",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let status = if err.is_unavailable() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::UNAUTHORIZED
        };
        Self::new(status, err.code(), err.to_string())
    }
}

impl From<CheckError> for ApiError {
    fn from(err: CheckError) -> Self {
        let status = match err {
            CheckError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, err.code(), err.to_string())
    }
}

impl From<InputError> for ApiError {
    fn from(err: InputError) -> Self {
        match err {
            InputError::UnknownTemplate(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_template", err.to_string())
            }
            InputError::Sale { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_sale",
                err.to_string(),
            ),
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
