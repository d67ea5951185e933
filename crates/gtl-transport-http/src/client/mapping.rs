//! How the HTTP port's answers become the frames a framed server would
//! send, without IO: SSE events, error bodies and the models list in,
//! frames for one `call_id` out; and the session routes' paths.
//!
//! The SSE syntax itself (line ends, comments, multi-line `data:`) is
//! `gtl-proto`'s [`Parser`], the one the SSE encoder is tested against.

use gtl_proto::sse::{Event, LineTooLong, Parser};
use gtl_proto::{Body, CodecError, Done, Error, ErrorCode, Frame, Phase};
use serde_json::Value;

/// A call's event stream, parsed as its bytes arrive: each SSE event is
/// one frame (its `data:` is the frame's JSON), re-addressed to the call.
#[derive(Debug)]
pub(super) struct EventFrames {
    call_id: u64,
    parser: Parser,
    events: Vec<Event>,
    /// The last frame ended the call (`done` or an `error` event), so the
    /// stream may end here.
    at_end: bool,
}

impl EventFrames {
    /// A stream for `call_id`, taking frames of up to `max_frame_bytes`.
    pub(super) fn new(call_id: u64, max_frame_bytes: usize) -> Self {
        // A line is `data: ` and the frame's JSON, which the server keeps
        // within the limit.
        let max_line = max_frame_bytes.saturating_add(LINE_OVERHEAD);
        Self {
            call_id,
            parser: Parser::new(max_line),
            events: Vec::new(),
            at_end: false,
        }
    }

    /// Parses a chunk of the body. Each completed event becomes a frame,
    /// or, when its data is not a frame, a codec error about that event
    /// alone (as a bad line is on NDJSON). A line over the limit is an
    /// error: the stream cannot be read on.
    pub(super) fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<Result<Frame, CodecError>>,
    ) -> Result<(), LineTooLong> {
        self.parser.feed(chunk, &mut self.events)?;
        for event in self.events.drain(..) {
            let frame = Frame::from_json(event.data.as_bytes())
                .map_err(CodecError::from)
                .and_then(|mut frame| {
                    if frame.body.is_none() {
                        return Err(CodecError::MissingBody {
                            call_id: self.call_id,
                        });
                    }
                    frame.call_id = self.call_id;
                    Ok(frame)
                });
            if let Ok(frame) = &frame {
                self.at_end = ends_call(frame);
            }
            out.push(frame);
        }
        Ok(())
    }

    /// Whether the stream may end here: the last frame ended the call. A
    /// stream that ends anywhere else was cut.
    pub(super) fn complete(&self) -> bool {
        self.at_end
    }
}

/// `data: ` and the blank line around a frame's JSON, with room to spare.
const LINE_OVERHEAD: usize = 64;

/// Whether a frame is a call's terminal event. An `error` with `seq` 0 is
/// not: it reports one event that could not be sent, and the stream goes
/// on.
fn ends_call(frame: &Frame) -> bool {
    frame.seq != 0 && frame.body.as_ref().is_some_and(Body::is_terminal)
}

/// The `error` frame an unsuccessful answer carries as its body, addressed
/// to `call_id`; `None` when the body is not one (the answer did not come
/// from a GTL gateway).
pub(super) fn error_frame(body: &[u8], call_id: u64) -> Option<Frame> {
    let mut frame = Frame::from_json(body).ok()?;
    if !matches!(frame.body, Some(Body::Error(_))) {
        return None;
    }
    frame.call_id = call_id;
    frame.seq = 0;
    Some(frame)
}

/// An `error` frame for `call_id` outside any session's events, as the
/// framed server sends for a frame it refuses.
pub(super) fn refusal(call_id: u64, session_id: &str, code: ErrorCode, message: &str) -> Frame {
    Frame {
        call_id,
        session_id: session_id.to_owned(),
        seq: 0,
        body: Some(Body::Error(Error {
            code: code as i32,
            message: message.to_owned(),
            retryable: code.is_retryable(),
            phase: Phase::BeforeFirstToken as i32,
            retry_after_ms: 0,
        })),
    }
}

