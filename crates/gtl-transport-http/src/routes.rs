//! The routes of the HTTP port, each a thin translation to a call-service
//! operation.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt as _;
use gtl_proto::{Accepted, Body as FrameBody, Encoding, ErrorCode, Frame, sse};
use gtl_service::{CallError, CallEvents, CallService, Principal, SERVER_NAME};
use gtl_transport::{HandshakeError, PeerInfo};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::HttpGateway;
use crate::respond::{self, Body, RESUME_TOKEN_HEADER, VERSION_HEADER};

/// An SSE comment is sent after this long without events, so proxies do
/// not cut an idle stream.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Answers one request.
pub(crate) async fn handle(
    gateway: &HttpGateway,
    peer: Arc<PeerInfo>,
    request: Request<Incoming>,
) -> Response<Body> {
    // A page elsewhere does not get this host's trust, on any route.
    let peer = crate::origin::caller(&peer, request.headers());
    if is_grpc(&request) {
        // gRPC negotiates its version in its own metadata.
        return crate::grpc::call(gateway.grpc.clone(), &peer, request).await;
    }
    // The page's files hold nothing of the gateway's: no credential needed.
    if let Some(response) = crate::web::respond(gateway.webtransport.as_deref(), &request) {
        return response;
    }
    // Nor do health and metrics, which monitoring scrapes without one.
    if let Some(response) = crate::ops::respond(gateway, &request) {
        return response;
    }
    let version = match respond::version(request.headers()) {
        Ok(version) => version,
        Err(e) => return respond::error(&e, ""),
    };
    let mut response = route(&gateway.service, &peer, request)
        .await
        .unwrap_or_else(|(e, session)| respond::error(&e, &session));
    // The hello route answers with the version its body negotiated.
    if !response.headers().contains_key(VERSION_HEADER)
        && let Ok(value) = HeaderValue::from_str(&version.to_string())
    {
        response.headers_mut().insert(VERSION_HEADER, value);
    }
    response
}

/// A route's failure, with the session it concerns ("" for none).
type Failure = (CallError, String);

fn fail(e: CallError) -> Failure {
    (e, String::new())
}

async fn route(
    service: &Arc<CallService>,
    peer: &PeerInfo,
    request: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if method == Method::GET && path == gtl_transport_ws::DEFAULT_PATH {
        return Ok(crate::ws::upgrade(service.clone(), peer.clone(), request));
    }
    if crate::compat::is_compat(&path) {
        // Errors in the dialect's shape, not the protocol's.
        return Ok(crate::compat::route(service, peer, request).await);
    }
    if method == Method::POST && path == crate::HELLO_PATH {
        // The hello carries its own credential, as on framed transports.
        return hello(service, peer, request).await;
    }
    let principal = service
        .authenticate(peer, respond::bearer(request.headers()))
        .map_err(fail)?;
    match (method, path.as_str()) {
        (Method::POST, "/gtl/v1/complete") => complete(service, &principal, request).await,
        (Method::POST, "/gtl/v1/stream") => stream(service, &principal, request).await,
        (Method::GET, "/gtl/v1/models") => models(service, &principal, request).await,
        (method, path) => match path.strip_prefix("/gtl/v1/sessions/") {
            Some(rest) => session_route(service, &principal, method, rest, request).await,
            None => Err(fail(not_found(CallError::new(
                ErrorCode::InvalidRequest,
                format!("no route {method} {path}: see docs/protocol.md §13.6 for the HTTP routes"),
            )))),
        },
    }
}

/// `POST /gtl/v1/hello`: the framed transports' handshake as one request.
/// The `welcome` is what [`gtl_transport::server_handshake`] would send on
/// a framed connection (same negotiation, the call service's limits), with
/// JSON as the only encoding; then the caller is authenticated with the
/// hello's token (or the `Authorization` bearer token when the hello has
/// none), so a refused credential is refused here, before any call.
async fn hello(
    service: &CallService,
    peer: &PeerInfo,
    request: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let max = service.limits().max_frame_bytes;
    let bearer = respond::bearer(request.headers()).to_owned();
    let body = respond::body(request.into_body(), max)
        .await
        .map_err(fail)?;
    let frame = respond::frame_of_type(&body, "hello").map_err(fail)?;
    let handshake = gtl_transport::answer_hello(frame, &[Encoding::Json], SERVER_NAME, max as u64)
        .map_err(|e| {
            let message = match &e {
                HandshakeError::Rejected { message, .. } => message.clone(),
                other => other.to_string(),
            };
            fail(CallError::new(e.code(), message))
        })?;
    let token = match handshake.hello.token.as_str() {
        "" => bearer.as_str(),
        token => token,
    };
    service.authenticate(peer, token).map_err(fail)?;
    let version = handshake.welcome.version.clone();
    let welcome = Frame::control(0, FrameBody::Welcome(Box::new(handshake.welcome)));
    let json = welcome.to_json().map_err(|e| {
        fail(CallError::new(
            ErrorCode::Internal,
            format!("the welcome could not be encoded: {e}"),
        ))
    })?;
    let mut response = Response::new(respond::full(json));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(&version) {
        headers.insert(VERSION_HEADER, value);
    }
    Ok(response)
}

