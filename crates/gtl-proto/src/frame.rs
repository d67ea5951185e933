//! The frame envelope: owned [`Frame`] and the borrowed [`FrameRef`] the
//! encoders take, so a session's stored events are encoded without a clone.

use prost::bytes::BufMut;

use crate::{Body, Frame};

/// A borrowed frame: the envelope's fields and a reference to the body.
///
/// Encoders take this so a session log can send its stored events without
/// cloning them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameRef<'a> {
    /// Multiplexing id of the call on its connection (0: connection-level).
    pub call_id: u64,
    /// The session the frame belongs to ("" when none).
    pub session_id: &'a str,
    /// Event sequence number (see [`Frame`]).
    pub seq: u64,
    /// The payload; `None` only in malformed input.
    pub body: Option<&'a Body>,
}

/// The JSON `type` tag of each body, which is also how the frame is named in
/// logs, metrics and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs, reason = "each variant is named after its JSON type tag")]
pub enum FrameType {
    Status,
    Token,
    ToolCall,
    Patch,
    Usage,
    Error,
    Done,
    Hello,
    CompletionRequest,
    Input,
    Resume,
    Ack,
    Cancel,
    Ping,
    ModelsRequest,
    Welcome,
    Accepted,
    Pong,
    ProviderInfo,
}

impl FrameType {
    /// Every frame type, in schema order.
    pub const ALL: &'static [Self] = &[
        Self::Status,
        Self::Token,
        Self::ToolCall,
        Self::Patch,
        Self::Usage,
        Self::Error,
        Self::Done,
        Self::Hello,
        Self::CompletionRequest,
        Self::Input,
        Self::Resume,
        Self::Ack,
        Self::Cancel,
        Self::Ping,
        Self::ModelsRequest,
        Self::Welcome,
        Self::Accepted,
        Self::Pong,
        Self::ProviderInfo,
    ];

    /// The JSON `type` tag, e.g. `"tool_call"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Token => "token",
            Self::ToolCall => "tool_call",
            Self::Patch => "patch",
            Self::Usage => "usage",
            Self::Error => "error",
            Self::Done => "done",
            Self::Hello => "hello",
            Self::CompletionRequest => "completion_request",
            Self::Input => "input",
            Self::Resume => "resume",
            Self::Ack => "ack",
            Self::Cancel => "cancel",
            Self::Ping => "ping",
            Self::ModelsRequest => "models_request",
            Self::Welcome => "welcome",
            Self::Accepted => "accepted",
            Self::Pong => "pong",
            Self::ProviderInfo => "provider_info",
        }
    }

    /// Parses a JSON `type` tag.
    pub fn from_tag(tag: &str) -> Option<Self> {
        // A match, not a search of `ALL`: every JSON frame passes here.
        Some(match tag {
            "status" => Self::Status,
            "token" => Self::Token,
            "tool_call" => Self::ToolCall,
            "patch" => Self::Patch,
            "usage" => Self::Usage,
            "error" => Self::Error,
            "done" => Self::Done,
            "hello" => Self::Hello,
            "completion_request" => Self::CompletionRequest,
            "input" => Self::Input,
            "resume" => Self::Resume,
            "ack" => Self::Ack,
            "cancel" => Self::Cancel,
            "ping" => Self::Ping,
            "models_request" => Self::ModelsRequest,
            "welcome" => Self::Welcome,
            "accepted" => Self::Accepted,
            "pong" => Self::Pong,
            "provider_info" => Self::ProviderInfo,
            _ => return None,
        })
    }

    /// Whether frames of this type are session events, numbered by `seq` and
    /// kept for resume.
    pub fn is_event(self) -> bool {
        matches!(
            self,
            Self::Status
                | Self::Token
                | Self::ToolCall
                | Self::Patch
                | Self::Usage
                | Self::Error
                | Self::Done
        )
    }
}

