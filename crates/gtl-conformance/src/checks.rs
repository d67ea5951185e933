//! The checks, each against one endpoint (or, for moves between
//! transports, from one endpoint to the next).

use gtl_client::proto::{
    Ack, Body, Cancel, CompletionRequest, Encoding, ErrorCode, Frame, Hello, Input, ModelsRequest,
    Ping, Resume, Welcome,
};
use gtl_client::{ConnectOpts, tool_message, user_message};

use crate::wire::{Failed, Peer, describe};

/// What every check gets.
pub(crate) struct Ctx<'a> {
    pub(crate) urls: &'a [String],
    pub(crate) opts: &'a ConnectOpts,
    /// The server lists the echo provider (Appendix A): the checks that
    /// need known output can run.
    pub(crate) echo: bool,
}

/// A check: its name, the spec section it holds the server to, and
/// whether it needs the echo provider.
pub(crate) struct Check {
    pub(crate) id: &'static str,
    pub(crate) section: &'static str,
    pub(crate) echo: bool,
    /// It needs two connections to one server (not a stdio process each).
    pub(crate) shared: bool,
}

const fn check(id: &'static str, section: &'static str, echo: bool, shared: bool) -> Check {
    Check {
        id,
        section,
        echo,
        shared,
    }
}

pub(crate) const CHECKS: &[Check] = &[
    check("hello.welcome", "§7", false, false),
    check("hello.version_unsupported", "§7", false, false),
    check("hello.first_frame_not_hello", "§7", false, false),
    check("encoding.protobuf", "§6", false, false),
    check("ping", "§3", false, false),
    check("limits.frame_too_large", "§6 §11", false, false),
    check("limits.calls", "§11", true, false),
    check("models.list", "§2", false, false),
    check("chat.stream", "§2.1 §8.1", true, false),
    check("chat.complete", "§2.1", true, false),
    check("refusal.call_id_zero", "§3 §10", false, false),
    check("refusal.call_id_in_use", "§3 §10", true, false),
    check("refusal.unknown_provider", "§10", false, false),
    check("refusal.server_frame", "§10", false, false),
    check("refusal.undecodable", "§6 §10", false, false),
    check("refusal.session_id_taken", "§3 §10", true, false),
    check("refusal.models_unknown_provider", "§2 §10", false, false),
    check("refusal.input_without_call", "§2.1 §10", false, false),
    check("vectors", "§14", true, false),
    check("cancel", "§8.9", true, false),
    check("resume", "§8.5", true, true),
    check("resume.across_transports", "§8.5", true, true),
    check("resume.at_terminal_seq", "§8.5", true, false),
    check("resume.refusals", "§8.6 §8.7", true, false),
    check("takeover", "§8.5", true, true),
    check("ack", "§8.8 §2.1", true, false),
    check("pipe", "§9", true, false),
    check("pipe.input_after_end", "§9", true, false),
];

/// The transports' families, by what the spec lets a client do on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// One framed byte stream: stdio, Unix socket, TCP (§6, §13).
    Framed,
    /// WebSocket: a frame per message (§13.4).
    Ws,
    /// QUIC and WebTransport: a control stream and a stream per call (§13.7).
    Quic,
    /// gRPC (§13.5).
    Grpc,
    /// HTTP and SSE, a request per frame (§13.6).
    Http,
}

impl Family {
    pub(crate) fn of(url: &str) -> Self {
        let scheme = url
            .split("://")
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "quic" | "wt" | "h3" => Self::Quic,
            "grpc" | "grpcs" => Self::Grpc,
            "sse" | "http" | "https" => Self::Http,
            "ws" | "wss" => Self::Ws,
            _ => Self::Framed,
        }
    }
}

