//! `gtl`: the GTL command-line client.

mod token;
mod usage;

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt as _;
use gtl_client::proto::types::Content;
use gtl_client::proto::{Accepted, Body, CompletionRequest, Frame, Message, ProviderInfo, Role};
use gtl_client::{
    Client, ClientError, Completion, ConnectOpts, ResumePoint, Trust, connect, user_message,
};

const AFTER_HELP: &str = "\
Endpoints: --endpoint URL (repeat it for a fallback order), else $GTL_ENDPOINT
(comma-separated), else the gateway's defaults: its Unix socket
($XDG_RUNTIME_DIR/gtl/gtl.sock, or gtl.sock in $GTL_DATA_DIR or
~/.local/share/gtl), then, in the seeds' order, quic://127.0.0.1:7302,
grpc://127.0.0.1:7300, ws://127.0.0.1:7300/gtl/v1/ws, sse://127.0.0.1:7300,
and tcp://127.0.0.1:7301.
URLs: stdio://COMMAND [ARGS…], unix:///PATH, tcp[s]://HOST:PORT,
ws[s]://HOST:PORT, sse://HOST:PORT, http[s]://HOST:PORT, grpc[s]://HOST:PORT,
quic://HOST:PORT, wt://HOST:PORT[/PATH], embedded://
(the HTTP port, 7300 by default, serves ws, sse/http and grpc; QUIC is UDP
7302 and WebTransport UDP 7300)

TLS trust: --ca FILE or --cert-hash SHA256 for every TLS endpoint; else a
URL's own ?cert_sha256=HEX pin; else, on loopback, the local gateway's
certificate (its data dir's tls/cert.pem); else the system's roots.

A reply cut off by a lost gateway goes on there: `gtl chat --resume SESSION_ID
--after SEQ --resume-token TOKEN` prints the rest (`--json` prints the
session id and token first, and each event's seq).

Exit status:
  0  success
  1  usage or other error
  2  cannot connect to any endpoint
  3  the call failed with a GTL error (e.g. MODEL_NOT_FOUND, CANCELLED)
  4  `gtl conformance`: a check failed";

/// The GTL command-line client: chat with any model through a GTL gateway.
#[derive(Debug, Parser)]
#[command(name = "gtl", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Gateway endpoint URL; repeat for a fallback order.
    #[arg(long = "endpoint", short = 'e', value_name = "URL", global = true)]
    endpoints: Vec<String>,
    /// GhostToken (JWT) to present to the gateway.
    #[arg(long, env = "GTL_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Trust TLS gateways whose certificate these CAs issued (PEM file),
    /// instead of the system's roots.
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "cert_hash")]
    ca: Option<std::path::PathBuf>,
    /// Trust exactly the TLS certificate with this SHA-256 (64 hex digits,
    /// as gtl-server logs it), whatever its issuer.
    #[arg(long, value_name = "SHA256", global = true)]
    cert_hash: Option<String>,
    /// Print the gateway's frames as JSON lines instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a prompt and stream the reply to stdout.
    Chat(Chat),
    /// List the providers and models the gateway serves.
    Models,
    /// Mint or inspect GhostTokens (no gateway needed).
    Token(token::Token),
    /// Calls, tokens, cost, errors and latency from the gateway's audit
    /// log, grouped by subject, provider, model, route, API, transport or
    /// day (no gateway needed).
    Usage(usage::Usage),
    /// Check that a GTL server follows GTL/1 (docs/protocol.md): every
    /// check against each endpoint URL given, one line a check with its
    /// section, then a summary (`--json` for machines). Exit status 0 when
    /// nothing failed, 4 when a check failed.
    Conformance(Conformance),
}

#[derive(Debug, Args)]
struct Conformance {
    /// Endpoints of one server, any transport (e.g. `tcp://127.0.0.1:7301
    /// ws://127.0.0.1:7300/gtl/v1/ws`); a session started on one is
    /// resumed on the next.
    #[arg(required = true, value_name = "URL")]
    urls: Vec<String>,
}

#[derive(Debug, Args)]
struct Chat {
    /// Model, as `provider/model` or a model of the default provider.
    #[arg(long, short)]
    model: Option<String>,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
    /// Stop after this many tokens.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Instead of a new prompt, pick up this session (e.g. one a previous
    /// `gtl chat` lost its connection to) and print the rest of its reply.
    #[arg(long, value_name = "SESSION_ID", requires = "resume_token", conflicts_with_all = ["prompt", "model", "system", "max_tokens"])]
    resume: Option<String>,
    /// With --resume: the last event already received (the reply goes on
    /// after it; 0 for all of it).
    #[arg(long, value_name = "SEQ", default_value_t = 0, requires = "resume")]
    after: u64,
    /// With --resume: the session's resume token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "GTL_RESUME_TOKEN",
        hide_env_values = true,
        requires = "resume"
    )]
    resume_token: Option<String>,
    /// The prompt; read from stdin when not given.
    prompt: Vec<String>,
}

