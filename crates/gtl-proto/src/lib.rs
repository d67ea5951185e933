//! GTL/1 frames and their encodings.
//!
//! This crate is the protocol's vocabulary: the prost types generated from
//! `proto/gtl/v1/gtl.proto`, the seeds' flat JSON mapping of the same types,
//! the framing codecs (NDJSON lines, varint-length-delimited protobuf, SSE
//! events), version negotiation and the closed set of error codes.
//!
//! It does no IO and needs no runtime: codecs read from [`bytes::BytesMut`]
//! and write to any [`bytes::BufMut`]; the transports own the sockets.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use gtl_proto::{Body, Codec, Encoding, Frame, Token};
//!
//! let frame = Frame::event("s_1", 2, Body::Token(Token { text: "Hel".into() }));
//! let mut codec = Codec::new(Encoding::Json);
//! let mut wire = BytesMut::new();
//! codec.encode(frame.as_ref(), &mut wire)?;
//! assert_eq!(&wire[..], br#"{"type":"token","session_id":"s_1","seq":2,"text":"Hel"}
//! "#);
//! assert_eq!(codec.decode(&mut wire)?, Some(frame));
//! # Ok::<(), gtl_proto::CodecError>(())
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod codec;
mod error_code;
mod frame;
mod json;
mod version;

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::use_self)]
mod generated {
    // Checked in and refreshed by `cargo xtask codegen`; a test fails when stale.
    include!("generated/gtl.v1.rs");
}

pub use codec::{
    Codec, CodecError, DEFAULT_MAX_FRAME_BYTES, MAX_DECODED_COST, SKIP_LIMIT_FACTOR, sse,
};
pub use error_code::UnknownErrorCode;
pub use frame::{FrameRef, FrameType};
pub use generated::frame::Body;
pub use generated::{
    Accepted, Ack, Cancel, CompletionRequest, ContentPart, ContentParts, Delete, Done, Encoding,
    Error, ErrorCode, Frame, FunctionCall, FunctionDef, Hello, Image, Input, Insert, Message,
    ModelInfo, ModelsRequest, Patch, PatchOp, Phase, Ping, Pong, ProviderInfo, Range, Replace,
    Resume, Role, Routing, Status, Token, Tool, ToolCall, ToolChoice, Usage, Welcome,
};
// The gRPC service's own messages (`gtl.v1.Gtl`, served by
// gtl-transport-grpc); they have no JSON form.
pub use generated::{CompleteRequest, Completion, ModelsResponse, ResumeRequest};
pub use json::JsonError;
pub use version::{NegotiationError, PROTOCOL_VERSION, SUPPORTED_VERSIONS, Version, negotiate};

/// Nested types of messages with `oneof` fields or nested enums.
pub mod types {
    pub use crate::generated::content_part::Part;
    pub use crate::generated::image::Source;
    pub use crate::generated::message::Content;
    pub use crate::generated::patch_op::Kind as PatchKind;
    pub use crate::generated::tool_choice::{Choice, Mode as ToolChoiceMode};
}