/// Whether a request is gRPC or gRPC-Web (routed by content type, on any
/// path), or a gRPC-Web CORS preflight.
fn is_grpc(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
        || crate::grpc::is_preflight(request)
}

/// An unknown route: 404 with the protocol's closest code.
fn not_found(mut e: CallError) -> CallError {
    e.code = ErrorCode::ModelNotFound;
    e
}

/// Starts a call from a `completion_request` body.
async fn start(
    service: &CallService,
    principal: &Principal,
    request: Request<Incoming>,
    stream: bool,
) -> Result<CallEvents, Failure> {
    let max = service.limits().max_frame_bytes;
    let traceparent = respond::traceparent(request.headers());
    let body = respond::body(request.into_body(), max)
        .await
        .map_err(fail)?;
    let frame = respond::frame_of_type(&body, "completion_request").map_err(fail)?;
    let Some(FrameBody::CompletionRequest(mut call)) = frame.body else {
        unreachable!("frame_of_type checked the type");
    };
    if let Some(traceparent) = traceparent {
        call.metadata
            .entry(gtl_service::TRACEPARENT.to_owned())
            .or_insert(traceparent);
    }
    // The stream route is chat.stream whatever the body says (the audit
    // record and the metrics name the operation by this flag).
    call.stream |= stream;
    let session_id = (!frame.session_id.is_empty()).then_some(frame.session_id);
    let call = service
        .start(principal, session_id.clone(), *call)
        .await
        .map_err(|e| (e, session_id.unwrap_or_default()))?;
    Ok(CallEvents::new(call))
}

/// `POST /gtl/v1/complete`: the whole answer as one JSON object.
async fn complete(
    service: &CallService,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let mut events = start(service, principal, request, false).await?;
    let session_id = events.session_id().to_owned();
    let completion = events.complete().await;
    let completion = completion
        .into_result()
        .map_err(|e| (CallError::from(e), session_id.clone()))?;
    let tool_calls: Vec<Value> = completion
        .tool_calls
        .iter()
        .map(|call| {
            let function = call.function.clone().unwrap_or_default();
            json!({"id": call.id, "function": {"name": function.name, "arguments": function.arguments}})
        })
        .collect();
    let usage = completion.usage.map(|u| {
        json!({
            "tokens_in": u.tokens_in,
            "tokens_out": u.tokens_out,
            "cost": u.cost,
            "cached_tokens": u.cached_tokens,
        })
    });
    Ok(respond::json(
        StatusCode::OK,
        &json!({
            "session_id": session_id,
            "provider": completion.provider,
            "model": completion.model,
            "text": completion.text,
            "tool_calls": tool_calls,
            "usage": usage,
            "finish_reason": completion.finish_reason,
        }),
    ))
}

/// `POST /gtl/v1/stream`: `accepted`, then the session's events, as SSE.
async fn stream(
    service: &CallService,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let events = start(service, principal, request, true).await?;
    Ok(sse_response(service, events))
}

