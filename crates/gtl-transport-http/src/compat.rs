//! The OpenAI- and Anthropic-compatible routes under `/v1/`.
//!
//! `gtl-compat` translates each dialect; the call service does the call.
//! So a call here is an ordinary GTL session, with the same routing,
//! limits and ownership as a native one: its id and resume token are in
//! the `gtl-session-id` and `gtl-resume-token` response headers, and a
//! streamed answer cut by the network resumes on
//! `GET /gtl/v1/sessions/{id}/events`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use gtl_compat::{DialectError, ErrorReply, Flow, anthropic, openai};
use gtl_proto::{Body as FrameBody, CompletionRequest, Error, ErrorCode, Phase};
use gtl_service::{CallError, CallEvents, CallService, Principal};
use gtl_transport::PeerInfo;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Incoming;

use crate::respond::{self, Body, RESUME_TOKEN_HEADER};
use crate::routes::KEEP_ALIVE;

/// The response header naming the GTL session behind a compatible call.
pub const SESSION_HEADER: &str = "gtl-session-id";

/// Whether `path` is one of the compatible APIs'.
pub(crate) fn is_compat(path: &str) -> bool {
    path.starts_with("/v1/")
}

/// Answers one request to a compatible route, errors included, in the
/// dialect's own shape.
pub(crate) async fn route(
    service: &CallService,
    peer: &PeerInfo,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let dialect = Dialect::of(&path, request.headers());
    serve(service, peer, dialect, &path, request)
        .await
        .unwrap_or_else(|reply| reply_response(&reply))
}