/// Why check `id` does not apply to an endpoint of `family`, if it does not.
pub(crate) fn not_for(id: &str, family: Family) -> Option<&'static str> {
    use Family::{Grpc, Http, Quic};
    match (id, family) {
        ("hello.version_unsupported" | "hello.first_frame_not_hello", Http) => {
            Some("HTTP negotiates with the GTL-Version header (§7, §13.6)")
        }
        ("hello.first_frame_not_hello", Grpc) => Some("the handshake is optional on Pipe (§13.5)"),
        ("refusal.server_frame", Quic) => {
            Some("a call stream opens with a call (§13.7); this client opens none for other frames")
        }
        ("pipe.input_after_end" | "refusal.input_without_call", Quic) => {
            Some("a call's frames ride its stream, which ends with the call (§13.7)")
        }
        ("ack", Http) => Some("HTTP has no ack route (§13.6)"),
        _ => None,
    }
}

/// Runs check `id` against the endpoint at `index`.
pub(crate) async fn run(id: &str, ctx: &Ctx<'_>, index: usize) -> Result<(), Failed> {
    let url = ctx.urls[index].as_str();
    match id {
        "hello.welcome" => welcome(ctx, url).await,
        "hello.version_unsupported" => version_unsupported(ctx, url).await,
        "hello.first_frame_not_hello" => first_frame_not_hello(ctx, url).await,
        "encoding.protobuf" => protobuf(ctx, url).await,
        "ping" => ping(ctx, url).await,
        "limits.frame_too_large" => frame_too_large(ctx, url).await,
        "limits.calls" => calls_limit(ctx, url).await,
        "models.list" => models(ctx, url).await.map(|_| ()),
        "chat.stream" => chat(ctx, url, true).await,
        "chat.complete" => chat(ctx, url, false).await,
        "refusal.call_id_zero" => call_id_zero(ctx, url).await,
        "refusal.call_id_in_use" => call_id_in_use(ctx, url).await,
        "refusal.unknown_provider" => unknown_provider(ctx, url).await,
        "refusal.server_frame" => server_frame(ctx, url).await,
        "refusal.undecodable" => {
            let token = gtl_client::hello_token(url, ctx.opts);
            match crate::raw::undecodable(url, &token).await? {
                true => Ok(()),
                false => Err(SKIP_RAW.into()),
            }
        }
        "refusal.session_id_taken" => session_id_taken(ctx, url).await,
        "refusal.models_unknown_provider" => models_unknown_provider(ctx, url).await,
        "refusal.input_without_call" => input_without_call(ctx, url).await,
        "vectors" => vectors(ctx, url).await,
        "cancel" => cancel(ctx, url).await,
        "resume" => resume(ctx, url, url).await,
        "resume.across_transports" => {
            let next = &ctx.urls[(index + 1) % ctx.urls.len()];
            resume(ctx, url, next).await
        }
        "resume.at_terminal_seq" => resume_at_terminal(ctx, url).await,
        "resume.refusals" => resume_refusals(ctx, url).await,
        "takeover" => takeover(ctx, url).await,
        "ack" => ack(ctx, url).await,
        "pipe" => pipe(ctx, url).await.map(|_| ()),
        "pipe.input_after_end" => input_after_end(ctx, url).await,
        other => Err(format!("no check named {other}")),
    }
}

/// Whether the server at `url` lists the echo provider.
pub(crate) async fn has_echo(ctx: &Ctx<'_>, url: &str) -> Result<bool, Failed> {
    Ok(models(ctx, url).await?.iter().any(|p| p == "echo"))
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(what()) }
}

fn request(model: &str, text: &str, stream: bool) -> CompletionRequest {
    CompletionRequest {
        model: model.into(),
        stream,
        messages: vec![user_message(text)],
        ..CompletionRequest::default()
    }
}

fn call(call_id: u64, request: CompletionRequest) -> Frame {
    Frame::control(call_id, Body::CompletionRequest(Box::new(request)))
}

