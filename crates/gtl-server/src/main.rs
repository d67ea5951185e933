//! `gtl-server`: the GTL gateway.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use gtl_server::{Config, LogFormat, Reloader, Server, ServerError, default_registry};

/// The GTL gateway: one protocol for AI traffic over every transport.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file; every setting has a default.
    #[arg(long, short, env = "GTL_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (sessions database, socket unless configured).
    #[arg(long, env = "GTL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Print the age recipient callers encrypt their provider keys to (for
    /// a token's provider_keys), creating the identity if needed, and exit.
    #[arg(long)]
    print_recipient: bool,
    /// Speak GTL on stdin/stdout (for editors) instead of listening.
    #[arg(long)]
    stdio: bool,
    /// Log lines as `text` or `json` (overrides `[log] format`).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
}

/// mimalloc rather than glibc's malloc: a call allocates often and from
/// every worker thread, and glibc's arena locks and consolidation were a
/// tenth of the gateway's CPU in `cargo xtask bench e2e`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gtl-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let log_format = match &args.log_format {
        Some(format) => Some(format.parse::<LogFormat>().map_err(anyhow::Error::msg)?),
        None => None,
    };
    // The command line's settings win over the file's, on reloads too.
    let overrides = move |config: &mut Config| {
        if let Some(dir) = &args.data_dir {
            config.set_data_dir(dir.clone());
        }
        if let Some(format) = log_format {
            config.log.format = format;
        }
    };
    overrides(&mut config);
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    // The trace exporter's batches run on the runtime.
    // The guard flushes the log lines still queued when main returns.
    let (traces, _log_writer) = {
        let _runtime = runtime.enter();
        init_logging(&config)?
    };
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    if args.print_recipient {
        let keys = gtl_server::provider_keys::ProviderKeys::load_or_create(&config.data_dir)
            .map_err(anyhow::Error::msg)?;
        println!("{}", keys.recipient());
        return Ok(());
    }
    let served = runtime.block_on(async {
        if args.stdio {
            // One client on our own stdin/stdout; no listeners.
            config.listen.uds.enabled = false;
            config.listen.tcp.enabled = false;
            config.listen.http.enabled = false;
            config.listen.quic.enabled = false;
            config.listen.h3.enabled = false;
            let server = match Server::bind(&config, default_registry(&config)?).await {
                Err(ServerError::Store { path, message }) => {
                    // Another process (an editor's other window) has the
                    // sessions database: serve with sessions in memory.
                    tracing::warn!(
                        path = %path.display(),
                        error = %message,
                        "sessions database busy; this stdio server keeps sessions in memory"
                    );
                    config.sessions.persist = false;
                    Server::bind(&config, default_registry(&config)?).await?
                }
                other => other?,
            };
            server
                .gateway()
                .serve(gtl_transport_stdio::stdio_connection())
                .await;
            let deadline = std::time::Duration::from_secs(config.limits.shutdown_timeout_secs);
            let engine = server.gateway().engine().clone();
            match tokio::time::timeout(deadline, engine.shutdown()).await {
                Ok(done) => done?,
                Err(_) => tracing::warn!("sessions not all persisted within the shutdown timeout"),
            }
            server.gateway().flush_audit().await;
            return Ok(());
        }
        let server = Server::bind(&config, default_registry(&config)?)
            .await
            .context(
                "is another gtl-server running with the same data dir? stop it or pass --data-dir",
            )?;
        if let Some(addr) = server.metrics_addr() {
            eprintln!("gtl-server: metrics on http://{addr}/metrics");
        }
        for endpoint in server.endpoints() {
            eprintln!("gtl-server: listening on {endpoint}");
        }
        tokio::spawn(reload_on_change(
            server.reloader(),
            args.config.clone(),
            overrides,
        ));
        let (drain, stop) = shutdown_signals();
        server.run_draining(drain, stop).await;
        Ok(())
    });
    if let Some(traces) = traces {
        // The last spans go out before the exporter's runtime stops.
        let flushed = runtime
            .block_on(async { tokio::task::spawn_blocking(move || traces.shutdown()).await });
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "traces not all exported");
        }
    }
    // `run` kept its shutdown deadline; a store write still under way is
    // not waited for (the store is crash-safe, and no event a client has
    // seen depends on it).
    runtime.shutdown_timeout(EXIT_GRACE);
    served
}

