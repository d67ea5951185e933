//! The connection task: one per client, owning its connection.
//!
//! It writes the callers' frames, demultiplexes the gateway's frames to
//! calls by `call_id` (a helper task reads the connection and queues what
//! it reads), and when the connection breaks it reconnects — the same
//! endpoint first, then the next ones — and restarts every call in flight
//! on the new connection, so all calls of a broken connection share one
//! reconnect.

mod call;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gtl_proto::{Ack, Body, CompletionRequest, ErrorCode, Frame, Hello, Message, ProviderInfo};
use gtl_transport::{Connection, FrameRead, FrameWrite, HandshakeError, client_handshake};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::client::ResumePoint;
use crate::endpoint::{EmbeddedGateway, Endpoint};
use crate::error::{ClientError, EndpointFailure, ServerError};
use crate::opts::{ConnectOpts, ReconnectPolicy};

pub(crate) use call::Delivery;
use call::{Call, Flow, ModelsCall, SessionCall};

/// What the client's handles ask of the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Start a completion call (chat.complete, chat.stream, session.pipe).
    Start {
        call_id: u64,
        request: Box<CompletionRequest>,
        reply: mpsc::UnboundedSender<Delivery>,
    },
    /// Pick up an existing session.
    Resume {
        call_id: u64,
        point: ResumePoint,
        reply: mpsc::UnboundedSender<Delivery>,
    },
    /// models.list.
    Models {
        call_id: u64,
        reply: oneshot::Sender<Result<Vec<ProviderInfo>, ClientError>>,
    },
    /// session.pipe input.
    Input {
        call_id: u64,
        messages: Vec<Message>,
        end: bool,
    },
    /// Cancel a call's session.
    Cancel { call_id: u64, reason: String },
    /// The caller dropped the call's stream.
    Forget { call_id: u64 },
    /// The caller has read the session's events up to `seq`: the gateway
    /// may forget them.
    Ack {
        call_id: u64,
        session_id: String,
        seq: u64,
    },
    /// The caller stopped reading without ending the session.
    Detach { call_id: u64 },
}

/// What the reading helper reports.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "frames are nearly everything read; boxing them would allocate per token"
)]
enum Incoming {
    Frame { generation: u64, frame: Frame },
    Closed { generation: u64 },
}

/// The live connection's sending half and its reading helper.
struct Link {
    write: Box<dyn FrameWrite>,
    reader: JoinHandle<()>,
    /// Tells this connection's frames from a previous one's.
    generation: u64,
    /// Whether the gateway sent anything but `accepted` on this connection:
    /// events or answers, i.e. calls made progress.
    progressed: bool,
    /// The gateway refused the connection itself (e.g. its credentials).
    refused: Option<ServerError>,
    /// Sending failed. The reading helper reports the end once it has
    /// queued what the gateway sent before it (e.g. why it closed).
    failed: bool,
    /// The gateway is draining: the calls on this connection finish here,
    /// new ones wait for the next connection, to the next endpoint.
    draining: bool,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Dropping the reading half closes the connection (and, for stdio,
        // ends the child process).
        self.reader.abort();
    }
}

/// The connection task's state.
pub(crate) struct Driver {
    endpoints: Vec<Endpoint>,
    hello: Hello,
    policy: ReconnectPolicy,
    connect_timeout: Duration,
    trust: Option<crate::endpoint::Trust>,
    embedded: EmbeddedGateway,
    /// Index of the endpoint in use (or last used).
    current: usize,
    link: Option<Link>,
    generation: u64,
    calls: HashMap<u64, Call>,
    commands: mpsc::UnboundedReceiver<Command>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    incoming_tx: mpsc::UnboundedSender<Incoming>,
    /// The endpoint in use, as a URL, for [`Client::endpoint`](crate::Client::endpoint).
    endpoint: Arc<Mutex<String>>,
    /// Connections in a row that closed before any call made progress.
    fruitless: u32,
    /// The live connection closed: reconnect before going on.
    broken: bool,
}