fn main() -> ExitCode {
    // The SDK's warnings (e.g. a skipped endpoint) on stderr; RUST_LOG
    // shows more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; usage errors exit 1.
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gtl: {e:#}");
            ExitCode::from(exit_status(&e))
        }
    }
}

/// The documented exit status of an error.
fn exit_status(error: &anyhow::Error) -> u8 {
    if error.is::<ConformanceFailed>() {
        return 4;
    }
    match error.downcast_ref::<ClientError>() {
        Some(e) if e.is_connect() => 2,
        Some(ClientError::Server(_)) => 3,
        _ => 1,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Read the prompt first: a missing one needs no gateway to report.
    let chat = match &cli.command {
        Command::Chat(chat) if chat.resume.is_some() => Some((chat, String::new())),
        Command::Chat(chat) => Some((chat, prompt(chat)?)),
        Command::Models => None,
        Command::Token(token) => return token::run(token).await,
        Command::Usage(usage) => return usage::run(usage),
        Command::Conformance(_) => None,
    };
    let mut opts = if cli.global.endpoints.is_empty() {
        ConnectOpts::default()
    } else {
        ConnectOpts::new(&cli.global.endpoints)
    };
    opts = opts.with_client_name(concat!("gtl/", env!("CARGO_PKG_VERSION")));
    if let Some(token) = &cli.global.token {
        opts = opts.with_token(token);
    }
    if let Some(file) = &cli.global.ca {
        let trust = Trust::ca_file(file).map_err(|e| anyhow::anyhow!("--ca: {e}"))?;
        opts = opts.with_trust(trust);
    }
    if let Some(hash) = &cli.global.cert_hash {
        let trust = Trust::sha256_hex(hash).map_err(|e| anyhow::anyhow!("--cert-hash: {e}"))?;
        opts = opts.with_trust(trust);
    }
    if let Command::Conformance(args) = &cli.command {
        return conformance(args, opts, cli.global.json).await;
    }
    let client = connect(opts).await?;
    match chat {
        Some((args, prompt)) => chat_command(&client, args, prompt, cli.global.json).await,
        None => models_command(&client, cli.global.json).await,
    }
}

/// `gtl conformance`: the report on stdout; a failed check is an error
/// (exit status 4).
async fn conformance(args: &Conformance, opts: ConnectOpts, json: bool) -> anyhow::Result<()> {
    let report = gtl_conformance::run(&args.urls, &opts).await;
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if report.passed() {
        Ok(())
    } else {
        Err(ConformanceFailed.into())
    }
}

/// Some conformance check failed (the report said which).
#[derive(Debug)]
struct ConformanceFailed;

impl std::fmt::Display for ConformanceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server failed conformance checks (see the report above)")
    }
}

impl std::error::Error for ConformanceFailed {}