/// How often the configuration file is checked for a change.
const RELOAD_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Reloads the configuration on SIGHUP and when its file's content changes;
/// one that does not load is refused, saying why, and the running one
/// stays.
async fn reload_on_change(
    reloader: Reloader,
    path: Option<PathBuf>,
    overrides: impl Fn(&mut Config),
) {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("installing the SIGHUP handler");
    let read = |path: &Option<PathBuf>| path.as_ref().and_then(|p| std::fs::read(p).ok());
    let mut seen = read(&path);
    let mut ticks = tokio::time::interval(RELOAD_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            _ = hangups.recv() => "SIGHUP",
            _ = ticks.tick(), if path.is_some() => {
                // A file missing for a moment (an editor's save) is no change.
                let now = read(&path);
                if now.is_none() || now == seen {
                    continue;
                }
                "the configuration file changed"
            }
        };
        seen = read(&path);
        let reloaded = async {
            let mut config = match &path {
                Some(path) => Config::from_file(path)?,
                None => Config::default(),
            };
            overrides(&mut config);
            let registry = default_registry(&config)?;
            anyhow::Ok(reloader.reload(&config, registry).await?)
        };
        match reloaded.await {
            Ok(restart) if restart.is_empty() => tracing::info!(trigger, "configuration reloaded"),
            Ok(restart) => tracing::warn!(
                trigger,
                sections = ?restart,
                "configuration reloaded; these sections apply only after a restart"
            ),
            Err(e) => tracing::error!(
                trigger,
                "configuration reload refused, the running one stays: {e:#}"
            ),
        }
    }
}

/// Logs to stderr (with --stdio, stdout is the protocol), at `RUST_LOG`'s
/// level, else the configuration's, from a thread of its own: a call's log
/// line is queued, never written on the thread serving calls (lines are
/// not dropped; a full queue waits).
/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the calls' spans also go to
/// that collector, whatever the log level: the returned provider.
fn init_logging(
    config: &Config,
) -> anyhow::Result<(
    Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    tracing_appender::non_blocking::WorkerGuard,
)> {
    use tracing_subscriber::prelude::*;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let (stderr, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // Its queue is allocated whole at start: 8k lines, not the 128k
        // default (5 MiB of resident memory on an idle gateway).
        .buffered_lines_limit(8_192)
        .thread_name("gtl-log")
        .finish(std::io::stderr());
    let logs = tracing_subscriber::fmt::layer().with_writer(stderr);
    let logs = match config.log.format {
        LogFormat::Json => logs.json().boxed(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
    };
    let traces = if gtl_server::telemetry::requested() {
        Some(gtl_server::telemetry::tracer_provider().map_err(anyhow::Error::msg)?)
    } else {
        None
    };
    let exported = traces.as_ref().map(|provider| {
        // The calls' spans, and what is logged inside them at info.
        gtl_server::telemetry::layer(provider).with_filter(tracing_subscriber::filter::filter_fn(
            |meta| {
                if meta.is_span() {
                    meta.name().starts_with("gen_ai.")
                } else {
                    *meta.level() <= tracing::Level::INFO
                }
            },
        ))
    });
    // Log lines carry their connection's span only (docs/operations.md):
    // the calls' `gen_ai.*` spans are for the trace exporter. Without one,
    // no layer wants them and they cost nothing (they were a few percent
    // of a unary call's CPU, formatted for the log and entered at every
    // poll).
    let not_call_spans = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.is_span() && meta.name().starts_with("gen_ai."))
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(not_call_spans).with_filter(filter))
        .with(exported)
        .init();
    Ok((traces, guard))
}

/// How long exiting waits for work still on blocking threads.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// SIGINT or SIGTERM: the first starts the drain, the second stops at
/// once. Must be called inside the runtime.
fn shutdown_signals() -> (
    impl Future<Output = ()> + use<>,
    impl Future<Output = ()> + use<>,
) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    let (count, counted) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            count.send_modify(|n| *n += 1);
            if *count.borrow() >= 2 {
                tracing::info!("a second signal: stopping at once");
                return;
            }
        }
    });
    let signals = |n: u32| {
        let mut counted = counted.clone();
        async move {
            let _ = counted.wait_for(|count| *count >= n).await;
        }
    };
    (signals(1), signals(2))
}