/// `GET /gtl/v1/models`'s answer, `{"providers": [provider_info…]}`, as
/// the frames models.list gets on a framed transport: one `provider_info`
/// per provider, then `done`. The error says what is wrong with an answer
/// that is not such a list.
pub(super) fn models_frames(body: &[u8], call_id: u64) -> Result<Vec<Frame>, String> {
    let mut answer: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Some(Value::Array(providers)) = answer.get_mut("providers").map(Value::take) else {
        return Err("it has no `providers` list".into());
    };
    let mut frames = Vec::with_capacity(providers.len() + 1);
    for mut provider in providers {
        // The route leaves each frame's type out.
        if let Some(object) = provider.as_object_mut() {
            object.insert("type".into(), "provider_info".into());
        }
        let mut frame =
            Frame::from_json(provider.to_string().as_bytes()).map_err(|e| e.to_string())?;
        frame.call_id = call_id;
        frames.push(frame);
    }
    let done = Done {
        finish_reason: "stop".into(),
    };
    frames.push(Frame::control(call_id, Body::Done(done)));
    Ok(frames)
}

/// The path of a session route, `/gtl/v1/sessions/{id}/{action}`, with the
/// id percent-encoded.
pub(super) fn session_path(session_id: &str, action: &str) -> String {
    format!("/gtl/v1/sessions/{}/{action}", percent_encode(session_id))
}

/// `?provider=<name>` for models.list of one provider, or nothing.
pub(super) fn models_path(provider: &str) -> String {
    match provider {
        "" => "/gtl/v1/models".to_owned(),
        name => format!("/gtl/v1/models?provider={}", percent_encode(name)),
    }
}

