//! `cargo xtask bench`: runs the criterion benches and the end-to-end load
//! harness, and writes their figures to `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Criterion benches, as (package, bench target).
const CRITERION: &[(&str, &str)] = &[
    ("gtl-proto", "codec"),
    ("gtl-core", "session"),
    ("gtl-service", "metrics"),
];

pub(crate) fn run(root: &Path) -> Result<()> {
    let target = target_dir(root);
    let criterion_dir = target.join("criterion");
    for (package, bench) in CRITERION {
        eprintln!("xtask: cargo bench -p {package} --bench {bench}");
        cargo(root, &["bench", "-p", package, "--bench", bench])?;
    }
    let micro = criterion_table(&criterion_dir)?;

    let (server, load) = build_release(root, &target)?;
    eprintln!("xtask: running the load harness");
    let output = Command::new(&load)
        .arg(&server)
        .output()
        .context("running gtl-load")?;
    if !output.status.success() {
        bail!(
            "gtl-load failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let e2e = String::from_utf8(output.stdout)?;

    let path = root.join("docs/benchmarks.md");
    // The e2e section and whatever follows it (written by hand: profiles,
    // before/after figures) are kept as they are.
    let kept = fs::read_to_string(&path)
        .ok()
        .and_then(|doc| {
            doc.find(E2E_BEGIN)
                .map(|at| doc[at..].trim_end().to_owned())
        })
        .unwrap_or_else(|| {
            format!("{E2E_BEGIN}\nNot run yet: `cargo xtask bench e2e`.\n{E2E_END}\n")
        });
    let doc = render(&micro, &e2e, &kept);
    fs::write(&path, doc)?;
    println!("wrote {}", path.display());
    Ok(())
}

const E2E_BEGIN: &str = "<!-- bench e2e: begin -->";
const E2E_END: &str = "<!-- bench e2e: end -->";

/// The `bench e2e` section of `doc`, markers included.
fn e2e_block(doc: &str) -> Option<&str> {
    let start = doc.find(E2E_BEGIN)?;
    let end = doc[start..].find(E2E_END)? + start + E2E_END.len();
    Some(&doc[start..end])
}

/// `cargo xtask bench e2e [--quick]`: builds the gateway and the harness
/// (release) and runs `gtl-load --e2e`. The full run writes its section of
/// docs/benchmarks.md and docs/benchmarks-e2e.json; the quick one is
/// checked against that JSON and writes nothing in the tree.
pub(crate) fn e2e(root: &Path, quick: bool) -> Result<()> {
    let target = target_dir(root);
    let (server, load) = build_release(root, &target)?;
    let recorded = root.join("docs/benchmarks-e2e.json");
    let json = if quick {
        target.join("benchmarks-e2e-quick.json")
    } else {
        recorded.clone()
    };
    let mut command = Command::new(&load);
    command.arg("--e2e").arg("--json").arg(&json);
    if quick {
        command.arg("--quick");
        if recorded.is_file() {
            command.arg("--against").arg(&recorded);
        }
    }
    eprintln!(
        "xtask: running gtl-load --e2e{}",
        if quick { " --quick" } else { "" }
    );
    let output = command
        .arg(&server)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running gtl-load")?;
    let tables = String::from_utf8(output.stdout)?;
    if !output.status.success() {
        print!("{tables}");
        bail!("gtl-load --e2e failed");
    }
    if quick {
        print!("{tables}");
        return Ok(());
    }
    let path = root.join("docs/benchmarks.md");
    let doc = fs::read_to_string(&path).unwrap_or_default();
    let section = format!("{E2E_BEGIN}\n{}\n{tables}{E2E_END}", E2E_INTRO.trim_end());
    let doc = match e2e_block(&doc) {
        Some(old) => doc.replacen(old, &section, 1),
        None => format!("{doc}\n{section}\n"),
    };
    fs::write(&path, doc)?;
    println!("wrote {} and {}", path.display(), json.display());
    Ok(())
}

/// What the e2e tables measure and how (above them in docs/benchmarks.md).
const E2E_INTRO: &str = r#"## Direct versus through GTL (`cargo xtask bench e2e`)

A mock upstream (bare hyper, `crates/gtl-bench/src/e2e/mock.rs`) answers in OpenAI's
and Anthropic's wire formats. An open-loop load generator sends the same requests at a
fixed arrival rate, latency measured from each request's *intended* send time (so a
stall cannot hide: coordinated omission), into HDR histograms: once straight to the
mock, once to a `gtl-server` release process whose `openai` and `anthropic`
providers are that mock. The difference is what the gateway adds. The gateway runs in
its own process, so its CPU time and memory are read from /proc apart from the load
generator's and the mock's; all three share the machine's two cores, so every
through-GTL figure also pays for the gateway taking CPU from the client and the mock.
The gateway's configuration is the default except its listeners (loopback, free ports),
the per-subject and session caps, raised past the load (every request here is one
subject), and its providers' HTTP version: a real provider's HTTPS endpoint negotiates
HTTP/2 (ALPN), so the mock is reached over h2c (`h2c = true`), HTTP/2 without the TLS;
the rows marked "HTTP/1.1 upstream" show what a plain-HTTP/1.1 upstream costs instead.
"Durable sessions" is the default (redb: every event stored, fsync'd, before a client
sees it); "sessions in memory" is `[sessions] persist = false`.

Open streams: a client process holding 100k connections would need 100k ephemeral
ports per destination (Linux gives about 28k: `net.ipv4.ip_local_port_range`) and as
many file descriptors on each side, so the streams are multiplexed, 1,000 to a native
TCP connection, and the gateway reaches the mock over one h2c connection
(`h2c = true`). The harness raises the gateway's file limit (`ulimit -n`, as root or
within `fs.nr_open`). Holding 100k SSE or WebSocket connections instead needs
`fs.nr_open` and `ulimit -n` above 200k, `net.ipv4.ip_local_port_range = 1024 65535`,
several client source addresses (127.0.0.2, …), `net.core.somaxconn` and
`net.ipv4.tcp_max_syn_backlog` of a few thousand.

