//! `gtl-load --e2e`: what the gateway adds to a call that would otherwise
//! go straight to the provider, measured in one run on one machine.
//!
//! A mock upstream ([`mock`]) answers in OpenAI's and Anthropic's wire
//! formats; an open-loop load generator ([`load`]) calls it directly and
//! through a `gtl-server` process ([`gateway`]) whose providers are that
//! mock, at the same fixed rates, so the difference between the rows is the
//! gateway. Then the native transports, streaming, many open streams,
//! resume, and start-up. Prints Markdown; `--json FILE` writes the same
//! figures for machines (and for the regression guard, [`guard`]). Every
//! loop is bounded in count and time; nothing leaves loopback.

mod concurrency;
mod floor;
mod gateway;
pub(crate) mod guard;
mod load;
mod mock;
mod native;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use hyper::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Value, json};

use gateway::{Gateway, Sessions, Upstream};
use load::{Figures, Http, Pace, Pool, Target};
use report::Report;

pub(crate) use floor::main as floor_proxy;

/// How big a run is.
#[derive(Debug, Clone)]
pub(crate) struct Size {
    pub(crate) name: &'static str,
    /// Fixed arrival rates for unary calls, each held for `hold`.
    rates: &'static [u64],
    hold: Duration,
    /// Closed-loop runs (maximum throughput, relay rate).
    saturate: Duration,
    /// Streams for the first-token and inter-token figures.
    streams: u64,
    /// Calls per native transport.
    native_calls: u64,
    /// Open streams held at once, and the mock's drip interval.
    concurrency: &'static [usize],
    drip: Duration,
    resumes: usize,
    /// Only this section (`--only`).
    only: Option<&'static str>,
}

impl Size {
    pub(crate) const FULL: Self = Self {
        name: "full",
        rates: &[500, 2_000, 5_000],
        hold: Duration::from_secs(4),
        saturate: Duration::from_secs(4),
        streams: 600,
        native_calls: 4_000,
        concurrency: &[10_000, 50_000, 100_000],
        drip: Duration::from_secs(15),
        resumes: 300,
        only: None,
    };
    pub(crate) const QUICK: Self = Self {
        name: "quick",
        rates: &[2_000],
        hold: Duration::from_secs(1),
        saturate: Duration::from_secs(1),
        streams: 100,
        native_calls: 500,
        concurrency: &[2_000],
        drip: Duration::from_secs(2),
        resumes: 40,
        only: None,
    };
}

/// Closed-loop workers for the maximum-throughput run (and HTTP/1.1
/// connections in every pool).
const WORKERS: usize = 64;
/// The unary model: a 16-chunk answer at once.
const UNARY_MODEL: &str = "mock-16x0";
/// The streamed model: 40 chunks 2 ms apart.
const STREAM_MODEL: &str = "mock-40x2";
/// The relay model: 5,000 chunks as fast as they go.
const RELAY_MODEL: &str = "mock-5000x0";

/// Runs everything, or only the section `size.only` names (unary, max,
/// streaming, relay, native, resume, concurrency) after the start-up
/// figures.
pub(crate) async fn run(server: PathBuf, size: Size) -> Result<(String, Value)> {
    let want = |section: &str| wanted(size.only, section);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = mock::start().await?;
    let mut report = Report::new(&size, &server);

    // Start-up first, on a machine at rest: spawn → first served call.
    let durable = Gateway::start(&server, upstream, Sessions::Durable, Upstream::H2c)?;
    let first = native::first_call(&durable).await?;
    report.startup(&durable, first, durable.rss()?, durable.rss_anon()?);
    let memory = Gateway::start(&server, upstream, Sessions::Memory, Upstream::H2c)?;
    let h1 = Gateway::start(&server, upstream, Sessions::Memory, Upstream::Http1)?;
    let floor = Gateway::floor(upstream)?;
    eprintln!("gtl-load: gateways up; unary runs");
    let paths = Paths {
        direct: Endpoint::direct(upstream),
        memory: (Endpoint::gateway(&memory)?, &memory),
        durable: (Endpoint::gateway(&durable)?, &durable),
        h1: (Endpoint::gateway(&h1)?, &h1),
        floor: (Endpoint::floor(&floor)?, &floor),
    };
    if want("unary") || want("max") {
        unary(&mut report, &size, &paths).await?;
    }
    if want("native") {
        eprintln!("gtl-load: native transports");
        let baseline = report.direct_at(2_000);
        native::transports(&mut report, &size, &memory, baseline).await?;
    }
    if want("streaming") || want("relay") {
        eprintln!("gtl-load: streaming runs");
        streaming(&mut report, &size, &paths).await?;
    }
    if want("resume") {
        eprintln!("gtl-load: resume");
        report.resume(native::resume(&durable, size.resumes).await?);
    }
    drop(paths);
    drop((memory, durable, h1, floor));
    for &streams in size.concurrency.iter().filter(|_| want("concurrency")) {
        eprintln!("gtl-load: {streams} open streams");
        let gateway = Gateway::start(&server, upstream, Sessions::Memory, Upstream::H2c)?;
        report.concurrency(concurrency::hold(&gateway, streams, size.drip).await?);
    }
    Ok(report.finish())
}

