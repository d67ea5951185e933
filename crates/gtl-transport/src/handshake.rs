//! The hello/welcome exchange that opens every stream connection.
//!
//! The client sends `hello` (versions, encodings, token) in JSON; the server
//! answers `welcome` in JSON with the negotiated version and encoding, and
//! from the next frame on both ends use that encoding. A client whose
//! versions share no major with the server gets a `VERSION_UNSUPPORTED`
//! error frame and the connection is closed: never a hang.

use gtl_proto::{
    Body, Encoding, Error, ErrorCode, Frame, Hello, PROTOCOL_VERSION, SUPPORTED_VERSIONS, Version,
    Welcome, negotiate,
};

use crate::{Connection, TransportError};

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The connection failed during the handshake.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer answered with an error frame, or we rejected its hello.
    #[error("{code}: {message}")]
    Rejected {
        /// The GTL error code.
        code: ErrorCode,
        /// What went wrong, for a person.
        message: String,
    },
    /// The peer sent something other than the expected frame.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        /// The frame type expected.
        expected: &'static str,
        /// What arrived instead.
        got: String,
    },
}

impl HandshakeError {
    /// The GTL code to report this error with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Transport(e) => e.code(),
            Self::Rejected { code, .. } => *code,
            Self::Unexpected { .. } => ErrorCode::InvalidRequest,
        }
    }
}

/// Picks the encoding: protobuf when both ends offer it, else JSON.
pub fn negotiate_encoding(offered: &[i32], supported: &[Encoding]) -> Encoding {
    let protobuf = Encoding::Protobuf;
    if offered.contains(&(protobuf as i32)) && supported.contains(&protobuf) {
        protobuf
    } else {
        Encoding::Json
    }
}

/// Client side: sends `hello`, waits for `welcome`, switches encoding.
pub async fn client_handshake(
    conn: &mut Connection,
    mut hello: Hello,
) -> Result<Welcome, HandshakeError> {
    if hello.versions.is_empty() {
        hello.versions = SUPPORTED_VERSIONS.iter().map(Version::to_string).collect();
    }
    conn.write
        .write_frame(Frame::control(0, Body::Hello(hello)).as_ref())?;
    conn.write.flush().await?;
    let frame = conn
        .read
        .read_frame()
        .await?
        .ok_or(TransportError::Closed)?;
    match frame.body {
        Some(Body::Welcome(welcome)) => {
            let encoding = welcome.encoding();
            conn.read.set_encoding(encoding);
            conn.write.set_encoding(encoding);
            Ok(welcome)
        }
        Some(Body::Error(error)) => Err(rejected(&error)),
        other => Err(unexpected("welcome", other.as_ref())),
    }
}

/// What the server learned from a client's hello.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerHandshake {
    /// The client's hello (its token, client name, features).
    pub hello: Hello,
    /// What was sent back.
    pub welcome: Welcome,
}

/// Server side: waits for `hello`, answers `welcome` (or an error frame, then
/// fails), switches encoding.
pub async fn server_handshake(
    conn: &mut Connection,
    server: &str,
    max_frame_bytes: u64,
) -> Result<ServerHandshake, HandshakeError> {
    let frame = conn
        .read
        .read_frame()
        .await?
        .ok_or(TransportError::Closed)?;
    let hello = match frame.body {
        Some(Body::Hello(hello)) => hello,
        other => {
            let err = unexpected("hello", other.as_ref());
            send_error(conn, err.code(), &err.to_string()).await;
            return Err(err);
        }
    };
    let version = Version::parse_list(hello.versions.iter().map(String::as_str))
        .map_err(|e| e.to_string())
        .and_then(|offered| negotiate(&offered, SUPPORTED_VERSIONS).map_err(|e| e.to_string()));
    let version = match version {
        Ok(version) => version,
        Err(message) => {
            send_error(conn, ErrorCode::VersionUnsupported, &message).await;
            return Err(HandshakeError::Rejected {
                code: ErrorCode::VersionUnsupported,
                message,
            });
        }
    };
    let encoding = negotiate_encoding(&hello.encodings, &conn.encodings);
    let welcome = Welcome {
        version: version.to_string(),
        encoding: encoding as i32,
        features: hello
            .features
            .iter()
            .filter(|f| FEATURES.contains(&f.as_str()))
            .cloned()
            .collect(),
        server: server.to_owned(),
        max_frame_bytes,
    };
    conn.write
        .write_frame(Frame::control(0, Body::Welcome(welcome.clone())).as_ref())?;
    conn.write.flush().await?;
    conn.read.set_encoding(encoding);
    conn.write.set_encoding(encoding);
    debug_assert!(version <= PROTOCOL_VERSION);
    Ok(ServerHandshake { hello, welcome })
}

