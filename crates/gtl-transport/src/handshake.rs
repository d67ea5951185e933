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
        .write_frame(Frame::control(0, Body::Hello(Box::new(hello))).as_ref())?;
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
            Ok(*welcome)
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
    /// A peer written from the seeds alone may open with its call instead
    /// of a `hello`: then the connection runs with the defaults (JSON,
    /// version 1.0, no token), no `welcome` is sent, and this is that first
    /// frame, still to be served.
    pub first: Option<Frame>,
}

/// Server side: waits for `hello`, answers `welcome`, switches encoding.
///
/// A first frame that is not a `hello` with `call_id` 0 (a different frame,
/// an undecodable or oversized one, a hello for a call) is answered with an
/// `error` frame (`call_id` 0, `seq` 0, code [`HandshakeError::code`]) in the
/// connection's initial encoding, as is a hello with no common version
/// (`VERSION_UNSUPPORTED`); the sending direction is then flushed and shut
/// down and the error returned. When the connection failed or the peer
/// closed it, there is no one to answer: the error is just returned.
pub async fn server_handshake(
    conn: &mut Connection,
    server: &str,
    max_frame_bytes: u64,
) -> Result<ServerHandshake, HandshakeError> {
    let answered = match conn.read.read_frame().await {
        Ok(Some(frame)) => answer_hello(frame, &conn.encodings, server, max_frame_bytes),
        Ok(None) => Err(TransportError::Closed.into()),
        Err(e) => Err(e.into()),
    };
    let handshake = match answered {
        Ok(handshake) => handshake,
        Err(err) => {
            if answerable(&err) {
                send_error(conn, err.code(), &reply_message(&err)).await;
            }
            return Err(err);
        }
    };
    if handshake.first.is_none() {
        let welcome = Frame::control(0, Body::Welcome(Box::new(handshake.welcome.clone())));
        conn.write.write_frame(welcome.as_ref())?;
        conn.write.flush().await?;
        let encoding = handshake.welcome.encoding();
        conn.read.set_encoding(encoding);
        conn.write.set_encoding(encoding);
    }
    Ok(handshake)
}

/// The server's answer to a client's first frame, without IO: what
/// [`server_handshake`] decides, for transports that carry the handshake in
/// a request of its own (the HTTP port's `POST /gtl/v1/hello`).
///
/// For a `hello` with `call_id` 0 and a version in common, the `welcome` to
/// send: that version, the encoding picked among `encodings` (see
/// [`negotiate_encoding`]), the hello's features this implementation has,
/// `server` and `max_frame_bytes`. For a `completion_request` (a client
/// written from the seeds alone), the defaults and the frame in
/// [`ServerHandshake::first`]; no `welcome` is sent then. Anything else is
/// an error whose [`code`](HandshakeError::code) and message the peer
/// should be told, as [`server_handshake`] tells it.
pub fn answer_hello(
    frame: Frame,
    encodings: &[Encoding],
    server: &str,
    max_frame_bytes: u64,
) -> Result<ServerHandshake, HandshakeError> {
    let (hello, version) = match opening(frame)? {
        Opening::Hello(hello, version) => (hello, version),
        Opening::Call(first) => {
            let welcome = Welcome {
                version: PROTOCOL_VERSION.to_string(),
                encoding: Encoding::Json as i32,
                server: server.to_owned(),
                max_frame_bytes,
                ..Welcome::default()
            };
            return Ok(ServerHandshake {
                hello: Hello::default(),
                welcome,
                first: Some(*first),
            });
        }
    };
    let encoding = negotiate_encoding(&hello.encodings, encodings);
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
    debug_assert!(version <= PROTOCOL_VERSION);
    Ok(ServerHandshake {
        hello,
        welcome,
        first: None,
    })
}

/// How a client opened its connection.
enum Opening {
    /// With `hello`, sharing this version.
    Hello(Hello, Version),
    /// With a call, as a client written from the seeds alone does.
    Call(Box<Frame>),
}

/// Optional features this implementation has.
const FEATURES: &[&str] = &["resume", "pipe", "ack"];