/// Escapes every byte but URL-unreserved ones (RFC 3986 §2.3).
fn percent_encode(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use gtl_proto::{Accepted, Token};

    use super::*;

    fn types(frames: &[Result<Frame, CodecError>]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                Ok(f) => format!("{} {}", f.frame_type().unwrap().as_str(), f.seq),
                Err(e) => format!("bad: {e}"),
            })
            .collect()
    }

    #[test]
    fn events_become_frames_of_the_call_in_any_chunking() {
        let wire = concat!(
            ": keep-alive\r\n\r\n",
            "event: accepted\r\ndata: {\"type\":\"accepted\",\"session_id\":\"s_1\",\"resume_token\":\"rt\"}\r\n\r\n",
            "event: token\nid: 1\ndata: {\"type\":\"token\",\"session_id\":\"s_1\",\n",
            "data: \"seq\":1,\"text\":\"hi\"}\n\n",
            "event: done\rid: 2\rdata: {\"type\":\"done\",\"session_id\":\"s_1\",\"seq\":2,\"finish_reason\":\"stop\"}\r\r",
        );
        let mut whole = Vec::new();
        let mut stream = EventFrames::new(7, 1024);
        stream.feed(wire.as_bytes(), &mut whole).unwrap();
        assert_eq!(types(&whole), ["accepted 0", "token 1", "done 2"]);
        assert!(stream.complete());
        let frames: Vec<Frame> = whole.into_iter().map(Result::unwrap).collect();
        assert!(
            frames
                .iter()
                .all(|f| f.call_id == 7 && f.session_id == "s_1")
        );
        assert_eq!(
            frames[0].body,
            Some(Body::Accepted(Accepted {
                resume_token: "rt".into()
            }))
        );
        // The two data lines join with a newline, which JSON takes as space.
        assert_eq!(
            frames[1].body,
            Some(Body::Token(Token { text: "hi".into() }))
        );

        for cut in 0..wire.len() {
            let mut stream = EventFrames::new(7, 1024);
            let mut pieces = Vec::new();
            stream.feed(&wire.as_bytes()[..cut], &mut pieces).unwrap();
            stream.feed(&wire.as_bytes()[cut..], &mut pieces).unwrap();
            let pieces: Vec<Frame> = pieces.into_iter().map(Result::unwrap).collect();
            assert_eq!(pieces, frames, "cut at {cut}");
        }
    }

    #[test]
    fn a_stream_is_complete_only_right_after_a_terminal_event() {
        let mut stream = EventFrames::new(1, 1024);
        let mut out = Vec::new();
        assert!(!stream.complete());
        stream
            .feed(
                b"data: {\"type\":\"accepted\",\"session_id\":\"s\"}\n\n",
                &mut out,
            )
            .unwrap();
        assert!(!stream.complete());
        // An error about one event that could not be sent does not end it.
        stream
            .feed(
                b"data: {\"type\":\"error\",\"session_id\":\"s\",\"code\":\"FRAME_TOO_LARGE\",\"message\":\"x\"}\n\n",
                &mut out,
            )
            .unwrap();
        assert!(!stream.complete());
        stream
            .feed(
                b"data: {\"type\":\"error\",\"session_id\":\"s\",\"seq\":4,\"code\":\"CANCELLED\",\"message\":\"x\"}\n\n",
                &mut out,
            )
            .unwrap();
        assert!(stream.complete());
        // A pipe's next turn: not at an end until its own `done`.
        stream
            .feed(
                b"data: {\"type\":\"token\",\"seq\":5,\"text\":\"a\"}\n\n",
                &mut out,
            )
            .unwrap();
        assert!(!stream.complete());
    }

    #[test]
    fn a_bad_event_is_an_error_about_it_alone_and_long_lines_stop_the_stream() {
        let mut stream = EventFrames::new(1, 1024);
        let mut out = Vec::new();
        stream
            .feed(
                b"data: {not json\n\ndata: {}\n\ndata: {\"type\":\"token\",\"seq\":1,\"text\":\"a\"}\n\n",
                &mut out,
            )
            .unwrap();
        let seen = types(&out);
        assert!(seen[0].starts_with("bad: invalid JSON frame"), "{seen:?}");
        assert!(seen[1].starts_with("bad: "), "{seen:?}");
        assert_eq!(seen[2], "token 1");

        let mut small = EventFrames::new(1, 16);
        let long = format!("data: {}\n", "x".repeat(100));
        assert!(small.feed(long.as_bytes(), &mut out).is_err());
    }

    #[test]
    fn error_bodies_become_error_frames_of_the_call() {
        let body = br#"{"type":"error","session_id":"s_9","code":"RESUME_NOT_FOUND","message":"no such session","retryable":false}"#;
        let frame = error_frame(body, 3).unwrap();
        assert_eq!(
            (frame.call_id, frame.seq, frame.session_id.as_str()),
            (3, 0, "s_9")
        );
        let Some(Body::Error(error)) = frame.body else {
            unreachable!()
        };
        assert_eq!(error.code(), ErrorCode::ResumeNotFound);
        assert_eq!(error.message, "no such session");
        // Not from a gateway: a proxy's page, another frame.
        assert_eq!(error_frame(b"<html>Bad Gateway</html>", 3), None);
        assert_eq!(error_frame(br#"{"type":"pong","nonce":1}"#, 3), None);
    }

    #[test]
    fn the_models_list_becomes_provider_infos_then_done() {
        let body = br#"{"providers":[{"provider":"echo","models":[{"name":"echo"}]},{"provider":"other","models":[]}]}"#;
        let frames = models_frames(body, 5).unwrap();
        let seen: Vec<&str> = frames
            .iter()
            .map(|f| f.frame_type().unwrap().as_str())
            .collect();
        assert_eq!(seen, ["provider_info", "provider_info", "done"]);
        assert!(frames.iter().all(|f| f.call_id == 5));
        let Some(Body::ProviderInfo(info)) = &frames[0].body else {
            unreachable!()
        };
        assert_eq!((info.provider.as_str(), info.models.len()), ("echo", 1));
        assert!(models_frames(b"{}", 5).is_err());
        assert!(models_frames(b"[", 5).is_err());
    }

    #[test]
    fn paths_escape_what_is_not_unreserved() {
        assert_eq!(
            session_path("s_1-a.b~c", "events"),
            "/gtl/v1/sessions/s_1-a.b~c/events"
        );
        assert_eq!(
            session_path("a/b c%", "cancel"),
            "/gtl/v1/sessions/a%2Fb%20c%25/cancel"
        );
        assert_eq!(models_path(""), "/gtl/v1/models");
        assert_eq!(
            models_path("my provider"),
            "/gtl/v1/models?provider=my%20provider"
        );
    }
}