impl Driver {
    pub(crate) fn new(
        endpoints: Vec<Endpoint>,
        opts: &ConnectOpts,
        commands: mpsc::UnboundedReceiver<Command>,
        endpoint: Arc<Mutex<String>>,
    ) -> Self {
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let hello = Hello {
            features: ["resume", "pipe", "ack"].map(String::from).to_vec(),
            token: opts.token.clone().unwrap_or_default(),
            client: opts.client_name.clone(),
            ..Hello::default()
        };
        Self {
            endpoints,
            hello,
            policy: opts.reconnect,
            connect_timeout: opts.connect_timeout,
            trust: opts.trust.clone(),
            #[cfg(feature = "embedded")]
            embedded: EmbeddedGateway::with_config(opts.embedded_config.clone()),
            #[cfg(not(feature = "embedded"))]
            embedded: EmbeddedGateway::default(),
            current: 0,
            link: None,
            generation: 0,
            calls: HashMap::new(),
            commands,
            incoming,
            incoming_tx,
            endpoint,
            fruitless: 0,
            broken: false,
        }
    }

    /// Serves the client's handles until every one of them is dropped.
    pub(crate) async fn run(mut self) {
        loop {
            tokio::select! {
                Some(incoming) = self.incoming.recv() => self.on_incoming(incoming),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
            }
            self.settle().await;
        }
        if let Some(mut link) = self.link.take() {
            let _ = link.write.close().await;
        }
    }

    /// Connects to the first endpoint that answers, starting at `from` and
    /// going down the list (wrapping around), in rounds as the policy says.
    pub(crate) async fn open(&mut self, from: usize) -> Result<(), Vec<EndpointFailure>> {
        let count = self.endpoints.len();
        let order: Vec<usize> = (0..count).map(|step| (from + step) % count).collect();
        let mut last: Vec<Option<EndpointFailure>> = vec![None; count];
        // Endpoints that cannot work on a later try either.
        let mut hopeless = vec![false; count];
        for round in 0..self.policy.attempts_per_endpoint.max(1) {
            if hopeless.iter().all(|h| *h) {
                break;
            }
            let wait = self.policy.backoff(round);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            for &index in &order {
                if hopeless[index] {
                    continue;
                }
                match self.try_endpoint(index).await {
                    Ok(conn) => {
                        self.install(index, conn);
                        return Ok(());
                    }
                    Err((failure, retry)) => {
                        last[index] = Some(failure);
                        hopeless[index] = !retry;
                    }
                }
            }
        }
        Err(order.iter().filter_map(|&i| last[i].take()).collect())
    }

