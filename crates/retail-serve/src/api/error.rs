//! The one error type of the API and its body, `{"error": {"code", "message", "parameter"}}`:
//! every 4xx and 5xx the API returns looks the same, so a client handles errors in one place.
//! Internal detail (a store's message) is logged, not returned.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// An API error: an HTTP status and the body that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The request parameter at fault, if one is.
    pub parameter: Option<String>,
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: `invalid_parameter`, `not_found`, `conflict`, `unauthorized`, `forbidden`,
    /// `too_large`, `unavailable`, `internal`.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// The query, path or body parameter at fault (`body` for the request body as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl ApiError {
    /// 400: `parameter` is missing or invalid.
    pub fn invalid(parameter: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_parameter",
            message: message.into(),
            parameter: Some(parameter.to_owned()),
        }
    }

    /// 404: what `parameter` names does not exist (`None` for an unknown path).
    pub fn not_found(parameter: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            parameter: parameter.map(str::to_owned),
        }
    }

    /// 409: the request conflicts with the resource's state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            parameter: None,
        }
    }

    /// 401: no usable token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
            parameter: None,
        }
    }

    /// 403: a valid token without the right.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
            parameter: None,
        }
    }

    /// 503: a part of the pipeline is not available (yet, or for now).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            parameter: None,
        }
    }

    /// 413: the request body is larger than the API takes.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            message: message.into(),
            parameter: Some("body".to_owned()),
        }
    }

    /// 503: answering took longer than the server's request timeout.
    pub fn timed_out(limit: std::time::Duration) -> Self {
        Self::unavailable(format!(
            "the request took longer than the server's request timeout ({} ms, serve.request_timeout_ms); \
             retry shortly",
            limit.as_millis()
        ))
    }

    /// 500, with the detail logged and a generic message returned.
    pub fn internal(what: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::warn!(message = "API request failed", what, error = %detail);
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: format!("{what} failed; the server log has the detail"),
            parameter: None,
        }
    }
}

impl From<retail_sink::Error> for ApiError {
    fn from(e: retail_sink::Error) -> Self {
        if e.is_retryable() {
            tracing::warn!(message = "store unavailable for an API request", error = %e);
            Self::unavailable("the store is unavailable right now; retry shortly")
        } else {
            Self::internal("reading the store", &e)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                parameter: self.parameter,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is temporary here (starting, store down, log refusing): say when to
            // come back, so clients that honour it back off instead of hammering.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
