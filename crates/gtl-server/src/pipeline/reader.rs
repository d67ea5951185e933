//! The connection's receiving half: decodes frames and dispatches them.

use std::collections::HashMap;
use std::sync::Arc;

use gtl_core::{Call, StartCall};
use gtl_proto::{Body, Done, ErrorCode, Frame, Pong};
use gtl_transport::FrameRead;
use tokio::sync::mpsc;

use super::writer::Out;
use super::{Context, error_frame};

pub(super) async fn run(
    ctx: &Arc<Context>,
    mut read: Box<dyn FrameRead>,
    subject: &str,
    to_writer: mpsc::UnboundedSender<Out>,
) {
    let mut calls: HashMap<u64, Arc<Call>> = HashMap::new();
    let reply = |frame: Frame| {
        let _ = to_writer.send(Out::Frame(Box::new(frame)));
    };
    loop {
        let frame = match read.read_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) if e.is_recoverable() => {
                // One bad frame: say so and keep serving this connection.
                tracing::debug!(error = %e, "bad frame");
                reply(error_frame(0, "", e.code(), &e.to_string()));
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "connection failed");
                break;
            }
        };
        let Frame {
            call_id,
            session_id,
            seq,
            body,
        } = frame;
        let fail = |code: ErrorCode, message: &str| {
            reply(error_frame(call_id, &session_id, code, message))
        };
        match body {
            Some(Body::CompletionRequest(mut request)) => {
                // Forget calls that are over, so their sessions' logs are not
                // held for the life of the connection.
                calls.retain(|_, call| !call.is_over());
                if calls.contains_key(&call_id) {
                    fail(
                        ErrorCode::InvalidRequest,
                        "call_id is in use on this connection",
                    );
                    continue;
                }
                if calls.len() >= ctx.max_calls {
                    fail(
                        ErrorCode::RateLimit,
                        &format!("at most {} concurrent calls per connection", ctx.max_calls),
                    );
                    continue;
                }
                let provider = match ctx.registry.resolve(&mut request) {
                    Ok(provider) => provider,
                    Err(e) => {
                        fail(e.code, &e.message);
                        continue;
                    }
                };
                tracing::debug!(call_id, provider = %request.provider, model = %request.model, "call");
                let mut start = StartCall::new(subject, provider, request);
                if !session_id.is_empty() {
                    start = start.with_session_id(session_id.clone());
                }
                match ctx.engine.start(start) {
                    Ok(call) => attach(&mut calls, &to_writer, call_id, call),
                    Err(e) => fail(e.code, &e.message),
                }
            }
            Some(Body::Resume(resume)) => {
                calls.retain(|_, call| !call.is_over());
                if calls.contains_key(&call_id) {
                    fail(
                        ErrorCode::InvalidRequest,
                        "call_id is in use on this connection",
                    );
                    continue;
                }
                match ctx.engine.resume(
                    subject,
                    &session_id,
                    resume.after_seq,
                    &resume.resume_token,
                ) {
                    Ok(call) => attach(&mut calls, &to_writer, call_id, call),
                    Err(e) => fail(e.code, &e.message),
                }
            }
            Some(Body::Ack(_)) => {
                if let Some(call) = calls.get(&call_id) {
                    call.ack(seq);
                }
            }
            Some(Body::Cancel(cancel)) => match calls.get(&call_id) {
                Some(call) => call.cancel(&cancel.reason),
                None if !session_id.is_empty() => {
                    if let Err(e) = ctx.engine.cancel(subject, &session_id, &cancel.reason) {
                        fail(e.code, &e.message);
                    }
                }
                None => fail(ErrorCode::InvalidRequest, "cancel names no call or session"),
            },
            Some(Body::Input(input)) => {
                let result = match calls.get(&call_id) {
                    Some(call) => call.input(input),
                    None => ctx.engine.input(&session_id, input),
                };
                if let Err(e) = result {
                    fail(e.code, &e.message);
                }
            }
            Some(Body::Ping(ping)) => {
                reply(Frame::control(
                    call_id,
                    Body::Pong(Pong { nonce: ping.nonce }),
                ));
            }
            Some(Body::ModelsRequest(request)) => {
                let ctx = ctx.clone();
                let to_writer = to_writer.clone();
                tokio::spawn(async move {
                    let only = (!request.provider.is_empty()).then_some(request.provider.as_str());
                    if let Some(name) = only
                        && ctx.registry.get(name).is_none()
                    {
                        let message = format!("no provider `{name}` is configured");
                        let frame = error_frame(call_id, "", ErrorCode::ModelNotFound, &message);
                        let _ = to_writer.send(Out::Frame(Box::new(frame)));
                        return;
                    }
                    for info in ctx.registry.models(only).await {
                        let frame = Frame::control(call_id, Body::ProviderInfo(info));
                        let _ = to_writer.send(Out::Frame(Box::new(frame)));
                    }
                    let done = Body::Done(Done {
                        finish_reason: "stop".into(),
                    });
                    let _ = to_writer.send(Out::Frame(Box::new(Frame::control(call_id, done))));
                });
            }
            Some(other) => fail(
                ErrorCode::InvalidRequest,
                &format!(
                    "`{}` is not a frame a client sends",
                    other.frame_type().as_str()
                ),
            ),
            None => fail(ErrorCode::InvalidRequest, "frame has no body"),
        }
    }
    // Dropping the calls disconnects them; their sessions wait for a resume.
    for call_id in calls.keys() {
        let _ = to_writer.send(Out::Detach { call_id: *call_id });
    }
}

fn attach(
    calls: &mut HashMap<u64, Arc<Call>>,
    to_writer: &mpsc::UnboundedSender<Out>,
    call_id: u64,
    call: Call,
) {
    let call = Arc::new(call);
    calls.insert(call_id, call.clone());
    let _ = to_writer.send(Out::Attach { call_id, call });
}