fn prompt(chat: &Chat) -> anyhow::Result<String> {
    if !chat.prompt.is_empty() {
        return Ok(chat.prompt.join(" "));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the prompt from stdin")?;
    if text.trim().is_empty() {
        bail!("no prompt: pass one as an argument or on stdin, e.g. `gtl chat \"hello\"`");
    }
    Ok(text)
}

async fn chat_command(
    client: &Client,
    args: &Chat,
    prompt: String,
    json: bool,
) -> anyhow::Result<()> {
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message {
            role: Role::System as i32,
            content: Some(Content::Text(system.clone())),
            ..Message::default()
        });
    }
    messages.push(user_message(prompt));
    let request = CompletionRequest {
        model: args.model.clone().unwrap_or_default(),
        messages,
        max_tokens: args.max_tokens,
        ..CompletionRequest::default()
    };
    let started = Instant::now();
    let mut stdout = std::io::stdout();
    let mut events = match (&args.resume, &args.resume_token) {
        (Some(session_id), Some(resume_token)) => {
            let point = ResumePoint {
                session_id: session_id.clone(),
                after_seq: args.after,
                resume_token: resume_token.clone(),
            };
            client.resume(point).await?
        }
        _ => client.stream(request).await?,
    };
    let session_id = events.session_id().to_owned();
    if json {
        // What a caller keeps to pick the session up with --resume.
        let point = events.resume_point();
        let accepted = Frame {
            session_id: session_id.clone(),
            body: Some(Body::Accepted(Accepted {
                resume_token: point.resume_token,
            })),
            ..Frame::default()
        };
        writeln!(stdout, "{}", accepted.to_json()?)?;
    }
    let mut completion = Completion::default();
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let item = tokio::select! {
            item = events.next() => item,
            _ = &mut ctrl_c, if !interrupted => {
                // Stop the generation, then read on until the gateway
                // confirms with CANCELLED.
                interrupted = true;
                events.cancel("interrupted by the user");
                continue;
            }
        };
        let Some(item) = item else { break };
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                if let ClientError::Server(error) = &e
                    && json
                    && error.seq() > 0
                {
                    let frame = Frame::event(
                        &session_id,
                        error.seq(),
                        Body::Error(error.as_proto().clone()),
                    );
                    writeln!(stdout, "{}", frame.to_json()?)?;
                } else if completion.has_output() && !json {
                    writeln!(stdout)?;
                }
                if matches!(e, ClientError::Disconnected { .. }) {
                    let point = events.resume_point();
                    eprintln!(
                        "gtl: the session goes on at the gateway; to read the rest: \
                         gtl chat --resume {} --after {} --resume-token {}",
                        point.session_id, point.after_seq, point.resume_token
                    );
                }
                return Err(e.into());
            }
        };
        completion.push(&event.body);
        if json {
            writeln!(stdout, "{}", event.to_frame(&session_id).to_json()?)?;
        } else {
            match &event.body {
                Body::Token(token) => write!(stdout, "{}", token.text)?,
                // A router's failover (docs/routing.md): said on stderr;
                // after a restart the answer starts again on a new line.
                Body::Status(status) if status.state != "streaming" => {
                    if status.state == gtl_client::RESTARTED {
                        writeln!(stdout)?;
                    }
                    eprintln!(
                        "[{} {}/{}: {}]",
                        status.state, status.provider, status.model, status.reason
                    );
                }
                Body::ToolCall(call) => {
                    let (name, arguments) = call
                        .function
                        .as_ref()
                        .map_or(("?", ""), |f| (f.name.as_str(), f.arguments.as_str()));
                    eprintln!("[tool call {}: {name}({arguments})]", call.id);
                }
                _ => {}
            }
        }
        stdout.flush()?;
    }
    if !json && !completion.text.is_empty() && !completion.text.ends_with('\n') {
        writeln!(stdout)?;
    }
    eprintln!("{}", usage_line(&completion, started.elapsed().as_millis()));
    Ok(())
}

/// E.g. `[echo/echo] 12 tokens in, 12 out, $0.000000, 3 ms`.
fn usage_line(completion: &Completion, millis: u128) -> String {
    let name = |s: &str| {
        if s.is_empty() {
            "?".to_owned()
        } else {
            s.to_owned()
        }
    };
    let served = format!(
        "[{}/{}]",
        name(&completion.provider),
        name(&completion.model)
    );
    match &completion.usage {
        Some(usage) => format!(
            "{served} {} tokens in, {} out, ${:.6}, {millis} ms",
            usage.tokens_in, usage.tokens_out, usage.cost
        ),
        None => format!("{served} no usage reported, {millis} ms"),
    }
}

async fn models_command(client: &Client, json: bool) -> anyhow::Result<()> {
    let providers = client.models().await?;
    let mut stdout = std::io::stdout();
    if json {
        for info in providers {
            let frame = Frame::control(0, Body::ProviderInfo(info));
            writeln!(stdout, "{}", frame.to_json()?)?;
        }
        return Ok(());
    }
    write!(stdout, "{}", models_table(&providers))?;
    Ok(())
}

fn models_table(providers: &[ProviderInfo]) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let mut rows = vec![
        [
            "PROVIDER", "MODEL", "CONTEXT", "MAX OUT", "STREAM", "TOOLS", "VISION", "$/1K IN",
            "$/1K OUT",
        ]
        .map(str::to_owned),
    ];
    for info in providers {
        if info.models.is_empty() {
            let mut row: [String; 9] = std::array::from_fn(|_| "-".to_owned());
            row[0].clone_from(&info.provider);
            row[1] = "(unavailable)".to_owned();
            rows.push(row);
        }
        for model in &info.models {
            rows.push([
                info.provider.clone(),
                model.name.clone(),
                model.context_window.to_string(),
                model.max_tokens.to_string(),
                yes_no(model.supports_streaming),
                yes_no(model.supports_functions),
                yes_no(model.supports_vision),
                format!("{:.6}", model.cost_per_1k_input),
                format!("{:.6}", model.cost_per_1k_output),
            ]);
        }
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
