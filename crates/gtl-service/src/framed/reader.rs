//! The connection's receiving half: decodes frames and turns them into
//! call-service operations.

use std::collections::HashMap;
use std::sync::Arc;

use gtl_core::{Call, MemoryBudget};
use gtl_proto::{Body, Done, ErrorCode, Frame, Pong};
use gtl_transport::FrameRead;
use tokio::sync::{Semaphore, mpsc};

use super::error_frame;
use super::writer::Out;
use crate::{CallError, CallService, Principal};

/// models.list answers being gathered at once on one connection; more
/// requests wait (and so does reading from the peer).
const MODELS_IN_FLIGHT: usize = 4;

/// The reader's state for one connection.
struct Reader<'a> {
    service: &'a Arc<CallService>,
    principal: &'a Principal,
    to_writer: mpsc::Sender<Out>,
    /// The connection's live calls by call id.
    calls: HashMap<u64, Arc<Call>>,
    /// Charged with the events not yet delivered to this connection.
    budget: Arc<MemoryBudget>,
    models: Arc<Semaphore>,
}

pub(super) async fn run(
    service: &Arc<CallService>,
    mut read: Box<dyn FrameRead>,
    principal: &Principal,
    to_writer: mpsc::Sender<Out>,
    first: Option<Frame>,
) {
    let idle = service.limits().idle_timeout;
    let mut reader = Reader {
        service,
        principal,
        to_writer,
        calls: HashMap::new(),
        budget: service.connection_budget(),
        models: Arc::new(Semaphore::new(MODELS_IN_FLIGHT)),
    };
    if let Some(frame) = first
        && !reader.dispatch(frame).await
    {
        return;
    }
    loop {
        let Ok(read) = tokio::time::timeout(idle, read.read_frame()).await else {
            // Silent for the idle timeout: close unless calls are live.
            reader.forget_finished();
            if reader.calls.is_empty() {
                tracing::debug!("idle connection closed");
                break;
            }
            continue;
        };
        let frame = match read {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) if e.is_recoverable() => {
                // One bad frame: say so and keep serving this connection.
                tracing::debug!(error = %e, "bad frame");
                if !reader
                    .reply(error_frame(e.call_id(), "", e.code(), &e.to_string()))
                    .await
                {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "connection failed");
                if e.reply_before_close() {
                    reader
                        .reply(error_frame(0, "", e.code(), &e.to_string()))
                        .await;
                }
                break;
            }
        };
        if !reader.dispatch(frame).await {
            // The writer is gone: the peer stopped reading or the
            // connection broke.
            break;
        }
    }
    // Dropping the calls (here, and the writer's once the channel closes)
    // disconnects them; their sessions wait for a resume.
}

