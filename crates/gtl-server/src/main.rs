//! `gtl-server`: the GTL gateway.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use gtl_server::{Config, Server, ServerError, default_registry};

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Logs go to stderr: with --stdio, stdout is the protocol.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
    if let Some(dir) = args.data_dir {
        config.set_data_dir(dir);
    }
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
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
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
        server.run(shutdown_signal()).await;
        Ok(())
    });
    // `run` kept its shutdown deadline; a store write still under way is
    // not waited for (the store is crash-safe, and no event a client has
    // seen depends on it).
    runtime.shutdown_timeout(EXIT_GRACE);
    served
}

/// How long exiting waits for work still on blocking threads.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