    /// Opens one connection and says hello. The error says whether trying
    /// the same endpoint again may help.
    async fn try_endpoint(&mut self, index: usize) -> Result<Connection, (EndpointFailure, bool)> {
        let endpoint = &self.endpoints[index];
        let url = endpoint.to_string();
        let embedded = &mut self.embedded;
        let mut hello = self.hello.clone();
        if hello.token.is_empty() && endpoint.is_loopback_network() {
            hello.token = crate::endpoint::local_token().unwrap_or_default();
        }
        let trust = self.trust.as_ref();
        let attempt = async {
            let mut conn = endpoint.open(embedded, trust).await?;
            let hello = Hello {
                encodings: conn.encodings.iter().map(|e| *e as i32).collect(),
                ..hello
            };
            match client_handshake(&mut conn, hello).await {
                Ok(_) => Ok(conn),
                Err(HandshakeError::Rejected { code, message }) => {
                    let message = format!("the gateway refused the connection: {code}: {message}");
                    Err((EndpointFailure::new(&url, message).with_code(code), false))
                }
                Err(e) => Err((
                    EndpointFailure::new(&url, format!("handshake failed: {e}")),
                    true,
                )),
            }
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                let message = format!(
                    "no welcome within {} ms: is it a GTL gateway?",
                    self.connect_timeout.as_millis()
                );
                Err((EndpointFailure::new(&url, message), true))
            }
        }
    }

    fn install(&mut self, index: usize, conn: Connection) {
        self.generation += 1;
        let Connection { read, write, .. } = conn;
        let reader = tokio::spawn(read_frames(read, self.generation, self.incoming_tx.clone()));
        self.link = Some(Link {
            write,
            reader,
            generation: self.generation,
            progressed: false,
            refused: None,
            failed: false,
            draining: false,
        });
        self.current = index;
        let url = self.endpoints[index].to_string();
        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner()) = url;
    }

    fn on_incoming(&mut self, incoming: Incoming) {
        let Some(link) = &mut self.link else { return };
        match incoming {
            Incoming::Frame { generation, frame } if generation == link.generation => {
                link.progressed |= !matches!(frame.body, Some(Body::Accepted(_)));
                if frame.call_id == 0 {
                    // Connection-level: a refusal after the welcome (the
                    // gateway then closes), a complaint about one frame, or
                    // the gateway draining.
                    match frame.body {
                        Some(Body::Error(error)) if refuses_connection(error.code()) => {
                            link.refused = Some(ServerError::new(error, 0, ""));
                        }
                        Some(Body::Status(status)) if status.state == "draining" => {
                            tracing::info!(
                                endpoint = %self.endpoints[self.current],
                                "the gateway is draining: new calls go to the next endpoint"
                            );
                            link.draining = true;
                            self.broken |= self.calls.is_empty();
                        }
                        _ => {}
                    }
                    return;
                }
                let call_id = frame.call_id;
                let Some(call) = self.calls.get_mut(&call_id) else {
                    // A call we forgot (dropped or over): nothing to do.
                    return;
                };
                let mut out = Vec::new();
                if call.on_frame(frame, &mut out) == Flow::Over {
                    self.calls.remove(&call_id);
                    // A draining gateway's last call is over: move on.
                    self.broken |= link.draining && self.calls.is_empty();
                }
                self.write_out(call_id, out);
            }
            Incoming::Closed { generation } if generation == link.generation => {
                self.broken = true;
            }
            // From a connection already replaced.
            _ => {}
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Start {
                call_id,
                request,
                reply,
            } => {
                let call = Call::Session(SessionCall::new(call_id, *request, reply));
                self.start(call_id, call).await;
            }
            Command::Resume {
                call_id,
                point,
                reply,
            } => {
                let call = Call::Session(SessionCall::resuming(call_id, point, reply));
                self.start(call_id, call).await;
            }
            Command::Models { call_id, reply } => {
                self.start(call_id, Call::Models(ModelsCall::new(call_id, reply)))
                    .await;
            }
            Command::Input {
                call_id,
                messages,
                end,
            } => {
                let mut out = Vec::new();
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.on_input(messages, end, &mut out);
                }
                self.write_out(call_id, out);
            }
            Command::Cancel { call_id, reason } => {
                let mut out = Vec::new();
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.on_cancel(reason, &mut out);
                }
                self.write_out(call_id, out);
            }
            Command::Ack {
                call_id,
                session_id,
                seq,
            } => {
                // Also after the call's end here: the last events are
                // acked once read.
                let ack = Frame {
                    call_id,
                    session_id,
                    seq,
                    body: Some(Body::Ack(Ack {})),
                };
                self.write_out(call_id, vec![ack]);
            }
            Command::Detach { call_id } => {
                // Frames still in flight for it are dropped as unknown.
                self.calls.remove(&call_id);
            }
            Command::Forget { call_id } => {
                if let Some(frame) = self.calls.remove(&call_id).and_then(|c| c.abandon()) {
                    self.write_out(call_id, vec![frame]);
                }
            }
        }
    }

    async fn start(&mut self, call_id: u64, mut call: Call) {
        if self.link.as_ref().is_some_and(|link| link.draining) {
            // Started on the next connection, once the draining one's
            // calls are over (see `recover`).
            self.calls.insert(call_id, call);
            return;
        }
        if self.link.is_none() {
            // The last connection closed while idle: connect again now.
            if let Err(failures) = self.open(self.current).await {
                call.fail(ClientError::Connect { failures });
                return;
            }
        }
        let out = call.start_frames();
        self.calls.insert(call_id, call);
        self.write_out(call_id, out);
    }

    /// Buffers a call's frames on the live connection. Without one they are
    /// dropped: every call is restarted from its state after a reconnect.
    fn write_out(&mut self, call_id: u64, frames: Vec<Frame>) {
        let Some(link) = &mut self.link else { return };
        for frame in frames {
            let Err(e) = link.write.write_frame(frame.as_ref()) else {
                continue;
            };
            if !e.is_recoverable() {
                link.failed = true;
                return;
            }
            // This frame cannot be encoded (e.g. too large): the call
            // cannot go on as asked.
            if let Some(call) = self.calls.remove(&call_id) {
                if let Some(cancel) = call.abandon() {
                    let _ = link.write.write_frame(cancel.as_ref());
                }
                call.fail(ClientError::Request {
                    message: e.to_string(),
                });
            }
            return;
        }
    }

    /// Flushes what the last step buffered; reconnects when the connection
    /// closed.
    async fn settle(&mut self) {
        while self.broken {
            self.broken = false;
            self.recover().await;
        }
        let Some(link) = &mut self.link else { return };
        if !link.failed && link.write.buffered() > 0 && link.write.flush().await.is_err() {
            // Wait for the reading side to end: what the gateway sent
            // before it closed (a refusal, events) is handled first.
            link.failed = true;
        }
    }

    /// The connection broke: reconnect and restart the calls in flight, or
    /// fail them when no endpoint can be reached.
    async fn recover(&mut self) {
        let Some(link) = self.link.take() else { return };
        let (progressed, refused) = (link.progressed, link.refused.clone());
        let url = self.endpoints[self.current].to_string();
        if link.draining {
            // That gateway is going away: the next endpoint first.
            self.current = (self.current + 1) % self.endpoints.len();
        }
        drop(link);
        if let Some(refused) = refused {
            self.fail_all(&refused.into());
            return;
        }
        if self.calls.is_empty() {
            // Nothing to restore; the next call connects again.
            return;
        }
        self.fruitless = if progressed { 0 } else { self.fruitless + 1 };
        let budget = self.policy.attempts_per_endpoint.max(1) * self.endpoints.len() as u32;
        if self.fruitless > budget {
            let failure = EndpointFailure::new(
                url,
                format!(
                    "{} connections in a row closed before the gateway sent an event",
                    self.fruitless
                ),
            );
            self.fail_all(&ClientError::Disconnected {
                failures: vec![failure],
            });
            return;
        }
        //= design#4
        //# `gtl-client` does this by itself when a transport fails, falling
        //# through its transport order
        match self.open(self.current).await {
            Ok(()) => {
                let ids: Vec<u64> = self.calls.keys().copied().collect();
                for call_id in ids {
                    if let Some(call) = self.calls.get_mut(&call_id) {
                        let out = call.start_frames();
                        self.write_out(call_id, out);
                    }
                }
            }
            Err(failures) => self.fail_all(&ClientError::Disconnected { failures }),
        }
    }

    fn fail_all(&mut self, error: &ClientError) {
        for (_, call) in self.calls.drain() {
            call.fail(error.clone());
        }
    }
}

/// Codes with which a gateway refuses a whole connection: reconnecting at
/// once with the same credentials cannot help (`RATE_LIMIT`: the subject
/// has all the connections it may open).
fn refuses_connection(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Unauthenticated
            | ErrorCode::PermissionDenied
            | ErrorCode::VersionUnsupported
            | ErrorCode::RateLimit
    )
}

/// Reads frames off a connection into the connection task's queue, then
/// reports the connection closed.
async fn read_frames(
    mut read: Box<dyn FrameRead>,
    generation: u64,
    incoming: mpsc::UnboundedSender<Incoming>,
) {
    loop {
        match read.read_frame().await {
            Ok(Some(frame)) => {
                if incoming
                    .send(Incoming::Frame { generation, frame })
                    .is_err()
                {
                    return;
                }
            }
            // One frame could not be decoded; if it was an event, the gap
            // in the session's seqs reports it.
            Err(e) if e.is_recoverable() => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = incoming.send(Incoming::Closed { generation });
}
