//! The generated server and client, end to end over HTTP/2 on loopback.

use std::net::SocketAddr;
use std::pin::Pin;

use futures::{Stream, StreamExt, stream};
use gtl_proto::{
    Accepted, Body, CompleteRequest, Completion, ErrorCode, Frame, ModelInfo, ModelsRequest,
    ModelsResponse, Phase, Pong, ProviderInfo, ResumeRequest, Token,
};
use gtl_transport_grpc::{
    FILE_DESCRIPTOR_SET, Gtl, GtlClient, GtlServer, SERVICE_NAME, VERSION_METADATA, code_from,
    error_from, status_from, status_from_error,
};
use prost::Message as _;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

/// Answers `Models` with one provider, streams two frames from `Stream`,
/// answers pings on `Pipe`, and refuses the rest with GTL errors.
struct TestGtl;

#[tonic::async_trait]
impl Gtl for TestGtl {
    async fn complete(
        &self,
        _request: Request<CompleteRequest>,
    ) -> Result<Response<Completion>, Status> {
        Err(status_from_error(&rate_limited()))
    }

    type StreamStream = FrameStream;

    async fn stream(
        &self,
        request: Request<CompleteRequest>,
    ) -> Result<Response<FrameStream>, Status> {
        let bearer = request.metadata().get("authorization").cloned();
        if bearer.as_ref().and_then(|v| v.to_str().ok()) != Some("Bearer t0ken") {
            return Err(status_from(ErrorCode::Unauthenticated, "no credential"));
        }
        let session_id = request.into_inner().session_id;
        let mut accepted = Frame::control(
            0,
            Body::Accepted(Accepted {
                resume_token: "rt".into(),
            }),
        );
        accepted.session_id.clone_from(&session_id);
        let token = Frame::event(session_id, 1, Body::Token(Token { text: "Hi".into() }));
        let frames: FrameStream = Box::pin(stream::iter([Ok(accepted), Ok(token)]));
        Ok(Response::new(frames))
    }

    type PipeStream = FrameStream;

    async fn pipe(
        &self,
        request: Request<Streaming<Frame>>,
    ) -> Result<Response<FrameStream>, Status> {
        let answers = request.into_inner().map(|frame| {
            let frame = frame?;
            match frame.body {
                Some(Body::Ping(ping)) => Ok(Frame::control(
                    frame.call_id,
                    Body::Pong(Pong { nonce: ping.nonce }),
                )),
                _ => Err(status_from(ErrorCode::InvalidRequest, "pings only")),
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }

    type ResumeStream = FrameStream;

    async fn resume(
        &self,
        request: Request<ResumeRequest>,
    ) -> Result<Response<FrameStream>, Status> {
        let session_id = request.into_inner().session_id;
        Err(status_from(
            ErrorCode::ResumeNotFound,
            &format!("no session {session_id}"),
        ))
    }

    async fn models(
        &self,
        request: Request<ModelsRequest>,
    ) -> Result<Response<ModelsResponse>, Status> {
        let version = request.metadata().get(VERSION_METADATA).cloned();
        let mut response = Response::new(ModelsResponse {
            providers: vec![ProviderInfo {
                provider: "echo".into(),
                models: vec![ModelInfo {
                    name: "echo".into(),
                    supports_streaming: true,
                    ..ModelInfo::default()
                }],
            }],
        });
        if version.is_some_and(|v| v == "1.0") {
            response
                .metadata_mut()
                .insert(VERSION_METADATA, "1.0".parse().unwrap());
        }
        Ok(response)
    }
}

fn rate_limited() -> gtl_proto::Error {
    gtl_proto::Error {
        code: ErrorCode::RateLimit as i32,
        message: "slow down".into(),
        retryable: true,
        phase: Phase::BeforeFirstToken as i32,
        retry_after_ms: 1500,
    }
}

/// Serves [`TestGtl`] on an ephemeral loopback port until the runtime ends.
async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .add_service(GtlServer::new(TestGtl))
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(server);
    addr
}

async fn client() -> GtlClient<tonic::transport::Channel> {
    let addr = serve().await;
    GtlClient::connect(format!("http://{addr}")).await.unwrap()
}

#[tokio::test]
async fn models_answers_with_metadata() {
    let mut client = client().await;
    let mut request = Request::new(ModelsRequest::default());
    request
        .metadata_mut()
        .insert(VERSION_METADATA, "1.0".parse().unwrap());
    let response = client.models(request).await.unwrap();
    assert_eq!(response.metadata().get(VERSION_METADATA).unwrap(), "1.0");
    let providers = response.into_inner().providers;
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].provider, "echo");
    assert_eq!(providers[0].models[0].name, "echo");
}

#[tokio::test]
async fn stream_delivers_both_frames() {
    let mut client = client().await;
    let mut request = Request::new(CompleteRequest {
        request: Some(gtl_proto::CompletionRequest::default()),
        session_id: "s_1".into(),
    });
    request
        .metadata_mut()
        .insert("authorization", "Bearer t0ken".parse().unwrap());
    let mut frames = client.stream(request).await.unwrap().into_inner();

    let accepted = frames.message().await.unwrap().unwrap();
    assert_eq!(accepted.session_id, "s_1");
    assert_eq!(
        accepted.body,
        Some(Body::Accepted(Accepted {
            resume_token: "rt".into()
        }))
    );
    let token = frames.message().await.unwrap().unwrap();
    assert_eq!(
        token,
        Frame::event("s_1", 1, Body::Token(Token { text: "Hi".into() }))
    );
    assert_eq!(frames.message().await.unwrap(), None);
}

#[tokio::test]
async fn stream_without_credential_is_unauthenticated() {
    let mut client = client().await;
    let status = client.stream(CompleteRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(code_from(&status), ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn pipe_is_bidirectional() {
    let mut client = client().await;
    let pings = stream::iter(
        (1..=3).map(|n| Frame::control(n, Body::Ping(gtl_proto::Ping { nonce: n * 10 }))),
    );
    let mut answers = client.pipe(pings).await.unwrap().into_inner();
    for n in 1..=3 {
        let pong = answers.message().await.unwrap().unwrap();
        assert_eq!(pong, Frame::control(n, Body::Pong(Pong { nonce: n * 10 })));
    }
    assert_eq!(answers.message().await.unwrap(), None);
}

#[tokio::test]
async fn errors_cross_the_wire_with_their_gtl_code() {
    let mut client = client().await;

    // NOT_FOUND, told apart from MODEL_NOT_FOUND by `gtl-error-code`.
    let status = client
        .resume(ResumeRequest {
            session_id: "s_gone".into(),
            ..ResumeRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "no session s_gone");
    assert_eq!(code_from(&status), ErrorCode::ResumeNotFound);

    // The whole error body, in the trailers of a unary call.
    let status = client
        .complete(CompleteRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(error_from(&status), rate_limited());
}

#[test]
fn the_descriptor_set_describes_the_service() {
    let fds = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let file = fds
        .file
        .iter()
        .find(|file| file.name() == "gtl/v1/gtl.proto")
        .unwrap();
    assert_eq!(
        format!("{}.{}", file.package(), file.service[0].name()),
        SERVICE_NAME
    );
    let methods: Vec<&str> = file.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(methods, ["Complete", "Stream", "Pipe", "Resume", "Models"]);
}