The full run also writes every figure, with the machine and versions, to
`docs/benchmarks-e2e.json`. `cargo xtask bench e2e --quick` (run by `.ci/run`) is a
short run checked against that file: it fails on a lost request or token, or on
throughput below a quarter of the recorded figure on the same CPU model and core
count; never on noise. The targets are reported, not asserted.
"#;

/// Builds the gateway and the load harness (release); their paths.
fn build_release(root: &Path, target: &Path) -> Result<(PathBuf, PathBuf)> {
    eprintln!("xtask: building the gateway and the load harness (release)");
    cargo(
        root,
        &["build", "--release", "-p", "gtl-server", "-p", "gtl-bench"],
    )?;
    Ok((
        target.join("release/gtl-server"),
        target.join("release/gtl-load"),
    ))
}

pub(crate) fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// One row per criterion benchmark that has a throughput: its time per
/// iteration and elements per second.
fn criterion_table(dir: &Path) -> Result<String> {
    let mut rows = Vec::new();
    collect(dir, &mut rows)?;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::from("| benchmark | time per iteration | throughput |\n|---|---|---|\n");
    for (name, ns, per_iter) in rows {
        let per_second = per_iter as f64 / (ns * 1e-9);
        writeln!(
            out,
            "| `{name}` | {} | {} elements/s |",
            duration(ns),
            rate(per_second)
        )?;
    }
    Ok(out)
}

fn collect(dir: &Path, rows: &mut Vec<(String, f64, u64)>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let bench = path.join("new/benchmark.json");
        let estimates = path.join("new/estimates.json");
        if bench.is_file() && estimates.is_file() {
            let bench: serde_json::Value = serde_json::from_str(&fs::read_to_string(bench)?)?;
            let estimates: serde_json::Value =
                serde_json::from_str(&fs::read_to_string(estimates)?)?;
            let name = bench["full_id"].as_str().unwrap_or("?").to_owned();
            let ns = estimates["mean"]["point_estimate"]
                .as_f64()
                .unwrap_or(f64::NAN);
            let elements = bench["throughput"]["Elements"]
                .as_u64()
                .or_else(|| bench["throughput"]["Bytes"].as_u64());
            if let Some(elements) = elements {
                rows.push((name, ns, elements));
            }
        } else {
            collect(&path, rows)?;
        }
    }
    Ok(())
}

fn render(micro: &str, e2e: &str, kept: &str) -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench` (criterion benches, then the `gtl-load` harness\n\
         against a release build). Machine: {cpu}, {cores} cores. Numbers are one run\n\
         on a shared machine: compare rows, not decimals.\n\n\
         ## Codecs, the session machine and metrics (criterion, one core)\n\n\
         Targets: ≥ 5 M token frames/s protobuf and ≥ 2 M/s JSON (encode + decode);\n\
         the session machine allocates nothing per token event beyond the event\n\
         (asserted by `crates/gtl-core/tests/alloc.rs` with a counting allocator).\n\
         `metrics/call_16_tokens`: one whole `chat.complete` of 16 echo tokens\n\
         through the call service, its metrics recorded into a Prometheus recorder\n\
         or dropped (`noop`): the difference is what recording costs a call.\n\n\
         {micro}\n\
         ## End to end (gtl-load, echo provider, one client connection)\n\n\
         Connect: 30 new connections one after another, each through the\n\
         hello/welcome exchange (and, for QUIC and WebTransport, the 1-RTT TLS\n\
         handshake): p50. First token: 300 sequential `chat.stream` calls, time\n\
         to the first token event. Streamed events: one `chat.stream` of 200,000\n\
         echo tokens (median of 3).\n\
         Latency: 2,000 sequential `chat.complete` calls after 100 warm-up calls.\n\
         Concurrent: 200 streams of 200 tokens at once on the same connection.\n\
         Sessions are persisted to redb as in the default configuration (embedded\n\
         mode keeps them in memory, as it does by default). A persisted call is\n\
         acknowledged only after its session is committed to disk (redb, fsync), so\n\
         `chat.complete` latency on the persisted rows is mostly that commit; the\n\
         in-memory rows show the transport and engine alone. SSE is HTTP/1.1: every\n\
         concurrent stream is its own request, so its concurrent row pays a\n\
         connection per stream.\n\n\
         {e2e}\n\
         {kept}\n"
    )
}

fn duration(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M", per_second / 1e6)
    } else {
        format!("{:.0} k", per_second / 1e3)
    }
}
