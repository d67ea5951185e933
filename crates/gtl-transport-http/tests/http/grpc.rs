//! gRPC on the HTTP port, through the generated client: every RPC, and a
//! GTL error as its gRPC status.

use futures::StreamExt as _;
use gtl_proto::types::Content;
use gtl_proto::{
    Body, CompleteRequest, CompletionRequest, ErrorCode, Frame, Message, ModelsRequest,
    ResumeRequest, Role,
};
use gtl_transport_grpc::{GtlClient, code_from};

use crate::start;

fn request(model: &str, text: &str) -> CompleteRequest {
    CompleteRequest {
        request: Some(CompletionRequest {
            model: model.into(),
            stream: true,
            messages: vec![Message {
                role: Role::User as i32,
                content: Some(Content::Text(text.into())),
                ..Message::default()
            }],
            ..CompletionRequest::default()
        }),
        session_id: String::new(),
    }
}

fn text(frames: &[Frame]) -> String {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            Some(Body::Token(t)) => Some(t.text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_rpc_works_through_the_http_port() {
    let addr = start().await;
    let mut client = GtlClient::connect(format!("http://{addr}")).await.unwrap();

    let completion = client
        .complete(request("echo", "over gRPC"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(completion.text, "over gRPC");
    assert_eq!(completion.finish_reason, "stop");

    let frames: Vec<Frame> = client
        .stream(request("echo", "a b c d"))
        .await
        .unwrap()
        .into_inner()
        .map(Result::unwrap)
        .collect()
        .await;
    let Some(Body::Accepted(accepted)) = &frames[0].body else {
        panic!("{:?}", frames[0])
    };
    assert_eq!(text(&frames), "a b c d");
    let session_id = frames[0].session_id.clone();

    let replay: Vec<Frame> = client
        .resume(ResumeRequest {
            session_id,
            after_seq: 2,
            resume_token: accepted.resume_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .map(Result::unwrap)
        .collect()
        .await;
    let after: Vec<&Frame> = frames.iter().filter(|f| f.seq > 2).collect();
    assert_eq!(replay[1..].iter().collect::<Vec<_>>(), after);

    let models = client
        .models(ModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(models.providers[0].provider, "echo");

    let status = client
        .complete(request("nope/nothing", "x"))
        .await
        .unwrap_err();
    assert_eq!(code_from(&status), ErrorCode::ModelNotFound);
}

#[tokio::test]
async fn pipe_multiplexes_calls_on_one_rpc() {
    let addr = start().await;
    let mut client = GtlClient::connect(format!("http://{addr}")).await.unwrap();
    let calls = (1..=2u64).map(|call_id| {
        let request = request("echo", &format!("call {call_id}")).request.unwrap();
        Frame::control(call_id, Body::CompletionRequest(Box::new(request)))
    });
    let (to_server, outgoing) = tokio::sync::mpsc::channel(4);
    for frame in calls {
        to_server.send(frame).await.unwrap();
    }
    let outgoing = futures::stream::unfold(outgoing, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    let mut incoming = client.pipe(outgoing).await.unwrap().into_inner();
    let mut texts = [String::new(), String::new()];
    let mut done = 0;
    while done < 2 {
        let frame = incoming.next().await.unwrap().unwrap();
        match frame.body {
            Some(Body::Token(t)) => texts[frame.call_id as usize - 1].push_str(&t.text),
            Some(Body::Done(_)) => done += 1,
            Some(Body::Error(e)) => panic!("{e:?}"),
            _ => {}
        }
    }
    assert_eq!(texts, ["call 1", "call 2"]);
    drop(to_server);
}