impl Body {
    /// The body's frame type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Status(_) => FrameType::Status,
            Self::Token(_) => FrameType::Token,
            Self::ToolCall(_) => FrameType::ToolCall,
            Self::Patch(_) => FrameType::Patch,
            Self::Usage(_) => FrameType::Usage,
            Self::Error(_) => FrameType::Error,
            Self::Done(_) => FrameType::Done,
            Self::Hello(_) => FrameType::Hello,
            Self::CompletionRequest(_) => FrameType::CompletionRequest,
            Self::Input(_) => FrameType::Input,
            Self::Resume(_) => FrameType::Resume,
            Self::Ack(_) => FrameType::Ack,
            Self::Cancel(_) => FrameType::Cancel,
            Self::Ping(_) => FrameType::Ping,
            Self::ModelsRequest(_) => FrameType::ModelsRequest,
            Self::Welcome(_) => FrameType::Welcome,
            Self::Accepted(_) => FrameType::Accepted,
            Self::Pong(_) => FrameType::Pong,
            Self::ProviderInfo(_) => FrameType::ProviderInfo,
        }
    }

    /// Whether this body is a session event (see [`FrameType::is_event`]).
    pub fn is_event(&self) -> bool {
        self.frame_type().is_event()
    }

    /// Whether this event ends a call: `done`, or an `error`.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Done(_) | Self::Error(_))
    }
}

impl Frame {
    /// A session event frame (call id 0; the connection sets it).
    pub fn event(session_id: impl Into<String>, seq: u64, body: Body) -> Self {
        Self {
            call_id: 0,
            session_id: session_id.into(),
            seq,
            body: Some(body),
        }
    }

    /// A frame with only a body, e.g. `hello` or `ping`.
    pub fn control(call_id: u64, body: Body) -> Self {
        Self {
            call_id,
            session_id: String::new(),
            seq: 0,
            body: Some(body),
        }
    }

    /// Borrows the frame for encoding.
    pub fn as_ref(&self) -> FrameRef<'_> {
        FrameRef {
            call_id: self.call_id,
            session_id: &self.session_id,
            seq: self.seq,
            body: self.body.as_ref(),
        }
    }

    /// The frame's type, if it has a body.
    pub fn frame_type(&self) -> Option<FrameType> {
        self.body.as_ref().map(Body::frame_type)
    }
}

impl FrameRef<'_> {
    /// Encoded protobuf length of the frame (without a length prefix).
    pub fn protobuf_len(&self) -> usize {
        use prost::encoding::{encoded_len_varint, key_len, uint64};
        let mut len = 0;
        if self.call_id != 0 {
            len += uint64::encoded_len(1, &self.call_id);
        }
        if !self.session_id.is_empty() {
            let n = self.session_id.len();
            len += key_len(2) + encoded_len_varint(n as u64) + n;
        }
        if self.seq != 0 {
            len += uint64::encoded_len(3, &self.seq);
        }
        len + self.body.map_or(0, Body::encoded_len)
    }

    /// Writes the frame as protobuf, byte-identical to `Frame::encode`.
    pub fn encode_protobuf(&self, buf: &mut impl BufMut) {
        use prost::encoding::{WireType, encode_key, encode_varint, uint64};
        if self.call_id != 0 {
            uint64::encode(1, &self.call_id, buf);
        }
        if !self.session_id.is_empty() {
            encode_key(2, WireType::LengthDelimited, buf);
            encode_varint(self.session_id.len() as u64, buf);
            buf.put_slice(self.session_id.as_bytes());
        }
        if self.seq != 0 {
            uint64::encode(3, &self.seq, buf);
        }
        if let Some(body) = self.body {
            body.encode(buf);
        }
    }

    /// Clones into an owned frame.
    pub fn to_owned(&self) -> Frame {
        Frame {
            call_id: self.call_id,
            session_id: self.session_id.to_owned(),
            seq: self.seq,
            body: self.body.cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::Token;

    #[test]
    fn borrowed_encoding_matches_prost() {
        let frame = Frame {
            call_id: 7,
            session_id: "s_1".into(),
            seq: 300,
            body: Some(Body::Token(Token {
                text: "Hello".into(),
            })),
        };
        let mut ours = Vec::new();
        frame.as_ref().encode_protobuf(&mut ours);
        assert_eq!(ours, frame.encode_to_vec());
        assert_eq!(frame.as_ref().protobuf_len(), frame.encoded_len());
    }

    #[test]
    fn type_tags_round_trip() {
        for &t in FrameType::ALL {
            assert_eq!(FrameType::from_tag(t.as_str()), Some(t));
        }
    }
}