fn wanted(only: Option<&str>, section: &str) -> bool {
    only.is_none_or(|o| o == section)
}

/// The ways to the mock: directly, and through each gateway.
struct Paths<'a> {
    direct: Endpoint,
    /// Sessions in memory; HTTP/2 upstream.
    memory: (Endpoint, &'a Gateway),
    /// The default durable sessions; HTTP/2 upstream.
    durable: (Endpoint, &'a Gateway),
    /// Sessions in memory; HTTP/1.1 upstream.
    h1: (Endpoint, &'a Gateway),
    /// The bare proxy ([`floor`]): the least a second hop costs.
    floor: (Endpoint, &'a Gateway),
}

/// The floor rows' name.
pub(crate) const FLOOR: &str = "floor: bare hyper proxy, no gateway logic";

impl Paths<'_> {
    /// Direct (named `direct`), then each gateway, for a table's rows.
    fn rows<'a>(&'a self, direct: &'a str) -> [(&'a str, &'a Endpoint, Option<&'a Gateway>); 5] {
        [
            (direct, &self.direct, None),
            (FLOOR, &self.floor.0, Some(self.floor.1)),
            (
                "GTL, sessions in memory",
                &self.memory.0,
                Some(self.memory.1),
            ),
            (
                "GTL, durable sessions (default)",
                &self.durable.0,
                Some(self.durable.1),
            ),
            (
                "GTL, sessions in memory, HTTP/1.1 upstream",
                &self.h1.0,
                Some(self.h1.1),
            ),
        ]
    }
}

/// Where a run sends its requests: the mock itself or a gateway's HTTP port.
struct Endpoint {
    addr: SocketAddr,
    /// The provider prefix a gateway needs in the model name.
    prefix: &'static str,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Endpoint {
    fn direct(addr: SocketAddr) -> Self {
        Self {
            addr,
            prefix: "",
            headers: vec![(AUTHORIZATION, HeaderValue::from_static("Bearer mock-key"))],
        }
    }

    /// The floor proxy passes the client's headers on, so it gets the
    /// mock's own.
    fn floor(proxy: &Gateway) -> Result<Self> {
        Ok(Self::direct(proxy.http_addr()?))
    }

    fn gateway(gateway: &Gateway) -> Result<Self> {
        Ok(Self {
            addr: gateway.http_addr()?,
            prefix: "openai/",
            headers: vec![(AUTHORIZATION, format!("Bearer {}", gateway.token).parse()?)],
        })
    }

    fn openai(&self, model: &str, stream: bool) -> Target {
        let body = json!({
            "model": format!("{}{model}", self.prefix),
            "stream": stream,
            "messages": [{"role": "user", "content": "What is the weather in San Francisco?"}],
        });
        Target {
            addr: self.addr,
            path: "/v1/chat/completions".into(),
            headers: self.headers.clone(),
            body: Bytes::from(body.to_string()),
        }
    }

    fn anthropic(&self, model: &str) -> Target {
        let prefix = if self.prefix.is_empty() {
            ""
        } else {
            "anthropic/"
        };
        let body = json!({
            "model": format!("{prefix}{model}"),
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "What is the weather in San Francisco?"}],
        });
        let mut headers = vec![
            (
                HeaderName::from_static("x-api-key"),
                HeaderValue::from_static("mock-key"),
            ),
            (
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static("2023-06-01"),
            ),
        ];
        if !self.prefix.is_empty() {
            headers = self.headers.clone();
            headers.push((
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static("2023-06-01"),
            ));
        }
        Target {
            addr: self.addr,
            path: "/v1/messages".into(),
            headers,
            body: Bytes::from(body.to_string()),
        }
    }
}

/// One measured run, with the gateway's CPU time over it when there is a
/// gateway.
async fn measure(
    endpoint: &Endpoint,
    http: Http,
    target: &Target,
    pace: Pace,
    gateway: Option<&Gateway>,
) -> Result<(Figures, Option<Duration>)> {
    let pool = Pool::connect(endpoint.addr, http).await?;
    // Warm the connections and the gateway's pools.
    load::run(
        &pool,
        target,
        Pace::Rate {
            per_second: 2_000,
            count: 400,
        },
    )
    .await?;
    let before = gateway.map(Gateway::cpu).transpose()?;
    let figures = load::run(&pool, target, pace).await?;
    let cpu = match (gateway, before) {
        (Some(g), Some(before)) => Some(g.cpu()?.saturating_sub(before)),
        _ => None,
    };
    Ok((figures, cpu))
}

