//! The end-to-end figures as Markdown tables and as JSON, with the issue's
//! targets beside what was measured.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::concurrency::Held;
use super::gateway::Gateway;
use super::load::Figures;
use super::native::Resumes;
use super::{FLOOR, Size};

pub(crate) struct Report {
    json: serde_json::Map<String, Value>,
    unary: Vec<Value>,
    saturated: Vec<Value>,
    streamed: Vec<Value>,
    relayed: Vec<Value>,
    native: Vec<Value>,
    concurrency: Vec<Value>,
}

fn us(nanos: u64) -> f64 {
    (nanos as f64 / 100.0).round() / 10.0
}

fn quantiles(h: &Histogram<u64>) -> Value {
    json!({
        "p50_us": us(h.value_at_quantile(0.5)),
        "p90_us": us(h.value_at_quantile(0.9)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
    })
}

fn cpu_per(cpu: Option<Duration>, n: u64) -> Value {
    cpu.filter(|_| n > 0).map_or(Value::Null, |c| {
        json!((c.as_secs_f64() * 1e6 / n as f64).round())
    })
}

fn command(output: &str, args: &[&str]) -> String {
    std::process::Command::new(output)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

/// The machine the run is on: CPU model, cores, memory, kernel.
pub(crate) fn machine() -> Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024 / 1024);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_gib": memory,
        "kernel": command("uname", &["-r"]),
    })
}

impl Report {
    pub(crate) fn new(size: &Size, server: &Path) -> Self {
        let mut json = serde_json::Map::new();
        json.insert("machine".into(), machine());
        json.insert(
            "versions".into(),
            json!({
                "gtl": env!("CARGO_PKG_VERSION"),
                "commit": command("git", &["rev-parse", "--short", "HEAD"]),
                "rustc": command("rustc", &["--version"]),
                "server": server.display().to_string(),
            }),
        );
        let quick = if size.name == "quick" { " --quick" } else { "" };
        json.insert(
            "command".into(),
            json!(format!("cargo xtask bench e2e{quick}")),
        );
        json.insert("size".into(), json!(size.name));
        Self {
            json,
            unary: Vec::new(),
            saturated: Vec::new(),
            streamed: Vec::new(),
            relayed: Vec::new(),
            native: Vec::new(),
            concurrency: Vec::new(),
        }
    }

    pub(crate) fn startup(&mut self, gateway: &Gateway, first: Duration, idle_rss: u64, anon: u64) {
        self.json.insert(
            "startup".into(),
            json!({
                "listening_ms": gateway.bound_after.as_secs_f64() * 1e3,
                "first_call_ms": first.as_secs_f64() * 1e3,
                "idle_rss_mib": idle_rss as f64 / 1048576.0,
                "idle_rss_anon_mib": anon as f64 / 1048576.0,
            }),
        );
    }

    pub(crate) fn unary(&mut self, rate: u64, path: &str, f: &Figures, cpu: Option<Duration>) {
        let mut row = quantiles(&f.latency);
        row["rate"] = json!(rate);
        row["path"] = json!(path);
        row["completed"] = json!(f.completed);
        row["errors"] = json!(f.errors);
        row["achieved_per_s"] = json!(f.rate().round());
        row["gateway_cpu_us_per_request"] = cpu_per(cpu, f.completed);
        self.unary.push(row);
    }

    /// The direct HTTP/1.1 row's p50 and p99 at `rate`, in nanoseconds.
    pub(crate) fn direct_at(&self, rate: u64) -> Option<(f64, f64)> {
        self.unary
            .iter()
            .find(|r| r["rate"] == rate && r["path"] == "direct, HTTP/1.1")
            .map(|r| {
                (
                    r["p50_us"].as_f64().unwrap_or(0.0),
                    r["p99_us"].as_f64().unwrap_or(0.0),
                )
            })
    }

    pub(crate) fn saturated(&mut self, path: &str, f: &Figures, cpu: Option<Duration>) {
        let mut row = quantiles(&f.latency);
        row["path"] = json!(path);
        row["per_s"] = json!(f.rate().round());
        row["errors"] = json!(f.errors);
        row["gateway_cpu_us_per_request"] = cpu_per(cpu, f.completed);
        self.saturated.push(row);
    }

