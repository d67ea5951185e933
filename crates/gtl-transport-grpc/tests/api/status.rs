//! GTL error code ⇄ gRPC status, for every code.

use gtl_proto::{ErrorCode, Phase};
use gtl_transport_grpc::{
    ERROR_CODE_METADATA, ERROR_METADATA, code_from, error_from, status_from, status_from_error,
};
use tonic::{Code, Status};

/// docs/protocol.md §10, written out independently of `ErrorCode::grpc_code`.
const TABLE: [(ErrorCode, &str, Code); 17] = [
    (
        ErrorCode::Unauthenticated,
        "UNAUTHENTICATED",
        Code::Unauthenticated,
    ),
    (
        ErrorCode::PermissionDenied,
        "PERMISSION_DENIED",
        Code::PermissionDenied,
    ),
    (
        ErrorCode::InvalidRequest,
        "INVALID_REQUEST",
        Code::InvalidArgument,
    ),
    (ErrorCode::ModelNotFound, "MODEL_NOT_FOUND", Code::NotFound),
    (ErrorCode::RateLimit, "RATE_LIMIT", Code::ResourceExhausted),
    (
        ErrorCode::ContextLengthExceeded,
        "CONTEXT_LENGTH_EXCEEDED",
        Code::OutOfRange,
    ),
    (
        ErrorCode::ContentFiltered,
        "CONTENT_FILTERED",
        Code::FailedPrecondition,
    ),
    (
        ErrorCode::ProviderTimeout,
        "PROVIDER_TIMEOUT",
        Code::DeadlineExceeded,
    ),
    (
        ErrorCode::ProviderUnavailable,
        "PROVIDER_UNAVAILABLE",
        Code::Unavailable,
    ),
    (ErrorCode::ProviderError, "PROVIDER_ERROR", Code::Unknown),
    (ErrorCode::Cancelled, "CANCELLED", Code::Cancelled),
    (
        ErrorCode::ResumeNotFound,
        "RESUME_NOT_FOUND",
        Code::NotFound,
    ),
    (
        ErrorCode::ResumeWindowExceeded,
        "RESUME_WINDOW_EXCEEDED",
        Code::OutOfRange,
    ),
    (
        ErrorCode::VersionUnsupported,
        "VERSION_UNSUPPORTED",
        Code::InvalidArgument,
    ),
    (
        ErrorCode::FrameTooLarge,
        "FRAME_TOO_LARGE",
        Code::ResourceExhausted,
    ),
    (ErrorCode::Internal, "INTERNAL", Code::Internal),
    (ErrorCode::SessionMoved, "SESSION_MOVED", Code::Aborted),
];

#[test]
fn the_table_covers_every_code() {
    let mut codes: Vec<ErrorCode> = TABLE.iter().map(|(code, _, _)| *code).collect();
    codes.sort_unstable();
    let mut all = ErrorCode::ALL.to_vec();
    all.sort_unstable();
    assert_eq!(codes, all);
}

#[test]
fn every_code_maps_to_its_status_and_back() {
    for (code, name, grpc) in TABLE {
        let status = status_from(code, "what happened");
        assert_eq!(status.code(), grpc, "{name}");
        assert_eq!(status.message(), "what happened", "{name}");
        assert_eq!(status.metadata().get(ERROR_CODE_METADATA).unwrap(), name);
        assert_eq!(code_from(&status), code, "{name}");

        let error = error_from(&status);
        assert_eq!(error.code(), code, "{name}");
        assert_eq!(error.message, "what happened", "{name}");
        assert_eq!(error.retryable, code.is_retryable(), "{name}");
    }
}

#[test]
fn every_error_body_survives_the_status() {
    for (code, name, grpc) in TABLE {
        let error = gtl_proto::Error {
            code: code as i32,
            message: format!("{name} here"),
            // The opposite of the default, so the body, not the code, decides.
            retryable: !code.is_retryable(),
            phase: Phase::AfterFirstToken as i32,
            retry_after_ms: 1500,
        };
        let status = status_from_error(&error);
        assert_eq!(status.code(), grpc, "{name}");
        assert_eq!(status.message(), error.message, "{name}");
        assert_eq!(status.metadata().get(ERROR_CODE_METADATA).unwrap(), name);
        assert!(
            status.metadata().get_bin(ERROR_METADATA).is_some(),
            "{name}"
        );
        assert_eq!(code_from(&status), code, "{name}");
        assert_eq!(error_from(&status), error, "{name}");
    }
}

#[test]
fn unspecified_is_internal() {
    let status = status_from(ErrorCode::Unspecified, "no code");
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(
        status.metadata().get(ERROR_CODE_METADATA).unwrap(),
        "INTERNAL"
    );
    assert_eq!(code_from(&status), ErrorCode::Internal);
}

#[test]
fn without_metadata_the_first_code_with_that_status_wins() {
    for (grpc, expected) in [
        (Code::Cancelled, ErrorCode::Cancelled),
        (Code::Unknown, ErrorCode::ProviderError),
        (Code::InvalidArgument, ErrorCode::InvalidRequest),
        (Code::DeadlineExceeded, ErrorCode::ProviderTimeout),
        (Code::NotFound, ErrorCode::ModelNotFound),
        (Code::PermissionDenied, ErrorCode::PermissionDenied),
        (Code::ResourceExhausted, ErrorCode::RateLimit),
        (Code::FailedPrecondition, ErrorCode::ContentFiltered),
        (Code::OutOfRange, ErrorCode::ContextLengthExceeded),
        (Code::Internal, ErrorCode::Internal),
        (Code::Unavailable, ErrorCode::ProviderUnavailable),
        (Code::Unauthenticated, ErrorCode::Unauthenticated),
        (Code::Aborted, ErrorCode::SessionMoved),
        // Statuses no GTL code has.
        (Code::Ok, ErrorCode::Internal),
        (Code::AlreadyExists, ErrorCode::Internal),
        (Code::Unimplemented, ErrorCode::Internal),
        (Code::DataLoss, ErrorCode::Internal),
    ] {
        let status = Status::new(grpc, "from a proxy");
        assert_eq!(code_from(&status), expected, "{grpc:?}");
        let error = error_from(&status);
        assert_eq!(error.code(), expected, "{grpc:?}");
        assert_eq!(error.message, "from a proxy");
        assert_eq!(error.phase(), Phase::Unspecified);
    }
}

#[test]
fn an_unknown_code_name_falls_back_to_the_status() {
    let mut status = Status::new(Code::NotFound, "newer server");
    status
        .metadata_mut()
        .insert(ERROR_CODE_METADATA, "SOMETHING_NEW".parse().unwrap());
    assert_eq!(code_from(&status), ErrorCode::ModelNotFound);
}

#[test]
fn a_garbled_error_body_falls_back_to_the_code() {
    let mut status = status_from(ErrorCode::ResumeWindowExceeded, "gone");
    status.metadata_mut().insert_bin(
        ERROR_METADATA,
        tonic::metadata::MetadataValue::from_bytes(&[0xff, 0xff, 0xff]),
    );
    let error = error_from(&status);
    assert_eq!(error.code(), ErrorCode::ResumeWindowExceeded);
    assert_eq!(error.message, "gone");
}
