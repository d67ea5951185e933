//! Request parsing and responses shared by every route: bodies with a size
//! limit, errors in the protocol's error-frame shape, version negotiation,
//! credentials, query strings.

use std::convert::Infallible;

use bytes::Bytes;
use gtl_proto::{Body as FrameBody, Error, ErrorCode, Frame, Phase, SUPPORTED_VERSIONS, Version};
use gtl_service::CallError;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;

/// Every response's body. Bodies of our own never fail; gRPC's may end
/// with a status.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body's error.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) use crate::{RESUME_TOKEN_HEADER, VERSION_HEADER};

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error as the protocol's `error` frame in JSON, with the code's HTTP
/// status (docs/protocol.md §10).
pub(crate) fn error(e: &CallError, session_id: &str) -> Response<Body> {
    let frame = Frame {
        call_id: 0,
        session_id: session_id.to_owned(),
        seq: 0,
        body: Some(FrameBody::Error(Error {
            code: e.code as i32,
            message: e.message.clone(),
            retryable: e.code.is_retryable(),
            phase: Phase::BeforeFirstToken as i32,
            retry_after_ms: 0,
        })),
    };
    let body = frame.to_json().unwrap_or_default();
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Reads a request body of at most `max` bytes.
pub(crate) async fn body(incoming: Incoming, max: usize) -> Result<Bytes, CallError> {
    match Limited::new(incoming, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(CallError::new(
            ErrorCode::FrameTooLarge,
            format!("the request body exceeds the limit of {max} bytes"),
        )),
        Err(e) => Err(CallError::new(
            ErrorCode::InvalidRequest,
            format!("the request body could not be read: {e}"),
        )),
    }
}

/// Parses a JSON body as a frame of type `ty`: the body is the frame's JSON
/// form, and its `"type"` may be left out.
pub(crate) fn frame_of_type(body: &[u8], ty: &str) -> Result<Frame, CallError> {
    let invalid = |message: String| CallError::new(ErrorCode::InvalidRequest, message);
    let mut value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?
    };
    let object = value
        .as_object_mut()
        .ok_or_else(|| invalid("the body must be a JSON object".into()))?;
    match object.get("type") {
        None => {
            object.insert("type".into(), ty.into());
        }
        Some(given) if given == ty => {}
        Some(given) => return Err(invalid(format!("the body's type is {given}, not \"{ty}\""))),
    }
    Frame::from_json(value.to_string().as_bytes()).map_err(|e| invalid(e.to_string()))
}

/// Negotiates the version from the request's `GTL-Version` list (1.0 when
/// absent).
pub(crate) fn version(headers: &HeaderMap) -> Result<Version, CallError> {
    let Some(offered) = headers.get(VERSION_HEADER) else {
        return Ok(gtl_proto::PROTOCOL_VERSION);
    };
    let unsupported = |message: String| CallError::new(ErrorCode::VersionUnsupported, message);
    let offered = offered
        .to_str()
        .map_err(|_| unsupported("GTL-Version is not text".into()))?;
    let offered = Version::parse_list(offered.split(',').map(str::trim))
        .map_err(|e| unsupported(e.to_string()))?;
    gtl_proto::negotiate(&offered, SUPPORTED_VERSIONS).map_err(|e| unsupported(e.to_string()))
}

/// The W3C `traceparent` header, for the call's request metadata.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(gtl_service::TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The bearer token of `Authorization`, or "" when there is none.
pub(crate) fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map_or("", str::trim)
}

/// The value of `key` in a query string, percent-decoded.
pub(crate) fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` escapes and `+` (as a space, in queries).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_escapes() {
        let query = Some("after_seq=12&resume_token=ab%2Fc&x");
        assert_eq!(query_param(query, "after_seq").as_deref(), Some("12"));
        assert_eq!(query_param(query, "resume_token").as_deref(), Some("ab/c"));
        assert_eq!(query_param(query, "x").as_deref(), Some(""));
        assert_eq!(query_param(query, "y"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz+1"), "%zz 1");
    }

    #[test]
    fn versions_default_to_one_and_refuse_unknown_majors() {
        let mut headers = HeaderMap::new();
        assert_eq!(version(&headers).unwrap().to_string(), "1.0");
        headers.insert(VERSION_HEADER, HeaderValue::from_static("2.0, 1.0"));
        assert_eq!(version(&headers).unwrap().to_string(), "1.0");
        headers.insert(VERSION_HEADER, HeaderValue::from_static("2.0"));
        assert_eq!(
            version(&headers).unwrap_err().code,
            ErrorCode::VersionUnsupported
        );
    }

    #[test]
    fn bodies_are_frames_with_an_optional_type() {
        let frame =
            frame_of_type(br#"{"model":"echo","messages":[]}"#, "completion_request").unwrap();
        assert!(matches!(frame.body, Some(FrameBody::CompletionRequest(_))));
        let wrong = frame_of_type(br#"{"type":"ping"}"#, "completion_request").unwrap_err();
        assert_eq!(wrong.code, ErrorCode::InvalidRequest);
        assert!(frame_of_type(b"[1]", "input").is_err());
        assert!(frame_of_type(b"", "cancel").is_ok());
    }
}