/// A model of the echo provider that answers slowly: long enough to cut,
/// resume or cancel in the middle.
const SLOW: &str = "echo:tokens=200,delay_ms=5";
/// A short answer that takes a little while.
const SHORT: &str = "echo:tokens=20,delay_ms=2";

fn error_code(frame: &Frame) -> Option<ErrorCode> {
    match &frame.body {
        Some(Body::Error(e)) => Some(e.code()),
        _ => None,
    }
}

/// Checks `frame` is a refusal (§10): an `error` with seq 0, `code`, on
/// `call_id`.
fn refusal(frame: &Frame, call_id: u64, code: ErrorCode) -> Result<(), Failed> {
    ensure(
        error_code(frame) == Some(code) && frame.seq == 0 && frame.call_id == call_id,
        || {
            format!(
                "expected a refusal {code:?} on call {call_id} (seq 0), got {}",
                describe(frame)
            )
        },
    )
}

/// The session id and resume token of an `accepted` frame.
fn accepted(frame: &Frame) -> Result<(String, String), Failed> {
    match &frame.body {
        Some(Body::Accepted(a)) if !frame.session_id.is_empty() => {
            Ok((frame.session_id.clone(), a.resume_token.clone()))
        }
        _ => Err(format!(
            "expected `accepted` with a session id, got {}",
            describe(frame)
        )),
    }
}

/// Events of a call (after `accepted`): contiguous seqs from `from`, each
/// naming `session`; the last ends the call.
fn events(frames: &[Frame], from: u64, session: &str) -> Result<(), Failed> {
    for (i, frame) in frames.iter().enumerate() {
        let want = from + i as u64;
        ensure(frame.seq == want && frame.session_id == session, || {
            format!(
                "event {i} after `accepted`: expected seq {want} of {session}, got {}",
                describe(frame)
            )
        })?;
    }
    Ok(())
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

fn bodies(frames: &[Frame]) -> Vec<Option<Body>> {
    frames.iter().map(|f| f.body.clone()).collect()
}

async fn welcome(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (_, welcome): (Peer, Welcome) = Peer::ready(url, ctx.opts, false).await?;
    ensure(
        welcome.version == "1.0" && welcome.max_frame_bytes > 0,
        || {
            format!(
                "welcome says version {:?}, max_frame_bytes {}",
                welcome.version, welcome.max_frame_bytes
            )
        },
    )
}

async fn version_unsupported(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let mut peer = Peer::open(url, ctx.opts).await?;
    let hello = Hello {
        versions: vec!["9.0".into()],
        token: gtl_client::hello_token(url, ctx.opts),
        ..Hello::default()
    };
    peer.send(Frame::control(0, Body::Hello(Box::new(hello))))
        .await?;
    let frame = peer.recv().await?.ok_or("closed without an error frame")?;
    refusal(&frame, 0, ErrorCode::VersionUnsupported)?;
    peer.closed().await
}

async fn first_frame_not_hello(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let mut peer = Peer::open(url, ctx.opts).await?;
    peer.send(Frame::control(0, Body::Ping(Ping { nonce: 1 })))
        .await?;
    let frame = peer.recv().await?.ok_or("closed without an error frame")?;
    refusal(&frame, 0, ErrorCode::InvalidRequest)?;
    peer.closed().await
}

async fn protobuf(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, welcome) = Peer::ready(url, ctx.opts, true).await?;
    if welcome.encoding() != Encoding::Protobuf {
        return Err(SKIP_JSON_ONLY.into());
    }
    pong(&mut peer).await?;
    if !ctx.echo {
        return Ok(());
    }
    // A whole call in protobuf.
    peer.send(call(1, request("echo", "in protobuf", true)))
        .await?;
    let frames = peer.until_end(1, false).await?;
    let (session, _) = accepted(&frames[0])?;
    events(&frames[1..], 1, &session)?;
    let got = text(&frames);
    ensure(got == "in protobuf", || {
        format!("echo answered {got:?} in protobuf")
    })
}

