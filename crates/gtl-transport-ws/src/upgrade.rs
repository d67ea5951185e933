//! The server side of the HTTP upgrade, for a router that owns the request.

use http::header::{HeaderMap, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use http::{Request, Response, StatusCode};

use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};

use crate::SUBPROTOCOL;

/// Why a request cannot be upgraded to a GTL WebSocket.
#[derive(Debug, thiserror::Error)]
#[error("not a WebSocket upgrade: {reason}")]
#[non_exhaustive]
pub struct UpgradeError {
    reason: String,
    status: StatusCode,
}

impl UpgradeError {
    /// The HTTP status to answer with: 426 (Upgrade Required) when the
    /// request is not a WebSocket upgrade at all, else 400.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// The `101 Switching Protocols` answer to a WebSocket upgrade request
/// (RFC 6455 §4.2.2), with `Sec-WebSocket-Protocol: gtl.v1` when the client
/// offered it.
///
/// Send it, then take the upgraded IO from hyper and hand it to
/// [`server_connection`](crate::server_connection). A request that is not a
/// valid upgrade (not a `GET`, missing `Upgrade: websocket`,
/// `Connection: upgrade`, `Sec-WebSocket-Version: 13` or
/// `Sec-WebSocket-Key`) is an error; answer it with
/// [`UpgradeError::status`].
pub fn upgrade_response<B>(request: &Request<B>) -> Result<Response<()>, UpgradeError> {
    let mut response =
        tokio_tungstenite::tungstenite::handshake::server::create_response_with_body(
            request,
            || (),
        )
        .map_err(|e| {
            let status = match e {
                WsError::Protocol(
                    ProtocolError::MissingConnectionUpgradeHeader
                    | ProtocolError::MissingUpgradeWebSocketHeader,
                ) => StatusCode::UPGRADE_REQUIRED,
                _ => StatusCode::BAD_REQUEST,
            };
            UpgradeError {
                reason: e.to_string(),
                status,
            }
        })?;
    echo_subprotocol(request.headers(), response.headers_mut());
    Ok(response)
}

/// Accepts the `gtl.v1` subprotocol: when the request's
/// `Sec-WebSocket-Protocol` lists it, the response names it (a client that
/// offers a subprotocol fails the handshake unless the server picks one).
/// Offering it is optional; without it nothing is added.
///
/// For a server built on tungstenite's own handshake
/// (`tokio_tungstenite::accept_hdr_async`), call it from the callback:
/// `|req, mut resp| { echo_subprotocol(req.headers(), resp.headers_mut()); Ok(resp) }`.
pub fn echo_subprotocol(request: &HeaderMap, response: &mut HeaderMap) {
    let offered = request
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if offered {
        response.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protocol: Option<&str>) -> Request<()> {
        let mut builder = Request::get("/gtl/v1/ws")
            .header("Host", "localhost")
            .header("Connection", "keep-alive, Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(protocol) = protocol {
            builder = builder.header("Sec-WebSocket-Protocol", protocol);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn answers_with_the_accept_key_and_the_subprotocol() {
        let response = upgrade_response(&request(Some("chat, gtl.v1"))).unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The example key and answer of RFC 6455 §1.3.
        assert_eq!(
            response.headers()["Sec-WebSocket-Accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()[SEC_WEBSOCKET_PROTOCOL], "gtl.v1");
    }

    #[test]
    fn the_subprotocol_is_optional() {
        let response = upgrade_response(&request(None)).unwrap();
        assert!(response.headers().get(SEC_WEBSOCKET_PROTOCOL).is_none());
        let response = upgrade_response(&request(Some("chat"))).unwrap();
        assert!(response.headers().get(SEC_WEBSOCKET_PROTOCOL).is_none());
    }

    #[test]
    fn a_plain_get_is_refused() {
        let plain = Request::get("/gtl/v1/ws").body(()).unwrap();
        let err = upgrade_response(&plain).unwrap_err();
        assert_eq!(err.status(), StatusCode::UPGRADE_REQUIRED, "{err}");
        let mut no_key = request(None);
        no_key.headers_mut().remove("Sec-WebSocket-Key");
        let err = upgrade_response(&no_key).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{err}");
    }
}
