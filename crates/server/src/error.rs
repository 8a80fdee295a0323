//! The API's error answer: a status and `{"error": "…"}`, for every failure of every route.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error: status and a JSON body that says what was wrong.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

/// 400 with `msg`.
pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// 429.
pub(crate) fn too_many() -> ApiError {
    ApiError(StatusCode::TOO_MANY_REQUESTS, "too many requests".into())
}

/// Turns an error answer that is not JSON (axum's own rejections: a body over the limit, a
/// wrong content type) into `{"error": "…"}` with the same status.
pub(crate) async fn json_errors(resp: Response) -> Response {
    let is_json = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if !(resp.status().is_client_error() || resp.status().is_server_error()) || is_json || resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return resp;
    }
    let status = resp.status();
    let text = match axum::body::to_bytes(resp.into_body(), 4096).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    (status, Json(json!({"error": text}))).into_response()
}