/// A frame over the limit the server announced is refused with
/// `FRAME_TOO_LARGE` and skipped; the connection goes on (§6, §11).
async fn frame_too_large(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, welcome) = Peer::ready(url, ctx.opts, false).await?;
    let limit = usize::try_from(welcome.max_frame_bytes).unwrap_or(usize::MAX);
    // This client's encoder refuses frames over its own limit, the
    // default one: only a server with a smaller limit can be checked.
    if limit >= gtl_client::proto::DEFAULT_MAX_FRAME_BYTES {
        return Err(SKIP_DEFAULT_LIMIT.into());
    }
    let big = "x".repeat(limit + 1);
    let family = Family::of(url);
    // A WebSocket server may close (1009) as soon as it reads the header
    // (§13.4), while this side is still writing.
    let sent = peer.send(call(6, request("echo", &big, true))).await;
    if family != Family::Ws {
        sent?;
    }
    if family == Family::Grpc {
        // §13.5: the RPC fails with RESOURCE_EXHAUSTED, which ends it.
        return peer.closed().await;
    }
    let frame = peer.recv().await?.ok_or("closed without FRAME_TOO_LARGE")?;
    ensure(
        error_code(&frame) == Some(ErrorCode::FrameTooLarge) && frame.seq == 0,
        || {
            format!(
                "a frame over the {limit}-byte limit answered with {}",
                describe(&frame)
            )
        },
    )?;
    if family == Family::Ws {
        // It may close (1009) or go on; either way nothing else is due.
        return Ok(());
    }
    pong(&mut peer).await
}

/// The most calls the call-limit check opens at once.
const MOST_CALLS: u64 = 1_024;

/// Calls past the server's bounds (by default 256 running per subject, and
/// 1,024 per connection, which is also what a QUIC connection lets a client
/// open) are refused with `RATE_LIMIT` on their own call_id; the others go
/// on, and end when cancelled (§11).
async fn calls_limit(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    // Calls that hold still, so that they stay open.
    for call_id in 1..=MOST_CALLS {
        peer.send(call(call_id, request("echo:stall_after=0", "hold", true)))
            .await?;
    }
    let (mut open, mut refused) = (Vec::new(), 0);
    while open.len() as u64 + refused < MOST_CALLS {
        let frame = peer
            .recv()
            .await?
            .ok_or("closed while calls were being opened")?;
        match &frame.body {
            Some(Body::Accepted(_)) => open.push(frame.call_id),
            Some(Body::Error(_)) if frame.seq == 0 => {
                refusal(&frame, frame.call_id, ErrorCode::RateLimit)?;
                refused += 1;
            }
            _ => {}
        }
    }
    for &call_id in &open {
        peer.send(Frame::control(call_id, Body::Cancel(Cancel::default())))
            .await?;
    }
    let mut ended = 0;
    while ended < open.len() {
        let frame = peer
            .recv()
            .await?
            .ok_or("closed while calls were being cancelled")?;
        ended += usize::from(error_code(&frame) == Some(ErrorCode::Cancelled));
    }
    if refused == 0 {
        return Err(SKIP_MANY_CALLS.into());
    }
    Ok(())
}

/// Why the call-limit check could not tell.
pub(crate) const SKIP_MANY_CALLS: &str =
    "skip: the server took 1,024 calls at once from one client; its bounds are above the defaults";

/// Why a check that writes raw bytes could not run.
pub(crate) const SKIP_RAW: &str =
    "skip: it writes bytes no encoder produces, over tcp:// or unix:// (give one)";

/// Why the frame-limit check could not run.
pub(crate) const SKIP_DEFAULT_LIMIT: &str = "skip: the server's frame limit is 8 MiB or more, as large as this client sends; run it with a smaller [limits] max_frame_bytes";

/// The reason the report shows for a transport that carries JSON only.
pub(crate) const SKIP_JSON_ONLY: &str = "skip: the server picked JSON for this transport";