    pub(crate) fn streamed(&mut self, path: &str, f: &Figures) {
        self.streamed.push(json!({
            "path": path,
            "streams": f.completed,
            "errors": f.errors,
            "tokens": f.tokens,
            "ttft": quantiles(&f.first_token),
            "itl": quantiles(&f.gaps),
        }));
    }

    pub(crate) fn relayed(&mut self, path: &str, f: &Figures, cpu: Option<Duration>) {
        let per_s = f.tokens as f64 / f.elapsed.as_secs_f64();
        let per_cpu = cpu.filter(|c| !c.is_zero()).map_or(Value::Null, |c| {
            json!((f.tokens as f64 / c.as_secs_f64()).round())
        });
        self.relayed.push(json!({
            "path": path,
            "tokens": f.tokens,
            "errors": f.errors,
            "events_per_s": per_s.round(),
            "gateway_cpu_s": cpu.map(|c| c.as_secs_f64()),
            "events_per_gateway_cpu_s": per_cpu,
        }));
    }

    pub(crate) fn native(
        &mut self,
        name: &str,
        latency: &Histogram<u64>,
        cpu: Duration,
        calls: u64,
        baseline: Option<(f64, f64)>,
    ) {
        let mut row = quantiles(latency);
        row["transport"] = json!(name);
        row["calls"] = json!(calls);
        row["gateway_cpu_us_per_request"] = cpu_per(Some(cpu), calls);
        if let Some((p50, p99)) = baseline {
            row["added_p50_us"] = json!(row["p50_us"].as_f64().unwrap_or(0.0) - p50);
            row["added_p99_us"] = json!(row["p99_us"].as_f64().unwrap_or(0.0) - p99);
        }
        self.native.push(row);
    }

    pub(crate) fn resume(&mut self, r: Resumes) {
        self.json.insert(
            "resume".into(),
            json!({
                "count": r.count,
                "reconnect_and_resume": quantiles(&r.reconnect),
                "resume_on_open_connection": quantiles(&r.resume),
            }),
        );
    }

    pub(crate) fn concurrency(&mut self, h: Held) {
        let per_stream = h.rss_peak.saturating_sub(h.rss_idle) as f64 / h.streams as f64;
        self.concurrency.push(json!({
            "streams": h.streams,
            "peak_open": h.peak_open,
            "open_s": h.open_time.as_secs_f64(),
            "rss_idle_mib": h.rss_idle as f64 / 1048576.0,
            "rss_peak_mib": h.rss_peak as f64 / 1048576.0,
            "rss_per_stream_kib": per_stream / 1024.0,
            "open_files": h.open_files,
            "hold_cpu_share": h.hold_cpu,
            "tokens_expected": h.tokens_expected,
            "tokens_received": h.tokens_received,
            "dropped": h.tokens_expected.saturating_sub(h.tokens_received),
            "failed_streams": h.failed,
        }));
    }