/// The client's hello and the version it shares with us, or the call it
/// opened with instead.
fn opening(frame: Frame) -> Result<Opening, HandshakeError> {
    let hello = match frame.body {
        Some(Body::Hello(hello)) => hello,
        // The seeds show calls sent straight away; the connection starts in
        // JSON, the encoding they use.
        Some(Body::CompletionRequest(_)) => return Ok(Opening::Call(Box::new(frame))),
        other => return Err(unexpected("hello", other.as_ref())),
    };
    //= spec#7
    //# The client's first frame is `hello` (call_id 0)
    if frame.call_id != 0 {
        return Err(HandshakeError::Rejected {
            code: ErrorCode::InvalidRequest,
            message: format!("hello must have call_id 0, not {}", frame.call_id),
        });
    }
    let version = Version::parse_list(hello.versions.iter().map(String::as_str))
        .map_err(|e| e.to_string())
        .and_then(|offered| negotiate(&offered, SUPPORTED_VERSIONS).map_err(|e| e.to_string()))
        .map_err(|message| HandshakeError::Rejected {
            code: ErrorCode::VersionUnsupported,
            message,
        })?;
    Ok(Opening::Hello(*hello, version))
}

/// The error frame's message: the frame carries the code already.
fn reply_message(err: &HandshakeError) -> String {
    match err {
        HandshakeError::Rejected { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Whether the peer can still be told why its handshake failed: every
/// failure but a broken or closed connection. After a decoding error, even a
/// fatal one, the sending direction still works.
fn answerable(err: &HandshakeError) -> bool {
    match err {
        HandshakeError::Transport(e) => matches!(e, TransportError::Codec(_)),
        HandshakeError::Rejected { .. } | HandshakeError::Unexpected { .. } => true,
    }
}

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
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::BytesMut;
    use gtl_proto::Codec;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

    use super::*;
    use crate::{PeerInfo, StreamReader, StreamWriter, stream_connection};

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

    #[test]
    fn answer_hello_is_the_handshake_without_io() {
        let hello = Frame::control(
            0,
            Body::Hello(Box::new(Hello {
                versions: vec!["1.0".into()],
                encodings: vec![Encoding::Json as i32, Encoding::Protobuf as i32],
                features: vec!["resume".into(), "teleport".into()],
                ..Hello::default()
            })),
        );
        // A transport that carries JSON only gets JSON, whatever is offered.
        let answer = answer_hello(hello.clone(), &[Encoding::Json], "test", 1024).unwrap();
        assert_eq!(answer.welcome.version, "1.0");
        assert_eq!(answer.welcome.encoding(), Encoding::Json);
        assert_eq!(answer.welcome.features, ["resume"]);
        assert_eq!(answer.welcome.max_frame_bytes, 1024);
        assert!(answer.first.is_none());
        let both = [Encoding::Json, Encoding::Protobuf];
        let answer = answer_hello(hello, &both, "test", 1024).unwrap();
        assert_eq!(answer.welcome.encoding(), Encoding::Protobuf);

        let err = answer_hello(self::hello(7), &both, "test", 1024).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        let ping = Frame::control(0, Body::Ping(gtl_proto::Ping { nonce: 1 }));
        let err = answer_hello(ping, &both, "test", 1024).unwrap_err();
        assert_eq!(err.to_string(), "expected hello, got ping");
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

    /// Sends `first` as the client's opening bytes, runs the server side,
    /// and returns its error and the one frame the client got before the
    /// server closed.
    async fn refused(server_encoding: Encoding, first: &[u8]) -> (HandshakeError, Error) {
        let (a, b) = tokio::io::duplex(4096);
        let (mut ar, mut aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let reader = StreamReader::new(br, server_encoding).with_max_frame_bytes(256);
        let mut server = Connection {
            read: Box::new(reader),
            write: Box::new(StreamWriter::new(bw, server_encoding)),
            peer: PeerInfo::new("memory", "server"),
            encodings: vec![Encoding::Json, Encoding::Protobuf],
        };
        aw.write_all(first).await.unwrap();
        let err = server_handshake(&mut server, "test", 256)
            .await
            .unwrap_err();
        // The server's sending side is shut down: the reply is all there is.
        let mut wire = Vec::new();
        ar.read_to_end(&mut wire).await.unwrap();
        let mut codec = Codec::new(server_encoding);
        let mut wire = BytesMut::from(&wire[..]);
        let reply = codec.decode(&mut wire).unwrap().unwrap();
        assert_eq!(codec.decode(&mut wire).unwrap(), None);
        assert!(wire.is_empty());
        assert_eq!((reply.call_id, reply.seq), (0, 0));
        assert_eq!(reply.session_id, "");
        let Some(Body::Error(error)) = reply.body else {
            panic!("not an error frame: {reply:?}");
        };
        assert_eq!(error.code(), err.code());
        assert_eq!(error.message, reply_message(&err));
        assert!(!error.retryable);
        (err, error)
    }

    fn json(frame: &Frame) -> Vec<u8> {
        let mut line = frame.to_json().unwrap().into_bytes();
        line.push(b'\n');
        line
    }

    fn hello(call_id: u64) -> Frame {
        Frame::control(call_id, Body::Hello(Box::default()))
    }

    #[tokio::test]
    async fn a_call_before_hello_is_refused() {
        let ping = Frame::control(1, Body::Ping(gtl_proto::Ping { nonce: 1 }));
        let (err, error) = refused(Encoding::Json, &json(&ping)).await;
        assert!(matches!(err, HandshakeError::Unexpected { .. }), "{err}");
        assert_eq!(error.code(), ErrorCode::InvalidRequest);
        assert_eq!(error.message, "expected hello, got ping");
    }

    #[tokio::test]
    async fn a_malformed_first_frame_is_refused() {
        for line in [&b"{not json\n"[..], b"{\"type\":\"no_such_frame\"}\n"] {
            let (err, error) = refused(Encoding::Json, line).await;
            assert!(
                matches!(err, HandshakeError::Transport(TransportError::Codec(_))),
                "{err}"
            );
            assert_eq!(error.code(), ErrorCode::InvalidRequest);
        }
    }

    #[tokio::test]
    async fn an_oversized_first_frame_is_refused() {
        let big = Frame::control(
            0,
            Body::Hello(Box::new(Hello {
                client: "x".repeat(300),
                ..Hello::default()
            })),
        );
        // A whole line over the limit, and one with no end in sight.
        for line in [json(&big), vec![b' '; 300]] {
            let (_, error) = refused(Encoding::Json, &line).await;
            assert_eq!(error.code(), ErrorCode::FrameTooLarge);
        }
    }

    #[tokio::test]
    async fn a_hello_for_a_call_is_refused() {
        let (err, error) = refused(Encoding::Json, &json(&hello(7))).await;
        assert!(matches!(err, HandshakeError::Rejected { .. }), "{err}");
        assert_eq!(error.code(), ErrorCode::InvalidRequest);
        assert_eq!(error.message, "hello must have call_id 0, not 7");
    }

    #[tokio::test]
    async fn unparsable_versions_are_refused() {
        let hello = Frame::control(
            0,
            Body::Hello(Box::new(Hello {
                versions: vec!["one".into()],
                ..Hello::default()
            })),
        );
        let (_, error) = refused(Encoding::Json, &json(&hello)).await;
        assert_eq!(error.code(), ErrorCode::VersionUnsupported);
    }

    #[tokio::test]
    async fn unframeable_protobuf_is_refused() {
        let (_, error) = refused(Encoding::Protobuf, &[0xff; 11]).await;
        assert_eq!(error.code(), ErrorCode::InvalidRequest);
        let mut absurd = vec![0x80; 9];
        absurd.push(0x01);
        let (_, error) = refused(Encoding::Protobuf, &absurd).await;
        assert_eq!(error.code(), ErrorCode::FrameTooLarge);
    }

    #[tokio::test]
    async fn a_peer_that_closed_gets_nothing() {
        let (mut client, mut server) = pair();
        client.write.close().await.unwrap();
        let err = server_handshake(&mut server, "test", 1024)
            .await
            .unwrap_err();
        assert!(
            matches!(err, HandshakeError::Transport(TransportError::Closed)),
            "{err}"
        );
        drop(server);
        assert_eq!(client.read.read_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_broken_connection_gets_nothing() {
        struct Broken;
        impl AsyncRead for Broken {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &mut ReadBuf<'_>,
            ) -> Poll<std::io::Result<()>> {
                Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()))
            }
        }
        let (a, b) = tokio::io::duplex(4096);
        let (_, bw) = tokio::io::split(b);
        let mut server = stream_connection(
            Broken,
            bw,
            PeerInfo::new("memory", "server"),
            Encoding::Json,
        );
        let err = server_handshake(&mut server, "test", 1024)
            .await
            .unwrap_err();
        assert!(
            matches!(err, HandshakeError::Transport(TransportError::Io(_))),
            "{err}"
        );
        drop(server);
        let mut wire = Vec::new();
        let (mut ar, _aw) = tokio::io::split(a);
        ar.read_to_end(&mut wire).await.unwrap();
        assert!(wire.is_empty());
    }
}
