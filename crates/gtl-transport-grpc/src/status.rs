//! GTL error codes ⇄ gRPC statuses.
//!
//! The status code is the one of docs/protocol.md §10
//! ([`ErrorCode::grpc_code`]); since several GTL codes share a gRPC code, the
//! GTL code's name travels beside it in `gtl-error-code`, and the whole
//! `error` frame body, protobuf-encoded, in `gtl-error-bin`.

use gtl_proto::{ErrorCode, Phase};
use prost::Message as _;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// Metadata entry naming the GTL error code of a failed RPC, e.g.
/// `RATE_LIMIT`.
pub const ERROR_CODE_METADATA: &str = "gtl-error-code";

/// Binary metadata entry holding the failed RPC's `gtl.v1.Error`,
/// protobuf-encoded (gRPC base64-encodes `-bin` values on the wire).
pub const ERROR_METADATA: &str = "gtl-error-bin";

/// The status a server answers with for a GTL error code: the code's gRPC
/// status, `message`, and the code's name in [`ERROR_CODE_METADATA`].
///
/// [`ErrorCode::Unspecified`] is reported as `INTERNAL`, as everywhere.
pub fn status_from(code: ErrorCode, message: &str) -> Status {
    let mut metadata = MetadataMap::new();
    insert_code(&mut metadata, code);
    Status::with_metadata(grpc_code(code), message, metadata)
}

/// The status a server answers with for an `error` frame body: as
/// [`status_from`] with its code and message, plus the whole body (phase,
/// retryable, retry_after_ms) in [`ERROR_METADATA`].
pub fn status_from_error(error: &gtl_proto::Error) -> Status {
    let code = error.code();
    let mut metadata = MetadataMap::new();
    insert_code(&mut metadata, code);
    metadata.insert_bin(
        ERROR_METADATA,
        MetadataValue::from_bytes(&error.encode_to_vec()),
    );
    Status::with_metadata(grpc_code(code), error.message.clone(), metadata)
}

/// The GTL error code of a failed RPC, for clients.
///
/// The [`ERROR_CODE_METADATA`] entry decides when it names a code. Without
/// it (a proxy's or tonic's own status, or a code this version does not
/// know) the status code maps back to the first GTL code of §10 with that
/// status (`NOT_FOUND` is `MODEL_NOT_FOUND`, `RESOURCE_EXHAUSTED` is
/// `RATE_LIMIT`, …), and a status no GTL code has (`UNIMPLEMENTED`,
/// `ABORTED`, …) to `INTERNAL`.
pub fn code_from(status: &Status) -> ErrorCode {
    status
        .metadata()
        .get(ERROR_CODE_METADATA)
        .and_then(|value| value.to_str().ok())
        .and_then(|name| ErrorCode::from_name(name).ok())
        .unwrap_or_else(|| code_from_grpc(status.code()))
}

/// The `error` frame body of a failed RPC, for clients.
///
/// The [`ERROR_METADATA`] entry when it decodes; otherwise the code of
/// [`code_from`], the status message, and the code's default `retryable`.
pub fn error_from(status: &Status) -> gtl_proto::Error {
    if let Some(error) = status
        .metadata()
        .get_bin(ERROR_METADATA)
        .and_then(|value| value.to_bytes().ok())
        .and_then(|bytes| gtl_proto::Error::decode(bytes).ok())
    {
        return error;
    }
    let code = code_from(status);
    gtl_proto::Error {
        code: code as i32,
        message: status.message().to_owned(),
        retryable: code.is_retryable(),
        phase: Phase::Unspecified as i32,
        retry_after_ms: 0,
    }
}

fn insert_code(metadata: &mut MetadataMap, code: ErrorCode) {
    metadata.insert(ERROR_CODE_METADATA, MetadataValue::from_static(code.name()));
}

fn grpc_code(code: ErrorCode) -> Code {
    Code::from_i32(code.grpc_code())
}

/// The first GTL code, in schema order, whose gRPC status is `code`.
fn code_from_grpc(code: Code) -> ErrorCode {
    ErrorCode::ALL
        .iter()
        .copied()
        .find(|gtl| gtl.grpc_code() == code as i32)
        .unwrap_or(ErrorCode::Internal)
}