async fn pong(peer: &mut Peer) -> Result<(), Failed> {
    peer.send(Frame::control(0, Body::Ping(Ping { nonce: 42 })))
        .await?;
    let frame = peer.recv_call(0).await?;
    ensure(
        matches!(&frame.body, Some(Body::Pong(p)) if p.nonce == 42),
        || format!("ping 42 answered with {}", describe(&frame)),
    )
}

async fn ping(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    pong(&mut peer).await
}

/// models.list: the providers' names.
async fn models(ctx: &Ctx<'_>, url: &str) -> Result<Vec<String>, Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(Frame::control(
        1,
        Body::ModelsRequest(ModelsRequest::default()),
    ))
    .await?;
    let frames = peer.until_end(1, false).await?;
    let (last, infos) = frames.split_last().ok_or("no answer")?;
    ensure(
        matches!(last.body, Some(Body::Done(_))) && last.seq == 0,
        || format!("models.list ended with {}", describe(last)),
    )?;
    infos
        .iter()
        .map(|f| match &f.body {
            Some(Body::ProviderInfo(info)) if f.seq == 0 => Ok(info.provider.clone()),
            _ => Err(format!("models.list sent {}", describe(f))),
        })
        .collect()
}

async fn chat(ctx: &Ctx<'_>, url: &str, stream: bool) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    let prompt = "one two three";
    peer.send(call(1, request("echo", prompt, stream))).await?;
    let frames = peer.until_end(1, false).await?;
    let (session, token) = accepted(&frames[0])?;
    ensure(!token.is_empty(), || {
        "`accepted` of a new call has no resume_token".into()
    })?;
    events(&frames[1..], 1, &session)?;
    let last = frames.last().ok_or("no frames")?;
    ensure(matches!(last.body, Some(Body::Done(_))), || {
        format!("ended with {}", describe(last))
    })?;
    let got = text(&frames);
    ensure(got == prompt, || {
        format!("echo answered {got:?}, not {prompt:?}")
    })
}

async fn call_id_zero(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(call(0, request("echo", "hi", true))).await?;
    let frame = peer.recv_call(0).await?;
    refusal(&frame, 0, ErrorCode::InvalidRequest)?;
    pong(&mut peer).await
}

async fn call_id_in_use(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(call(5, request(SLOW, "hi", true))).await?;
    accepted(&peer.recv_call(5).await?)?;
    peer.send(call(5, request("echo", "again", true))).await?;
    loop {
        let frame = peer.recv_call(5).await?;
        if frame.seq == 0 {
            refusal(&frame, 5, ErrorCode::InvalidRequest)?;
            break;
        }
    }
    peer.send(Frame::control(5, Body::Cancel(Cancel::default())))
        .await?;
    peer.until_end(5, false).await.map(|_| ())
}

async fn unknown_provider(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    let mut asked = request("nothing", "hi", true);
    asked.provider = "no-such-provider".into();
    peer.send(call(3, asked)).await?;
    let frame = peer.recv_call(3).await?;
    refusal(&frame, 3, ErrorCode::ModelNotFound)?;
    pong(&mut peer).await
}

async fn server_frame(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, welcome) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(Frame::control(4, Body::Welcome(Box::new(welcome))))
        .await?;
    let frame = peer.recv_call(4).await?;
    refusal(&frame, 4, ErrorCode::InvalidRequest)?;
    pong(&mut peer).await
}

async fn cancel(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(call(1, request(SLOW, "hi", true))).await?;
    accepted(&peer.recv_call(1).await?)?;
    peer.recv_call(1).await?;
    peer.send(Frame::control(
        1,
        Body::Cancel(Cancel {
            reason: "conformance".into(),
            ..Cancel::default()
        }),
    ))
    .await?;
    let frames = peer.until_end(1, false).await?;
    let last = frames.last().ok_or("no frames")?;
    ensure(
        error_code(last) == Some(ErrorCode::Cancelled) && last.seq > 0,
        || format!("cancel ended the call with {}", describe(last)),
    )
}

