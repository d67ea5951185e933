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

    eprintln!("xtask: building the gateway and the load harness (release)");
    cargo(
        root,
        &["build", "--release", "-p", "gtl-server", "-p", "gtl-bench"],
    )?;
    let server = target.join("release/gtl-server");
    let load = target.join("release/gtl-load");
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

    let doc = render(&micro, &e2e);
    let path = root.join("docs/benchmarks.md");
    fs::write(&path, doc)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
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

fn render(micro: &str, e2e: &str) -> String {
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
         {e2e}"
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