/// `/gtl/v1/sessions/{id}/events|input|cancel`.
async fn session_route(
    service: &CallService,
    principal: &Principal,
    method: Method,
    rest: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let Some((id, action)) = rest.rsplit_once('/') else {
        return Err(fail(not_found(CallError::new(
            ErrorCode::InvalidRequest,
            "expected /gtl/v1/sessions/{session_id}/events|input|cancel",
        ))));
    };
    let session_id = respond::percent_decode(id);
    let query = request.uri().query().map(str::to_owned);
    let token = request
        .headers()
        .get(RESUME_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| respond::query_param(query.as_deref(), "resume_token"))
        .unwrap_or_default();
    let in_session = |e: CallError| (e, session_id.clone());
    match (method, action) {
        (Method::GET, "events") => {
            let after = request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| respond::query_param(query.as_deref(), "after_seq"))
                .unwrap_or_else(|| "0".into());
            let after_seq = after.trim().parse::<u64>().map_err(|_| {
                in_session(CallError::new(
                    ErrorCode::InvalidRequest,
                    format!("Last-Event-ID / after_seq must be a sequence number, not `{after}`"),
                ))
            })?;
            let call = service
                .resume(principal, &session_id, after_seq, &token)
                .await
                .map_err(in_session)?;
            Ok(sse_response(service, CallEvents::new(call)))
        }
        (Method::POST, "input") => {
            let max = service.limits().max_frame_bytes;
            let body = respond::body(request.into_body(), max)
                .await
                .map_err(in_session)?;
            let frame = respond::frame_of_type(&body, "input").map_err(in_session)?;
            let Some(FrameBody::Input(mut input)) = frame.body else {
                unreachable!("frame_of_type checked the type");
            };
            let token = if token.is_empty() {
                std::mem::take(&mut input.resume_token)
            } else {
                token
            };
            service
                .input(principal, &session_id, &token, input)
                .map_err(in_session)?;
            Ok(no_content())
        }
        (Method::POST, "cancel") => {
            let max = service.limits().max_frame_bytes;
            let body = respond::body(request.into_body(), max)
                .await
                .map_err(in_session)?;
            let frame = respond::frame_of_type(&body, "cancel").map_err(in_session)?;
            let Some(FrameBody::Cancel(cancel)) = frame.body else {
                unreachable!("frame_of_type checked the type");
            };
            let token = if token.is_empty() {
                cancel.resume_token
            } else {
                token
            };
            service
                .cancel(principal, &session_id, &token, &cancel.reason)
                .await
                .map_err(in_session)?;
            Ok(no_content())
        }
        (method, action) => Err(in_session(not_found(CallError::new(
            ErrorCode::InvalidRequest,
            format!("no route {method} /gtl/v1/sessions/{{id}}/{action}"),
        )))),
    }
}

/// `GET /gtl/v1/models[?provider=…]`: `{"providers": [provider_info…]}`.
async fn models(
    service: &CallService,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let provider = respond::query_param(request.uri().query(), "provider");
    let infos = service
        .models(principal, provider.as_deref().filter(|p| !p.is_empty()))
        .await
        .map_err(fail)?;
    let providers: Vec<Value> = infos
        .into_iter()
        .filter_map(|info| {
            let json = Frame::control(0, FrameBody::ProviderInfo(info))
                .to_json()
                .ok()?;
            let mut value: Value = serde_json::from_str(&json).ok()?;
            value.as_object_mut()?.remove("type");
            Some(value)
        })
        .collect();
    Ok(respond::json(
        StatusCode::OK,
        &json!({ "providers": providers }),
    ))
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(respond::full(""));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A call's events as `text/event-stream`: `accepted` first (with the
/// resume token on a new call), then one event per session event, each
/// with `id: <seq>`, and a keep-alive comment after [`KEEP_ALIVE`] of
/// silence.
fn sse_response(service: &CallService, events: CallEvents) -> Response<Body> {
    let max = service.limits().max_frame_bytes;
    let accepted = Frame {
        call_id: 0,
        session_id: events.session_id().to_owned(),
        seq: 0,
        body: Some(FrameBody::Accepted(Accepted {
            resume_token: events.resume_token().unwrap_or_default().to_owned(),
        })),
    };
    let mut first = BytesMut::new();
    let _ = sse::encode(accepted.as_ref(), max, &mut first);
    let head = futures::stream::once(async move { first.freeze() });
    let tail = futures::stream::unfold(events, move |mut events| async move {
        let mut out = BytesMut::new();
        let batch = events.next_batch(|t| {
            if let Err(e) = sse::encode(t.frame(0), max, &mut out) {
                // Too large for the limit: the client learns it instead of
                // silently missing an event.
                let error = crate::event_error(t.seq, t.session_id, &e);
                let _ = sse::encode(error.as_ref(), max, &mut out);
            }
        });
        match tokio::time::timeout(KEEP_ALIVE, batch).await {
            Ok(Some(_)) => Some((out.freeze(), events)),
            Ok(None) => None,
            Err(_) => {
                sse::comment("keep-alive", &mut out);
                Some((out.freeze(), events))
            }
        }
    });
    let body = head
        .chain(tail)
        .map(|bytes| Ok::<_, respond::BoxError>(hyper::body::Frame::data(bytes)));
    let mut response = Response::new(StreamBody::new(body).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