/// A whole call of `request` on a fresh connection: its frames.
async fn whole(ctx: &Ctx<'_>, url: &str, asked: CompletionRequest) -> Result<Vec<Frame>, Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(call(1, asked)).await?;
    peer.until_end(1, false).await
}

fn resume_frame(call_id: u64, session: &str, after_seq: u64, token: &str) -> Frame {
    Frame {
        call_id,
        session_id: session.to_owned(),
        seq: 0,
        body: Some(Body::Resume(Resume {
            after_seq,
            resume_token: token.to_owned(),
        })),
    }
}

/// A call cut after a few events on `from` and resumed on `to`: exactly
/// the rest of what an uncut call gets.
async fn resume(ctx: &Ctx<'_>, from: &str, to: &str) -> Result<(), Failed> {
    let reference = whole(ctx, from, request(SHORT, "cut me", true)).await?;
    let (mut first, _) = Peer::ready(from, ctx.opts, false).await?;
    first.send(call(1, request(SHORT, "cut me", true))).await?;
    let (session, token) = accepted(&first.recv_call(1).await?)?;
    for _ in 0..3 {
        first.recv_call(1).await?;
    }
    drop(first);
    let (mut second, _) = Peer::ready(to, ctx.opts, false).await?;
    second.send(resume_frame(9, &session, 3, &token)).await?;
    let frames = second.until_end(9, false).await?;
    let (id, fresh) = accepted(&frames[0])?;
    ensure(id == session && fresh.is_empty(), || {
        format!("a resume's `accepted` names {id} with token {fresh:?}")
    })?;
    events(&frames[1..], 4, &session)?;
    ensure(bodies(&frames[1..]) == bodies(&reference[4..]), || {
        format!(
            "after the resume: {} events, not the {} an uncut call has after seq 3",
            frames.len() - 1,
            reference.len() - 4
        )
    })
}

async fn resume_at_terminal(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(call(1, request("echo", "the end", true))).await?;
    let frames = peer.until_end(1, false).await?;
    let (session, token) = accepted(&frames[0])?;
    let last = frames.last().ok_or("no frames")?.clone();
    peer.send(resume_frame(2, &session, last.seq, &token))
        .await?;
    let again = peer.until_end(2, false).await?;
    ensure(
        again.len() == 2 && again[1].seq == last.seq && again[1].body == last.body,
        || {
            format!(
                "resumed at the terminal seq {}: got {}",
                last.seq,
                again.iter().map(describe).collect::<Vec<_>>().join(", ")
            )
        },
    )
}

async fn resume_refusals(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(call(1, request("echo", "short", true))).await?;
    let frames = peer.until_end(1, false).await?;
    let (session, token) = accepted(&frames[0])?;
    let last = frames.last().map_or(0, |f| f.seq);
    let cases = [
        (
            resume_frame(2, &session, 0, "not-the-token"),
            ErrorCode::ResumeNotFound,
        ),
        (
            resume_frame(3, "no-such-session", 0, &token),
            ErrorCode::ResumeNotFound,
        ),
        (
            resume_frame(4, &session, last + 1, &token),
            ErrorCode::InvalidRequest,
        ),
    ];
    for (frame, code) in cases {
        let call_id = frame.call_id;
        peer.send(frame).await?;
        refusal(&peer.recv_call(call_id).await?, call_id, code)?;
    }
    Ok(())
}