/// Optional features this implementation has.
const FEATURES: &[&str] = &["resume", "pipe", "ack"];

async fn send_error(conn: &mut Connection, code: ErrorCode, message: &str) {
    let error = Error {
        code: code as i32,
        message: message.to_owned(),
        retryable: false,
        ..Error::default()
    };
    // The connection is being refused; a failed write changes nothing.
    if conn
        .write
        .write_frame(Frame::control(0, Body::Error(error)).as_ref())
        .is_ok()
    {
        let _ = conn.write.close().await;
    }
}

fn rejected(error: &Error) -> HandshakeError {
    HandshakeError::Rejected {
        code: error.code(),
        message: error.message.clone(),
    }
}

fn unexpected(expected: &'static str, got: Option<&Body>) -> HandshakeError {
    let got = got.map_or("a frame without body", |b| b.frame_type().as_str());
    HandshakeError::Unexpected {
        expected,
        got: got.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PeerInfo, stream_connection};

    fn pair() -> (Connection, Connection) {
        let (a, b) = tokio::io::duplex(4096);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        (
            stream_connection(ar, aw, PeerInfo::new("memory", "client"), Encoding::Json),
            stream_connection(br, bw, PeerInfo::new("memory", "server"), Encoding::Json),
        )
    }

    #[tokio::test]
    async fn negotiates_protobuf_when_both_offer_it() {
        let (mut client, mut server) = pair();
        let hello = Hello {
            encodings: vec![Encoding::Json as i32, Encoding::Protobuf as i32],
            ..Hello::default()
        };
        let (welcome, accepted) = tokio::join!(
            client_handshake(&mut client, hello),
            server_handshake(&mut server, "test", 1024)
        );
        let welcome = welcome.unwrap();
        assert_eq!(welcome.version, "1.0");
        assert_eq!(welcome.encoding(), Encoding::Protobuf);
        assert_eq!(accepted.unwrap().welcome, welcome);

        // Both ends now speak protobuf.
        let ping = Frame::control(3, Body::Ping(gtl_proto::Ping { nonce: 1 }));
        client.write.write_frame(ping.as_ref()).unwrap();
        client.write.flush().await.unwrap();
        assert_eq!(server.read.read_frame().await.unwrap(), Some(ping));
    }

    #[tokio::test]
    async fn json_only_clients_stay_on_json() {
        let (mut client, mut server) = pair();
        let (welcome, _) = tokio::join!(
            client_handshake(&mut client, Hello::default()),
            server_handshake(&mut server, "test", 1024)
        );
        assert_eq!(welcome.unwrap().encoding(), Encoding::Json);
    }

    #[tokio::test]
    async fn unknown_major_version_is_refused_not_hung() {
        let (mut client, mut server) = pair();
        let hello = Hello {
            versions: vec!["2.0".into()],
            ..Hello::default()
        };
        let (client_result, server_result) = tokio::join!(
            client_handshake(&mut client, hello),
            server_handshake(&mut server, "test", 1024)
        );
        assert_eq!(
            client_result.unwrap_err().code(),
            ErrorCode::VersionUnsupported
        );
        assert_eq!(
            server_result.unwrap_err().code(),
            ErrorCode::VersionUnsupported
        );
    }

    #[tokio::test]
    async fn a_call_before_hello_is_refused() {
        let (mut client, mut server) = pair();
        let ping = Frame::control(1, Body::Ping(gtl_proto::Ping { nonce: 1 }));
        client.write.write_frame(ping.as_ref()).unwrap();
        client.write.flush().await.unwrap();
        let err = server_handshake(&mut server, "test", 1024)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        let reply = client.read.read_frame().await.unwrap().unwrap();
        assert!(matches!(reply.body, Some(Body::Error(_))));
    }
}