impl Reader<'_> {
    /// Handles one frame; false when the writer is gone.
    async fn dispatch(&mut self, frame: Frame) -> bool {
        let Frame {
            call_id,
            session_id,
            seq,
            body,
        } = frame;
        let result = match body {
            Some(Body::CompletionRequest(request)) => match self.new_call(call_id) {
                Ok(()) => {
                    let id = (!session_id.is_empty()).then(|| session_id.clone());
                    self.service
                        .start(self.principal, id, *request)
                        .await
                        .map(|call| Some((call_id, call)))
                }
                Err(e) => Err(e),
            },
            Some(Body::Resume(resume)) => match self.new_call(call_id) {
                Ok(()) => self
                    .service
                    .resume(
                        self.principal,
                        &session_id,
                        resume.after_seq,
                        &resume.resume_token,
                    )
                    .await
                    .map(|call| Some((call_id, call))),
                Err(e) => Err(e),
            },
            Some(Body::Ack(_)) => {
                // By the call's id, or (call_id 0) by the session it names.
                let call = self.calls.get(&call_id).or_else(|| {
                    self.calls
                        .values()
                        .find(|call| !session_id.is_empty() && call.session_id() == session_id)
                });
                if let Some(call) = call {
                    call.ack(seq);
                }
                Ok(None)
            }
            Some(Body::Cancel(cancel)) => match self.calls.get(&call_id) {
                Some(call) => {
                    call.cancel(&cancel.reason);
                    Ok(None)
                }
                None if !session_id.is_empty() => self
                    .service
                    .cancel(
                        self.principal,
                        &session_id,
                        &cancel.resume_token,
                        &cancel.reason,
                    )
                    .await
                    .map(|()| None),
                None => Err(CallError::new(
                    ErrorCode::InvalidRequest,
                    "cancel names no call on this connection and no session",
                )),
            },
            Some(Body::Input(mut input)) => {
                let token = std::mem::take(&mut input.resume_token);
                match self.calls.get(&call_id) {
                    Some(call) => call.input(input).map_err(CallError::from),
                    None if !session_id.is_empty() => {
                        self.service
                            .input(self.principal, &session_id, &token, input)
                    }
                    None => Err(CallError::new(
                        ErrorCode::InvalidRequest,
                        "input names no call on this connection and no session",
                    )),
                }
                .map(|()| None)
            }
            Some(Body::Ping(ping)) => {
                let pong = Frame::control(call_id, Body::Pong(Pong { nonce: ping.nonce }));
                return self.reply(pong).await;
            }
            Some(Body::ModelsRequest(request)) => {
                return self.models(call_id, request.provider).await;
            }
            Some(other) => Err(CallError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "`{}` is not a frame a client sends",
                    other.frame_type().as_str()
                ),
            )),
            None => Err(CallError::new(
                ErrorCode::InvalidRequest,
                "frame has no body",
            )),
        };
        match result {
            Ok(Some((call_id, call))) => {
                call.charge_to(self.budget.clone());
                let call = Arc::new(call);
                self.calls.insert(call_id, call.clone());
                self.to_writer
                    .send(Out::Attach { call_id, call })
                    .await
                    .is_ok()
            }
            Ok(None) => true,
            Err(e) => {
                self.reply(error_frame(call_id, &session_id, e.code, &e.message))
                    .await
            }
        }
    }

    /// Checks that `call_id` may open a new call on this connection.
    fn new_call(&mut self, call_id: u64) -> Result<(), CallError> {
        if call_id == 0 {
            return Err(CallError::new(
                ErrorCode::InvalidRequest,
                "call_id must be non-zero on a call: 0 is for connection frames",
            ));
        }
        // Forget calls that are over, so their sessions' logs are not held
        // for the life of the connection.
        self.forget_finished();
        if self.calls.contains_key(&call_id) {
            return Err(CallError::new(
                ErrorCode::InvalidRequest,
                "call_id is in use on this connection",
            ));
        }
        let max = self.service.limits().max_calls;
        if self.calls.len() >= max {
            return Err(CallError::new(
                ErrorCode::RateLimit,
                format!("at most {max} concurrent calls per connection"),
            ));
        }
        Ok(())
    }

    fn forget_finished(&mut self) {
        self.calls.retain(|_, call| !call.is_over());
    }

    /// Queues a frame for the writer, waiting while its queue is full (so a
    /// peer that does not read is not read from either). False when the
    /// writer is gone.
    async fn reply(&self, frame: Frame) -> bool {
        self.to_writer
            .send(Out::Frame(Box::new(frame)))
            .await
            .is_ok()
    }

    /// models.list, answered by a task so a slow provider listing does not
    /// hold up the connection; at most [`MODELS_IN_FLIGHT`] at once.
    async fn models(&self, call_id: u64, provider: String) -> bool {
        let Ok(permit) = self.models.clone().acquire_owned().await else {
            return false;
        };
        let service = self.service.clone();
        let to_writer = self.to_writer.clone();
        let principal = self.principal.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let only = (!provider.is_empty()).then_some(provider.as_str());
            let frames = match service.models(&principal, only).await {
                Ok(infos) => infos
                    .into_iter()
                    .map(|info| Frame::control(call_id, Body::ProviderInfo(info)))
                    .chain(std::iter::once(Frame::control(
                        call_id,
                        Body::Done(Done {
                            finish_reason: "stop".into(),
                        }),
                    )))
                    .collect(),
                Err(e) => vec![error_frame(call_id, "", e.code, &e.message)],
            };
            for frame in frames {
                if to_writer.send(Out::Frame(Box::new(frame))).await.is_err() {
                    return;
                }
            }
        });
        true
    }
}