async fn takeover(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut first, _) = Peer::ready(url, ctx.opts, false).await?;
    first.send(call(1, request(SLOW, "move me", true))).await?;
    let (session, token) = accepted(&first.recv_call(1).await?)?;
    let seen = first.recv_call(1).await?.seq;
    let (mut second, _) = Peer::ready(url, ctx.opts, false).await?;
    second.send(resume_frame(7, &session, seen, &token)).await?;
    accepted(&second.recv_call(7).await?)?;
    // The displaced call ends with SESSION_MOVED (seq 0), after any events
    // that were on their way.
    let frames = first.until_end(1, false).await?;
    let last = frames.last().ok_or("no frames")?;
    refusal(last, 1, ErrorCode::SessionMoved).map_err(|e| format!("the displaced call: {e}"))?;
    second
        .send(Frame::control(7, Body::Cancel(Cancel::default())))
        .await?;
    let rest = second.until_end(7, false).await?;
    let end = rest.last().ok_or("no frames")?;
    ensure(error_code(end) == Some(ErrorCode::Cancelled), || {
        format!("the new call ended with {}", describe(end))
    })
}

async fn ack(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(call(1, request(SLOW, "ack me", true))).await?;
    let (session, token) = accepted(&peer.recv_call(1).await?)?;
    let mut last = 0;
    while last < 6 {
        last = peer.recv_call(1).await?.seq;
    }
    // Never answered (§2.1); the call goes on. The server may forget up to
    // the ack (§8.8), so only resumes at or after it are held to.
    let mut ack = Frame::control(1, Body::Ack(Ack {}));
    ack.session_id = session.clone();
    ack.seq = 5;
    peer.send(ack).await?;
    let next = peer.recv_call(1).await?;
    ensure(next.seq == last + 1, || {
        format!("after the ack: {}", describe(&next))
    })?;
    peer.send(resume_frame(2, &session, 5, &token)).await?;
    let frames = peer.until_end(2, false).await?;
    let (first, rest) = frames.split_first().ok_or("no answer")?;
    accepted(first)?;
    events(&rest[..rest.len().min(3)], 6, &session)
}

/// A session.pipe call: a tool call, its result sent with `end`, the
/// answer, and the call's own end. Returns the connection, still open.
async fn pipe(ctx: &Ctx<'_>, url: &str) -> Result<(Peer, String, String), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    let mut asked = request("echo:tool_call=get_weather", "weather in Oslo", true);
    asked.pipe = true;
    peer.send(call(1, asked)).await?;
    let turn = peer.until_end(1, false).await?;
    let (session, token) = accepted(&turn[0])?;
    let tool_call = turn
        .iter()
        .find_map(|f| match &f.body {
            Some(Body::ToolCall(c)) => Some(c.id.clone()),
            _ => None,
        })
        .ok_or("the first turn made no tool call")?;
    let input = Input {
        messages: vec![tool_message(tool_call, "sunny")],
        end: true,
        ..Input::default()
    };
    let mut frame = Frame::control(
        1,
        Body::Input(Input {
            resume_token: token.clone(),
            ..input
        }),
    );
    frame.session_id = session.clone();
    peer.send(frame).await?;
    let rest = peer.until_end(1, true).await?;
    let reasons: Vec<String> = rest
        .iter()
        .filter_map(|f| match &f.body {
            Some(Body::Done(d)) => Some(d.finish_reason.clone()),
            _ => None,
        })
        .collect();
    ensure(reasons == ["stop", "end_of_input"], || {
        format!(
            "after `input` with `end`: the dones say {reasons:?}, not [\"stop\", \"end_of_input\"]"
        )
    })?;
    Ok((peer, session, token))
}

async fn input_after_end(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, session, token) = pipe(ctx, url).await?;
    let more = Input {
        messages: vec![user_message("more")],
        resume_token: token,
        ..Input::default()
    };
    let mut frame = Frame::control(1, Body::Input(more));
    frame.session_id = session;
    peer.send(frame).await?;
    refusal(&peer.recv_call(1).await?, 1, ErrorCode::InvalidRequest)
}

async fn session_id_taken(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    peer.send(call(1, request("echo", "first", true))).await?;
    let frames = peer.until_end(1, false).await?;
    let (session, _) = accepted(&frames[0])?;
    let mut again = call(2, request("echo", "second", true));
    again.session_id = session;
    peer.send(again).await?;
    refusal(&peer.recv_call(2).await?, 2, ErrorCode::InvalidRequest)
}

