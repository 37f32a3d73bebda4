//! The one place runtime errors become HTTP responses: status from the kind,
//! Discord's `{code, message, errors}` body, `Content-Type: application/json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use guildhall_runtime::{Error, ErrorKind};

/// A handler's error. Wraps the runtime's error so `?` works on both.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<guildhall_store::StoreError> for ApiError {
    fn from(e: guildhall_store::StoreError) -> Self {
        ApiError(e.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let mut body = serde_json::json!({ "message": e.message, "code": e.code });
        if let Some(errors) = e.errors {
            body["errors"] = errors;
        }
        json_response(status_of(e.kind), &body)
    }
}

/// A JSON response with exactly `application/json` (discord.py compares the
/// header string for equality).
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("response bodies always serialize");
    let mut res = (status, bytes).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// 200 with a JSON body.
pub fn ok_json(body: &impl serde::Serialize) -> Response {
    json_response(StatusCode::OK, body)
}

/// 200 with a body that is already JSON (rendered once, e.g. next to an event).
pub fn ok_json_bytes(bytes: impl Into<axum::body::Body>) -> Response {
    let mut res = (StatusCode::OK, bytes.into()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// 201 with a JSON body.
pub fn created_json(body: &impl serde::Serialize) -> Response {
    json_response(StatusCode::CREATED, body)
}

/// 204 with no body.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