async fn unary(report: &mut Report, size: &Size, paths: &Paths<'_>) -> Result<()> {
    let (memory, durable, h1) = (&paths.memory, &paths.durable, &paths.h1);
    let (direct, floor) = (&paths.direct, &paths.floor);
    let rows: [(&str, &Endpoint, Http, Option<&Gateway>); 7] = [
        ("direct, HTTP/1.1", direct, Http::H1(WORKERS), None),
        (FLOOR, &floor.0, Http::H1(WORKERS), Some(floor.1)),
        (
            "GTL, HTTP/1.1, sessions in memory",
            &memory.0,
            Http::H1(WORKERS),
            Some(memory.1),
        ),
        (
            "GTL, HTTP/1.1, durable sessions (default)",
            &durable.0,
            Http::H1(WORKERS),
            Some(durable.1),
        ),
        (
            "GTL, HTTP/1.1, sessions in memory, HTTP/1.1 upstream",
            &h1.0,
            Http::H1(WORKERS),
            Some(h1.1),
        ),
        ("direct, h2c", direct, Http::H2(2), None),
        (
            "GTL, h2c, sessions in memory",
            &memory.0,
            Http::H2(2),
            Some(memory.1),
        ),
    ];
    let rates = if wanted(size.only, "unary") {
        size.rates
    } else {
        &[]
    };
    for &rate in rates {
        for (name, endpoint, http, gateway) in rows {
            let count = rate * size.hold.as_secs().max(1);
            let target = endpoint.openai(UNARY_MODEL, false);
            let pace = Pace::Rate {
                per_second: rate,
                count,
            };
            let (figures, cpu) = measure(endpoint, http, &target, pace, gateway).await?;
            report.unary(rate, name, &figures, cpu);
        }
        // Anthropic's Messages API, both ways.
        for (name, endpoint, gateway) in [
            ("direct `/v1/messages`, HTTP/1.1", direct, None),
            (
                "GTL `/v1/messages`, HTTP/1.1, sessions in memory",
                &memory.0,
                Some(memory.1),
            ),
        ] {
            let count = rate * size.hold.as_secs().max(1);
            let target = endpoint.anthropic(UNARY_MODEL);
            let pace = Pace::Rate {
                per_second: rate,
                count,
            };
            let (figures, cpu) =
                measure(endpoint, Http::H1(WORKERS), &target, pace, gateway).await?;
            report.unary(rate, name, &figures, cpu);
        }
    }
    let saturated = paths.rows("direct, HTTP/1.1");
    for (name, endpoint, gateway) in saturated.into_iter().filter(|_| wanted(size.only, "max")) {
        let target = endpoint.openai(UNARY_MODEL, false);
        let pace = Pace::Saturate {
            workers: WORKERS,
            time: size.saturate,
        };
        let (figures, cpu) = measure(endpoint, Http::H1(WORKERS), &target, pace, gateway).await?;
        report.saturated(name, &figures, cpu);
    }
    Ok(())
}

async fn streaming(report: &mut Report, size: &Size, paths: &Paths<'_>) -> Result<()> {
    let rows = paths.rows("direct");
    for (name, endpoint, gateway) in rows.into_iter().filter(|_| wanted(size.only, "streaming")) {
        let target = endpoint.openai(STREAM_MODEL, true);
        let pace = Pace::Rate {
            per_second: 200,
            count: size.streams,
        };
        let (figures, _) = measure(endpoint, Http::H1(WORKERS), &target, pace, gateway).await?;
        report.streamed(name, &figures);
    }
    for (name, endpoint, gateway) in rows.into_iter().filter(|_| wanted(size.only, "relay")) {
        let target = endpoint.openai(RELAY_MODEL, true);
        let pace = Pace::Saturate {
            workers: 4,
            time: size.saturate,
        };
        let (figures, cpu) = measure(endpoint, Http::H1(WORKERS), &target, pace, gateway).await?;
        report.relayed(name, &figures, cpu);
    }
    Ok(())
}

/// Reads `--e2e`'s arguments:
/// `[--quick] [--only SECTION] [--secs N] [--json FILE] [--against FILE] GTL_SERVER_BIN`.
/// `--against` checks the run against recorded figures ([`guard`]).
pub(crate) fn main(args: &[String]) -> Result<()> {
    const USAGE: &str = "usage: gtl-load --e2e [--quick] [--only SECTION] [--secs N] [--json FILE] [--against FILE] GTL_SERVER_BIN";
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args.get(i + 1).cloned().context(USAGE))
            .transpose()
    };
    let (json, against, only) = (value("--json")?, value("--against")?, value("--only")?);
    let server = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0
                    || !matches!(
                        args[i - 1].as_str(),
                        "--json" | "--against" | "--only" | "--secs"
                    ))
        })
        .map(|(_, a)| PathBuf::from(a))
        .next_back()
        .context(USAGE)?;
    let mut size = if quick { Size::QUICK } else { Size::FULL };
    size.only = only.map(|o| &*o.leak());
    if let Some(secs) = value("--secs")? {
        size.saturate = Duration::from_secs(secs.parse().context(USAGE)?);
        size.hold = size.saturate;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (markdown, figures) = runtime.block_on(run(server, size))?;
    print!("{markdown}");
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&figures)? + "\n")?;
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(recorded) = against {
        let recorded: Value = serde_json::from_str(
            &std::fs::read_to_string(&recorded).with_context(|| format!("reading {recorded}"))?,
        )?;
        guard::check(&figures, &recorded)?;
    }
    Ok(())
}