async fn models_unknown_provider(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    let only = ModelsRequest {
        provider: "no-such-provider".into(),
    };
    peer.send(Frame::control(8, Body::ModelsRequest(only)))
        .await?;
    refusal(&peer.recv_call(8).await?, 8, ErrorCode::ModelNotFound)
}

async fn input_without_call(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    let (mut peer, _) = Peer::ready(url, ctx.opts, false).await?;
    let input = Input {
        messages: vec![user_message("to nobody")],
        ..Input::default()
    };
    peer.send(Frame::control(77, Body::Input(input))).await?;
    let frame = peer.recv_call(77).await?;
    ensure(
        matches!(frame.body, Some(Body::Error(_))) && frame.seq == 0,
        || format!("input for no call answered with {}", describe(&frame)),
    )
}

/// docs/protocol.md §14's session.pipe request and input vectors, as
/// written there (a unit test keeps them in step with the document).
pub(crate) const PIPE_VECTOR: &str = r#"{"type":"completion_request","call_id":2,"session_id":"s_2","model":"echo","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image","data":"iVBORw0KGgo=","media_type":"image/png"}]}],"stream":true,"tools":[{"type":"function","function":{"name":"look","parameters":{"type":"object"}}}],"tool_choice":"auto","pipe":true}"#;
pub(crate) const INPUT_VECTOR: &str = r#"{"type":"input","call_id":2,"session_id":"s_2","messages":[{"role":"tool","content":"12°C","tool_call_id":"call_1"}],"end":true}"#;

/// A session id no other check or run uses.
fn unique_session_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("s_vectors_{}_{nanos}_{n}", std::process::id())
}

/// The §14 vectors a client sends, taken by the server as they mean: the
/// pipe request (an image part, a tool, a tool choice) runs its turn, and
/// the input vector ends the call, in each encoding the transport has.
async fn vectors(ctx: &Ctx<'_>, url: &str) -> Result<(), Failed> {
    for protobuf in [false, true] {
        let (mut peer, welcome) = Peer::ready(url, ctx.opts, protobuf).await?;
        if protobuf && welcome.encoding() != Encoding::Protobuf {
            break;
        }
        let parse =
            |json: &str| Frame::from_json(json.as_bytes()).map_err(|e| format!("vector: {e}"));
        // A session id of this check's own: runs and endpoints never collide.
        let session = unique_session_id();
        let mut request = parse(PIPE_VECTOR)?;
        request.session_id = session.clone();
        peer.send(request).await?;
        let turn = peer.until_end(2, false).await?;
        let (id, token) = accepted(&turn[0])?;
        ensure(id == session, || {
            format!("the vector's session came back as {id}")
        })?;
        ensure(text(&turn) == "What is this?", || {
            format!("echo answered the vector with {:?}", text(&turn))
        })?;
        let mut input = parse(INPUT_VECTOR)?;
        input.session_id = session.clone();
        if let Some(Body::Input(i)) = &mut input.body {
            i.resume_token = token;
        }
        peer.send(input).await?;
        let rest = peer.until_end(2, true).await?;
        let last = rest.last().ok_or("no frames")?;
        ensure(
            matches!(&last.body, Some(Body::Done(d)) if d.finish_reason == "end_of_input"),
            || {
                format!(
                    "after the input vector the call ended with {}",
                    describe(last)
                )
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectors_are_the_documents() {
        let doc = include_str!("../../../docs/protocol.md");
        let section = &doc[doc.find("## 14. Test vectors").unwrap()..];
        for vector in [PIPE_VECTOR, INPUT_VECTOR] {
            assert!(
                section.contains(&format!("```json\n{vector}\n```")),
                "{vector}"
            );
        }
    }
}