    pub(crate) fn finish(mut self) -> (String, Value) {
        self.json.insert("unary".into(), Value::Array(self.unary));
        self.json
            .insert("max_throughput".into(), Value::Array(self.saturated));
        self.json
            .insert("streaming".into(), Value::Array(self.streamed));
        self.json.insert("relay".into(), Value::Array(self.relayed));
        self.json.insert("native".into(), Value::Array(self.native));
        self.json
            .insert("concurrency".into(), Value::Array(self.concurrency));
        let mut json = Value::Object(self.json);
        json["targets"] = targets(&json);
        (markdown(&json), json)
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn row(rows: &Value, pred: impl Fn(&Value) -> bool) -> Option<&Value> {
    rows.as_array()?.iter().find(|r| pred(r))
}

/// Each target, what was measured, and whether it is met.
fn targets(j: &Value) -> Value {
    let mut out = Vec::new();
    // `floor`: the same figure for the bare proxy in the gateway's place,
    // where it has one.
    let mut add = |name: &str,
                   target: &str,
                   (measured, floor): (Option<f64>, Option<f64>),
                   unit: &str,
                   met: &dyn Fn(f64) -> bool| {
        out.push(json!({
            "target": name,
            "goal": target,
            "measured": measured.filter(|m| m.is_finite()).map(|m| format!("{m:.1} {unit}")),
            "floor": floor.filter(|m| m.is_finite()).map(|m| format!("{m:.1} {unit}")),
            "met": measured.is_some_and(|m| m.is_finite() && met(m)),
        }));
    };
    let at = |rate: u64, path: &str| row(&j["unary"], |r| r["rate"] == rate && r["path"] == path);
    let direct = at(2_000, "direct, HTTP/1.1");
    let memory = at(2_000, "GTL, HTTP/1.1, sessions in memory");
    let durable = at(2_000, "GTL, HTTP/1.1, durable sessions (default)");
    let floor = at(2_000, FLOOR);
    let added = |g: Option<&Value>, key: &str| Some(f(&g?[key]) - f(&direct?[key]));
    add(
        "added p50, unary at 2k req/s (sessions in memory)",
        "≤ 30 µs",
        (added(memory, "p50_us"), added(floor, "p50_us")),
        "µs",
        &|m| m <= 30.0,
    );
    add(
        "added p99, unary at 2k req/s (sessions in memory)",
        "≤ 100 µs",
        (added(memory, "p99_us"), added(floor, "p99_us")),
        "µs",
        &|m| m <= 100.0,
    );
    add(
        "added p50, unary at 2k req/s (durable sessions)",
        "≤ 30 µs",
        (added(durable, "p50_us"), added(floor, "p50_us")),
        "µs",
        &|m| m <= 30.0,
    );
    add(
        "added p99, unary at 2k req/s (durable sessions)",
        "≤ 100 µs",
        (added(durable, "p99_us"), added(floor, "p99_us")),
        "µs",
        &|m| m <= 100.0,
    );
    let max = |path: &str| row(&j["max_throughput"], |r| r["path"] == path).map(|r| f(&r["per_s"]));
    add(
        "throughput through the gateway (sessions in memory)",
        "≥ 20,000 req/s",
        (max("GTL, sessions in memory"), max(FLOOR)),
        "req/s",
        &|m| m >= 20_000.0,
    );
    add(
        "throughput through the gateway (durable sessions)",
        "≥ 20,000 req/s",
        (max("GTL, durable sessions (default)"), max(FLOOR)),
        "req/s",
        &|m| m >= 20_000.0,
    );
    let cpu = |row: Option<&Value>| row.map(|r| f(&r["gateway_cpu_us_per_request"]));
    add(
        "gateway CPU per request at 2k req/s (sessions in memory)",
        "≤ 40 µs",
        (cpu(memory), cpu(floor)),
        "µs",
        &|m| m <= 40.0,
    );
    let ttft =
        |path: &str| row(&j["streaming"], |r| r["path"] == path).map(|r| f(&r["ttft"]["p99_us"]));
    let added_ttft = |path: &str| ttft(path).zip(ttft("direct")).map(|(g, d)| g - d);
    add(
        "added time to first token p99 (sessions in memory)",
        "≤ 100 µs",
        (added_ttft("GTL, sessions in memory"), added_ttft(FLOOR)),
        "µs",
        &|m| m <= 100.0,
    );
    let relay = |path: &str| {
        row(&j["relay"], |r| r["path"] == path).map(|r| f(&r["events_per_gateway_cpu_s"]))
    };
    add(
        "token events relayed per gateway core-second",
        "≥ 1,000,000",
        (relay("GTL, sessions in memory"), relay(FLOOR)),
        "events",
        &|m| m >= 1e6,
    );
    if let Some(largest) = j["concurrency"].as_array().and_then(|a| a.last()) {
        let streams = f(&largest["streams"]);
        add(
            &format!("RSS with {streams:.0} streams open"),
            "≤ 3 GiB at 100k, 0 dropped",
            (Some(f(&largest["rss_peak_mib"])), None),
            "MiB",
            &|m| m <= 3072.0 && largest["dropped"] == 0 && largest["failed_streams"] == 0,
        );
    }
    add(
        "resume p99 (new connection + resume → first replayed event)",
        "≤ 5 ms",
        (
            Some(f(&j["resume"]["reconnect_and_resume"]["p99_us"]) / 1e3),
            None,
        ),
        "ms",
        &|m| m <= 5.0,
    );
    add(
        "idle RSS",
        "≤ 20 MB",
        (Some(f(&j["startup"]["idle_rss_mib"])), None),
        "MiB",
        &|m| m <= 20.0 * 1e6 / 1048576.0,
    );
    add(
        "start-up to the first served call",
        "≤ 100 ms",
        (Some(f(&j["startup"]["first_call_ms"])), None),
        "ms",
        &|m| m <= 100.0,
    );
    Value::Array(out)
}

fn ms(v: &Value) -> String {
    format!("{:.0}", f(v))
}

fn micro(v: &Value) -> String {
    let v = f(v);
    if v.is_nan() {
        "—".into()
    } else if v.abs() >= 10_000.0 {
        format!("{:.1} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

fn markdown(j: &Value) -> String {
    let mut out = String::new();
    let m = &j["machine"];
    let _ = writeln!(
        out,
        "Machine: {}, {} cores, {} GiB, Linux {}. GTL {} ({}), {}. Command: `{}`.\n",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or("?"),
        j["versions"]["gtl"].as_str().unwrap_or("?"),
        j["versions"]["commit"].as_str().unwrap_or("?"),
        j["versions"]["rustc"].as_str().unwrap_or("?"),
        j["command"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "#### Targets\n\n\
         `floor` is the same figure with a bare hyper proxy (no gateway logic; `{FLOOR}` below) \
         in the gateway's place: the least any proxy adds between this load generator and \
         this mock on these cores.\n\n\
         | target | goal | measured | floor | met |\n|---|---|---|---|---|"
    );
    for t in j["targets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            t["target"].as_str().unwrap_or("?"),
            t["goal"].as_str().unwrap_or("?"),
            t["measured"].as_str().unwrap_or("—"),
            t["floor"].as_str().unwrap_or("—"),
            if t["met"] == true { "yes" } else { "**no**" },
        );
    }
    let _ = writeln!(
        out,
        "\n#### Unary `/v1/chat/completions`, open loop (latency from each request's intended send time)\n\n\
         | rate/s | path | p50 | p90 | p99 | p99.9 | added p50 | added p99 | gateway CPU/request | errors |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let unary = j["unary"].as_array().cloned().unwrap_or_default();
    for r in &unary {
        let path = r["path"].as_str().unwrap_or("?");
        let base = if path.contains("messages") {
            "direct `/v1/messages`, HTTP/1.1"
        } else if path.contains("h2c") {
            "direct, h2c"
        } else {
            "direct, HTTP/1.1"
        };
        let direct = unary
            .iter()
            .find(|d| d["rate"] == r["rate"] && d["path"] == base);
        let added = |key: &str| match direct {
            Some(d) if !path.starts_with("direct") => micro(&json!(f(&r[key]) - f(&d[key]))),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {path} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["rate"],
            micro(&r["p50_us"]),
            micro(&r["p90_us"]),
            micro(&r["p99_us"]),
            micro(&r["p999_us"]),
            added("p50_us"),
            added("p99_us"),
            micro(&r["gateway_cpu_us_per_request"]),
            r["errors"],
        );
    }
    let _ = writeln!(
        out,
        "\n#### Maximum throughput (closed loop, 64 HTTP/1.1 connections, 16-token answers)\n\n\
         | path | req/s | p50 | p99 | gateway CPU/request | errors |\n|---|---|---|---|---|---|"
    );
    for r in j["max_throughput"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r["path"].as_str().unwrap_or("?"),
            ms(&r["per_s"]),
            micro(&r["p50_us"]),
            micro(&r["p99_us"]),
            micro(&r["gateway_cpu_us_per_request"]),
            r["errors"],
        );
    }
    let _ = writeln!(
        out,
        "\n#### Streaming: 40 chunks 2 ms apart, 200 streams/s, open loop\n\n\
         | path | first token p50 | p99 | inter-token p50 | p99 | added first token p50 | p99 | added inter-token p50 | p99 |\n|---|---|---|---|---|---|---|---|---|"
    );
    let streamed = j["streaming"].as_array().cloned().unwrap_or_default();
    let direct = streamed
        .iter()
        .find(|r| r["path"] == "direct")
        .cloned()
        .unwrap_or(Value::Null);
    for r in &streamed {
        let is_direct = r["path"] == "direct";
        let added = |a: &str, b: &str| {
            if is_direct {
                "—".into()
            } else {
                micro(&json!(f(&r[a][b]) - f(&direct[a][b])))
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["path"].as_str().unwrap_or("?"),
            micro(&r["ttft"]["p50_us"]),
            micro(&r["ttft"]["p99_us"]),
            micro(&r["itl"]["p50_us"]),
            micro(&r["itl"]["p99_us"]),
            added("ttft", "p50_us"),
            added("ttft", "p99_us"),
            added("itl", "p50_us"),
            added("itl", "p99_us"),
        );
    }
    let _ = writeln!(
        out,
        "\n#### Relay: streams of 5,000 chunks as fast as the mock sends them, 4 at a time\n\n\
         | path | token events/s at the client | gateway CPU | events per gateway core-second |\n|---|---|---|---|"
    );
    for r in j["relay"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            r["path"].as_str().unwrap_or("?"),
            ms(&r["events_per_s"]),
            r["gateway_cpu_s"]
                .as_f64()
                .map_or("—".into(), |c| format!("{c:.2} s")),
            r["events_per_gateway_cpu_s"]
                .as_f64()
                .map_or("—".into(), |c| format!("{c:.0}")),
        );
    }
    let _ = writeln!(
        out,
        "\n#### Native transports → GTL → mock: `chat.complete` at 2,000/s, open loop (added: against direct HTTP/1.1 at 2k/s)\n\n\
         | transport | p50 | p99 | p99.9 | added p50 | added p99 | gateway CPU/request |\n|---|---|---|---|---|---|---|"
    );
    for r in j["native"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r["transport"].as_str().unwrap_or("?"),
            micro(&r["p50_us"]),
            micro(&r["p99_us"]),
            micro(&r["p999_us"]),
            micro(&r["added_p50_us"]),
            micro(&r["added_p99_us"]),
            micro(&r["gateway_cpu_us_per_request"]),
        );
    }
    let _ = writeln!(
        out,
        "\n#### Open streams held at once (native TCP, 1,000 streams a connection; h2c upstream; 3 chunks a drip apart)\n\n\
         | streams | peak open | time to open all | RSS before | RSS with all open | per stream | open files | gateway CPU while dripping | tokens expected | received | dropped | failed |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in j["concurrency"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} s | {:.0} MiB | {:.0} MiB | {:.1} KiB | {} | {:.0}% of a core | {} | {} | {} | {} |",
            r["streams"],
            r["peak_open"],
            f(&r["open_s"]),
            f(&r["rss_idle_mib"]),
            f(&r["rss_peak_mib"]),
            f(&r["rss_per_stream_kib"]),
            r["open_files"],
            f(&r["hold_cpu_share"]) * 100.0,
            r["tokens_expected"],
            r["tokens_received"],
            r["dropped"],
            r["failed_streams"],
        );
    }
    let r = &j["resume"];
    let s = &j["startup"];
    let _ = writeln!(
        out,
        "\n#### Resume, start-up, idle\n\n\
         | figure | p50 | p99 | max |\n|---|---|---|---|\n\
         | resume: new TCP connection + resume → first replayed event ({} cuts of a Unix-socket stream) | {} | {} | {} |\n\
         | resume on an open connection → first replayed event | {} | {} | {} |\n\n\
         Start-up (durable sessions, fresh data dir: creates the redb file, the self-signed\n\
         certificate and the local token): every listener bound after {:.1} ms, the first\n\
         `chat.complete` answered {:.1} ms after spawn. Idle RSS: {:.1} MiB, of which\n\
         {:.1} MiB are the process's own pages (the rest is the binary's code and data,\n\
         mapped from the page cache and shared by every process running it).\n",
        r["count"],
        micro(&r["reconnect_and_resume"]["p50_us"]),
        micro(&r["reconnect_and_resume"]["p99_us"]),
        micro(&r["reconnect_and_resume"]["max_us"]),
        micro(&r["resume_on_open_connection"]["p50_us"]),
        micro(&r["resume_on_open_connection"]["p99_us"]),
        micro(&r["resume_on_open_connection"]["max_us"]),
        f(&s["listening_ms"]),
        f(&s["first_call_ms"]),
        f(&s["idle_rss_mib"]),
        f(&s["idle_rss_anon_mib"]),
    );
    out
}
