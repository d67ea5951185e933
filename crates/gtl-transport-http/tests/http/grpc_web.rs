//! gRPC-Web on the HTTP port, as a browser sends it: hand-framed requests
//! (flag byte, 4-byte big-endian length, protobuf) over HTTP/1.1 and h2,
//! the trailers read from the body's last frame (flag 0x80), the base64
//! `-text` variant, CORS preflights, and same-host trust for pages.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf as _, Bytes};
use gtl_proto::types::Content;
use gtl_proto::{
    Body, CompleteRequest, Completion, CompletionRequest, Frame, Message, ModelsRequest,
    ModelsResponse, Role,
};
use reqwest::header::{CONTENT_TYPE, HeaderMap};

use crate::{builder, start};

const PROTO: &str = "application/grpc-web+proto";
const TEXT: &str = "application/grpc-web-text";
/// What a `-text` answer is labelled.
const TEXT_PROTO: &str = "application/grpc-web-text+proto";

/// One gRPC-Web message: flag 0 (data, uncompressed), the length, the bytes.
fn framed(message: &impl prost::Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// A decoded gRPC-Web answer.
#[derive(Debug)]
struct Answer {
    headers: HeaderMap,
    messages: Vec<Bytes>,
    /// The trailer frame's `key: value` lines; `None` without one.
    trailers: Option<HashMap<String, String>>,
}

impl Answer {
    /// `grpc-status`, from the trailer frame or, in a trailers-only
    /// answer, the headers.
    fn status(&self) -> u32 {
        self.trailer("grpc-status").unwrap().parse().unwrap()
    }

    fn trailer(&self, key: &str) -> Option<String> {
        match &self.trailers {
            Some(trailers) => trailers.get(key).cloned(),
            None => self
                .headers
                .get(key)
                .map(|v| v.to_str().unwrap().to_owned()),
        }
    }

    fn decode<M: prost::Message + Default>(&self) -> Vec<M> {
        self.messages
            .iter()
            .map(|m| M::decode(m.clone()).unwrap())
            .collect()
    }
}

/// Splits a gRPC-Web body into its messages and trailer frame.
fn parse(headers: HeaderMap, mut body: Bytes) -> Answer {
    let mut messages = Vec::new();
    let mut trailers = None;
    while body.has_remaining() {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let payload = body.split_to(len);
        if flag & 0x80 == 0 {
            assert!(trailers.is_none(), "a message after the trailers");
            messages.push(payload);
            continue;
        }
        let text = std::str::from_utf8(&payload).unwrap();
        let lines = text.split("\r\n").filter(|line| !line.is_empty());
        let map = lines
            .map(|line| {
                let (key, value) = line.split_once(':').unwrap();
                (key.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        trailers = Some(map);
    }
    Answer {
        headers,
        messages,
        trailers,
    }
}

/// Decodes a `-text` body: base64 chunks, each padded on its own, so it is
/// read four characters at a time.
fn unbase64(body: &[u8]) -> Bytes {
    let mut out = Vec::new();
    for group in body.chunks(4) {
        out.extend(BASE64.decode(group).unwrap());
    }
    out.into()
}

/// POSTs a gRPC-Web request over HTTP/1.1 to `/gtl.v1.Gtl/<method>`.
async fn call(addr: &str, method: &str, content_type: &str, body: Vec<u8>) -> Answer {
    call_with(addr, method, content_type, body, &[]).await
}

async fn call_with(
    addr: &str,
    method: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Answer {
    let client = builder().http1_only().build().unwrap();
    let text = content_type == TEXT;
    let mut request = client
        .post(format!("http://{addr}/gtl.v1.Gtl/{method}"))
        .header(CONTENT_TYPE, content_type)
        // The answer's encoding follows `Accept`, binary by default.
        .header("accept", if text { TEXT } else { PROTO })
        .header("x-grpc-web", "1")
        .body(body);
    for (key, value) in headers {
        request = request.header(*key, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let headers = response.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], if text { TEXT_PROTO } else { PROTO });
    let body = response.bytes().await.unwrap();
    let body = if text { unbase64(&body) } else { body };
    parse(headers, body)
}

fn complete(model: &str, text: &str) -> CompleteRequest {
    CompleteRequest {
        request: Some(CompletionRequest {
            model: model.into(),
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

#[tokio::test]
async fn models_over_http1() {
    let addr = start().await;
    let answer = call(&addr, "Models", PROTO, framed(&ModelsRequest::default())).await;
    assert_eq!(answer.status(), 0, "{answer:?}");
    let [models] = &answer.decode::<ModelsResponse>()[..] else {
        panic!("{answer:?}")
    };
    assert_eq!(models.providers[0].provider, "echo");
    assert!(answer.trailers.is_some(), "OK comes in the trailer frame");
}

#[tokio::test]
async fn complete_over_http1() {
    let addr = start().await;
    let body = framed(&complete("echo", "hello from a browser"));
    let answer = call(&addr, "Complete", PROTO, body).await;
    assert_eq!(answer.status(), 0, "{answer:?}");
    let [completion] = &answer.decode::<Completion>()[..] else {
        panic!("{answer:?}")
    };
    assert_eq!(completion.text, "hello from a browser");
    assert_eq!(completion.finish_reason, "stop");
}

#[tokio::test]
async fn stream_sends_every_event_then_ok() {
    let addr = start().await;
    let body = framed(&complete("echo", "a b c d"));
    let answer = call(&addr, "Stream", PROTO, body).await;
    assert_eq!(answer.status(), 0, "{answer:?}");
    let frames = answer.decode::<Frame>();
    let Some(Body::Accepted(accepted)) = &frames[0].body else {
        panic!("{:?}", frames[0])
    };
    assert!(!accepted.resume_token.is_empty());
    let tokens: String = frames
        .iter()
        .filter_map(|f| match &f.body {
            Some(Body::Token(t)) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(tokens, "a b c d");
    let seqs: Vec<u64> = frames[1..].iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));
}

#[tokio::test]
async fn the_text_variant_is_base64() {
    let addr = start().await;
    let body = BASE64
        .encode(framed(&complete("echo", "in base64")))
        .into_bytes();
    let answer = call(&addr, "Complete", TEXT, body).await;
    assert_eq!(answer.status(), 0, "{answer:?}");
    assert_eq!(answer.decode::<Completion>()[0].text, "in base64");
}

#[tokio::test]
async fn an_unknown_model_is_not_found_before_any_message() {
    let addr = start().await;
    let body = framed(&complete("nope/nothing", "x"));
    let answer = call(&addr, "Complete", PROTO, body).await;
    // Refused before the call starts: a trailers-only answer, the status in
    // the HTTP headers and an empty body.
    assert!(answer.messages.is_empty() && answer.trailers.is_none());
    assert_eq!(answer.status(), 5, "NOT_FOUND: {answer:?}");
    assert_eq!(answer.trailer("gtl-error-code").unwrap(), "MODEL_NOT_FOUND");
    assert!(!answer.trailer("grpc-message").unwrap().is_empty());
}

#[tokio::test]
async fn pipe_is_refused() {
    let addr = start().await;
    let answer = call(&addr, "Pipe", PROTO, Vec::new()).await;
    assert_eq!(answer.status(), 3, "INVALID_ARGUMENT: {answer:?}");
    assert_eq!(answer.trailer("gtl-error-code").unwrap(), "INVALID_REQUEST");
}

#[tokio::test]
async fn a_cors_preflight_allows_any_page() {
    let addr = start().await;
    let client = builder().http1_only().build().unwrap();
    let response = client
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{addr}/gtl.v1.Gtl/Stream"),
        )
        .header("origin", "https://chat.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent,authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("access-control-allow-origin"), "*");
    assert!(header("access-control-allow-methods").contains("POST"));
    assert_eq!(
        header("access-control-allow-headers"),
        "content-type,x-grpc-web,x-user-agent,authorization"
    );
    assert_eq!(header("access-control-max-age"), "86400");
}

#[tokio::test]
async fn answers_expose_the_status_to_scripts() {
    let addr = start().await;
    let body = framed(&ModelsRequest::default());
    let origin = [("origin", "http://localhost:5173")];
    let answer = call_with(&addr, "Models", PROTO, body, &origin).await;
    assert_eq!(answer.status(), 0);
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    let exposed = answer.headers["access-control-expose-headers"]
        .to_str()
        .unwrap();
    for name in ["grpc-status", "grpc-message", "gtl-error-code"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

#[tokio::test]
async fn a_page_elsewhere_is_not_trusted_as_this_host() {
    let addr = start().await;
    let body = framed(&ModelsRequest::default());
    let origin = [("origin", "https://chat.example")];
    let answer = call_with(&addr, "Models", PROTO, body, &origin).await;
    assert_eq!(answer.status(), 16, "UNAUTHENTICATED: {answer:?}");
    assert_eq!(answer.trailer("gtl-error-code").unwrap(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn grpc_web_over_h2() {
    let addr = start().await;
    let client = builder().http2_prior_knowledge().build().unwrap();
    let response = client
        .post(format!("http://{addr}/gtl.v1.Gtl/Models"))
        .header(CONTENT_TYPE, PROTO)
        .body(framed(&ModelsRequest::default()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let headers = response.headers().clone();
    let answer = parse(headers, response.bytes().await.unwrap());
    assert_eq!(answer.status(), 0, "{answer:?}");
    assert_eq!(answer.decode::<ModelsResponse>()[0].providers.len(), 1);
}