async fn serve(
    service: &CallService,
    peer: &PeerInfo,
    dialect: Dialect,
    path: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, ErrorReply> {
    let principal = service
        .authenticate_api_key(peer, api_key(request.headers()))
        .map_err(|e| dialect.call_error(&e))?;
    let method = request.method().clone();
    match (&method, path) {
        (&Method::POST, "/v1/chat/completions" | "/v1/messages") => {
            chat(service, &principal, dialect, request).await
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            count_tokens(service, &principal, request).await
        }
        (&Method::GET, "/v1/models") => {
            let (providers, aliases) = models(service, &principal, dialect).await?;
            let aliases = borrowed(&aliases);
            let body = match dialect {
                Dialect::OpenAi => openai::models_response(&providers, &aliases, now()),
                Dialect::Anthropic => anthropic::models_response(&providers, &aliases, now()),
            };
            Ok(json(body))
        }
        (&Method::GET, path) if path.starts_with("/v1/models/") => {
            let id = respond::percent_decode(&path["/v1/models/".len()..]);
            let (providers, aliases) = models(service, &principal, dialect).await?;
            let aliases = borrowed(&aliases);
            let body = match dialect {
                Dialect::OpenAi => openai::model_response(&providers, &aliases, &id, now()),
                Dialect::Anthropic => anthropic::model_response(&providers, &aliases, &id, now()),
            }?;
            Ok(json(body))
        }
        (method, path) => Err(dialect.error(
            ErrorCode::ModelNotFound,
            &format!(
                "no route {method} {path}: the compatible APIs are POST /v1/chat/completions, \
                 POST /v1/messages, POST /v1/messages/count_tokens and GET /v1/models"
            ),
        )),
    }
}

/// `POST /v1/chat/completions` and `POST /v1/messages`.
async fn chat(
    service: &CallService,
    principal: &Principal,
    dialect: Dialect,
    request: Request<Incoming>,
) -> Result<Response<Body>, ErrorReply> {
    let traceparent = respond::traceparent(request.headers());
    let body = read_body(service, dialect, request).await?;
    let mut parsed = dialect.parse(&body).map_err(|e| dialect.refused(&e))?;
    if let Some(traceparent) = traceparent {
        parsed
            .request
            .metadata
            .entry(gtl_service::TRACEPARENT.to_owned())
            .or_insert(traceparent);
    }
    // Upstream is asked the way the client asked, as native `chat.complete`
    // does: a unary answer is one JSON body to parse instead of a chunk per
    // token (a third of the gateway's CPU per unary call in `cargo xtask
    // bench e2e`). The session logs it all the same, so a unary call whose
    // client went away is still resumable by its session id; the provider's
    // first-byte timeout is sized for a whole unary generation.
    parsed.request.stream = parsed.stream;
    if let Some(user) = &parsed.user {
        tracing::debug!(user, "compatible call for an end user");
    }
    let call = service
        .start(principal, None, parsed.request)
        .await
        .map_err(|e| dialect.call_error(&e))?;
    let events = CallEvents::new(call);
    if parsed.stream {
        let encoder = Encoder::new(
            dialect,
            &parsed.model,
            parsed.include_usage,
            events.session_id(),
        );
        stream(events, encoder).await
    } else {
        unary(events, dialect, &parsed.model).await
    }
}

/// The whole answer as one JSON body.
async fn unary(
    mut events: CallEvents,
    dialect: Dialect,
    model: &str,
) -> Result<Response<Body>, ErrorReply> {
    let session_id = events.session_id().to_owned();
    let resume_token = events.resume_token().unwrap_or_default().to_owned();
    let completion = events.complete().await;
    let body = match dialect {
        Dialect::OpenAi => openai::completion_response(&completion, &session_id, model, now()),
        Dialect::Anthropic => anthropic::completion_response(&completion, &session_id, model),
    };
    let mut response = match body {
        Ok(body) => json(body),
        Err(reply) => reply_response(&reply),
    };
    session_headers(response.headers_mut(), &session_id, &resume_token);
    Ok(response)
}

/// The answer as the dialect's server-sent events.
///
/// The status is sent with the first bytes the encoder writes, not
/// before: an error that comes first (a refused model, a provider down)
/// is answered with its own status, as the dialect's API does. After
/// [`KEEP_ALIVE`] of silence the stream starts anyway, with a comment, and
/// later errors go in-stream.
async fn stream(
    mut events: CallEvents,
    mut encoder: Encoder,
) -> Result<Response<Body>, ErrorReply> {
    let session_id = events.session_id().to_owned();
    let resume_token = events.resume_token().unwrap_or_default().to_owned();
    let mut head = BytesMut::new();
    let mut flow = Flow::Continue;
    while flow == Flow::Continue && !encoder.has_started() {
        flow = next(&mut events, &mut encoder, &mut head).await;
    }
    if let Flow::Reject(mut reply) = flow {
        reply.headers.push((SESSION_HEADER, session_id.clone()));
        return Err(reply);
    }
    let first = futures::stream::once(async move { head.freeze() });
    let tail = futures::stream::unfold(
        (events, encoder, flow),
        |(mut events, mut encoder, flow)| async move {
            if flow != Flow::Continue {
                return None;
            }
            let mut out = BytesMut::new();
            let flow = next(&mut events, &mut encoder, &mut out).await;
            Some((out.freeze(), (events, encoder, flow)))
        },
    );
    let body = first
        .chain(tail)
        .filter(|bytes: &Bytes| std::future::ready(!bytes.is_empty()))
        .map(|bytes| Ok::<_, respond::BoxError>(hyper::body::Frame::data(bytes)));
    let mut response = Response::new(StreamBody::new(body).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    session_headers(headers, &session_id, &resume_token);
    Ok(response)
}

/// Feeds the next batch of events (or a keep-alive after a silence) to
/// the encoder.
async fn next(events: &mut CallEvents, encoder: &mut Encoder, out: &mut BytesMut) -> Flow {
    let mut flow = Flow::Continue;
    let batch = events.next_batch(|t| {
        if flow == Flow::Continue {
            flow = encoder.push(t.body, out);
        }
    });
    match tokio::time::timeout(KEEP_ALIVE, batch).await {
        Ok(Some(_)) => flow,
        // Over without a terminal event for this caller: say so rather
        // than end the answer as if it were complete.
        Ok(None) if flow == Flow::Continue => encoder.push(
            &FrameBody::Error(Error {
                code: ErrorCode::Internal as i32,
                message: "the call ended without an answer: resume its session to read the rest"
                    .into(),
                retryable: true,
                phase: Phase::AfterFirstToken as i32,
                retry_after_ms: 0,
            }),
            out,
        ),
        Ok(None) => flow,
        Err(_) => {
            encoder.keep_alive(out);
            Flow::Continue
        }
    }
}

/// `POST /v1/messages/count_tokens`: the routed provider's own count.
async fn count_tokens(
    service: &CallService,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, ErrorReply> {
    let dialect = Dialect::Anthropic;
    let body = read_body(service, dialect, request).await?;
    let request = anthropic::parse_count_tokens_request(&body).map_err(|e| dialect.refused(&e))?;
    let count = service
        .count_tokens(principal, request)
        .await
        .map_err(|e| dialect.call_error(&e))?;
    Ok(json(anthropic::count_tokens_response(count)))
}

async fn models(
    service: &CallService,
    principal: &Principal,
    dialect: Dialect,
) -> Result<(Vec<gtl_proto::ProviderInfo>, Vec<(String, String)>), ErrorReply> {
    let providers = service
        .models(principal, None)
        .await
        .map_err(|e| dialect.call_error(&e))?;
    Ok((providers, service.aliases()))
}

fn borrowed(aliases: &[(String, String)]) -> Vec<(&str, &str)> {
    aliases
        .iter()
        .map(|(alias, target)| (alias.as_str(), target.as_str()))
        .collect()
}

async fn read_body(
    service: &CallService,
    dialect: Dialect,
    request: Request<Incoming>,
) -> Result<Bytes, ErrorReply> {
    respond::body(request.into_body(), service.limits().max_frame_bytes)
        .await
        .map_err(|e| dialect.call_error(&e))
}

/// The client's credential: `x-api-key` (Anthropic's SDK) or the bearer
/// token (OpenAI's).
fn api_key(headers: &HeaderMap) -> &str {
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| respond::bearer(headers))
}

fn session_headers(headers: &mut HeaderMap, session_id: &str, resume_token: &str) {
    if let Ok(value) = HeaderValue::from_str(session_id) {
        headers.insert(SESSION_HEADER, value);
    }
    if !resume_token.is_empty()
        && let Ok(value) = HeaderValue::from_str(resume_token)
    {
        headers.insert(RESUME_TOKEN_HEADER, value);
    }
}

fn json(body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(respond::full(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn reply_response(reply: &ErrorReply) -> Response<Body> {
    let mut response = json(reply.body.clone());
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &reply.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// The route's clock, in Unix seconds (answers' `created`).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Which API a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
}

/// A parsed request, whichever dialect it came in.
struct Parsed {
    request: CompletionRequest,
    stream: bool,
    include_usage: bool,
    model: String,
    user: Option<String>,
}

impl Dialect {
    /// `/v1/messages…` is Anthropic's; `/v1/models` is Anthropic's when
    /// the request says `anthropic-version` (its SDK always does), as the
    /// two APIs share that path.
    fn of(path: &str, headers: &HeaderMap) -> Self {
        if path.starts_with("/v1/messages")
            || (path.starts_with("/v1/models") && headers.contains_key("anthropic-version"))
        {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }

    fn parse(self, body: &[u8]) -> Result<Parsed, DialectError> {
        Ok(match self {
            Self::OpenAi => {
                let (request, options) = openai::parse_request(body)?;
                Parsed {
                    request,
                    stream: options.stream,
                    include_usage: options.include_usage,
                    model: options.model,
                    user: options.user,
                }
            }
            Self::Anthropic => {
                let (request, options) = anthropic::parse_request(body)?;
                Parsed {
                    request,
                    stream: options.stream,
                    include_usage: false,
                    model: options.model,
                    user: options.user,
                }
            }
        })
    }

    fn error(self, code: ErrorCode, message: &str) -> ErrorReply {
        match self {
            Self::OpenAi => openai::error_response(code, message, None),
            Self::Anthropic => anthropic::error_response(code, message, None),
        }
    }

    fn call_error(self, e: &CallError) -> ErrorReply {
        self.error(e.code, &e.message)
    }

    fn refused(self, e: &DialectError) -> ErrorReply {
        match self {
            Self::OpenAi => openai::request_error(e),
            Self::Anthropic => anthropic::request_error(e),
        }
    }
}

/// A stream encoder of either dialect.
enum Encoder {
    OpenAi(openai::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
}

impl Encoder {
    fn new(dialect: Dialect, model: &str, include_usage: bool, session_id: &str) -> Self {
        match dialect {
            Dialect::OpenAi => Self::OpenAi(openai::StreamEncoder::new(
                session_id,
                model,
                now(),
                include_usage,
            )),
            Dialect::Anthropic => Self::Anthropic(anthropic::StreamEncoder::new(session_id, model)),
        }
    }

    fn push(&mut self, body: &FrameBody, out: &mut BytesMut) -> Flow {
        match self {
            Self::OpenAi(encoder) => encoder.push(body, out),
            Self::Anthropic(encoder) => encoder.push(body, out),
        }
    }

    fn keep_alive(&mut self, out: &mut BytesMut) {
        match self {
            Self::OpenAi(encoder) => encoder.keep_alive(out),
            Self::Anthropic(encoder) => encoder.keep_alive(out),
        }
    }

    fn has_started(&self) -> bool {
        match self {
            Self::OpenAi(encoder) => encoder.has_started(),
            Self::Anthropic(encoder) => encoder.has_started(),
        }
    }
}
