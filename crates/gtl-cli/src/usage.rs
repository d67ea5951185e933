//! `gtl usage`: who spent what on which model, from the gateway's audit
//! log (its rotated files included), with no other tool.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

#[derive(Debug, Args)]
pub(crate) struct Usage {
    /// What to group calls by (`route`: the model name the client asked
    /// for, e.g. a route or an alias).
    #[arg(long, value_enum, default_value_t = By::Model)]
    by: By,
    /// Only calls since then: `30m`, `24h`, `7d`, or a date `2026-12-01`
    /// (UTC).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Output: an aligned table, JSON or CSV.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The audit log (its rotated `.1`, `.2`, … files are read too); by
    /// default the one `--config` (or the default configuration) names.
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    /// The gateway's configuration file, to find its audit log.
    #[arg(long, value_name = "FILE", env = "GTL_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum By {
    Subject,
    Provider,
    Model,
    Route,
    Api,
    Transport,
    Day,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

/// The fields of an audit record a report needs.
#[derive(Debug, Deserialize)]
struct Record {
    time_ms: u64,
    subject: String,
    /// The API: chat.complete, chat.stream, session.pipe.
    route: String,
    transport: String,
    #[serde(default)]
    requested: String,
    provider: String,
    model: String,
    tokens_in: u64,
    tokens_out: u64,
    cost: f64,
    duration_ms: u64,
    outcome: String,
}

/// One group's figures.
#[derive(Debug, Default, Serialize)]
struct Row {
    key: String,
    calls: u64,
    errors: u64,
    error_rate: f64,
    tokens_in: u64,
    tokens_out: u64,
    cost_usd: f64,
    p50_ms: u64,
    p99_ms: u64,
    #[serde(skip)]
    durations: Vec<u64>,
}

impl Row {
    fn add(&mut self, record: &Record) {
        self.calls += 1;
        self.errors += u64::from(record.outcome == "error");
        self.tokens_in += record.tokens_in;
        self.tokens_out += record.tokens_out;
        self.cost_usd += record.cost;
        self.durations.push(record.duration_ms);
    }

    fn finish(&mut self) {
        self.error_rate = self.errors as f64 / self.calls.max(1) as f64;
        self.durations.sort_unstable();
        self.p50_ms = percentile(&self.durations, 50);
        self.p99_ms = percentile(&self.durations, 99);
    }
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

pub(crate) fn run(usage: &Usage) -> anyhow::Result<()> {
    let path = match &usage.audit {
        Some(path) => path.clone(),
        None => audit_path(usage.config.as_deref())?,
    };
    let since = match &usage.since {
        Some(since) => since_ms(since, now_ms())?,
        None => 0,
    };
    let files = log_files(&path);
    if files.is_empty() {
        bail!(
            "no audit log at {}: is [audit] on for this gateway? (--audit FILE names another)",
            path.display()
        );
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut total = Row {
        key: "total".into(),
        ..Row::default()
    };
    let mut skipped = 0u64;
    let mut progress = Progress::new(&files);
    for file in &files {
        let reader = std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?,
        );
        for line in reader.split(b'\n') {
            let line = line.with_context(|| format!("reading {}", file.display()))?;
            progress.advance(line.len() as u64 + 1);
            let Ok(record) = serde_json::from_slice::<Record>(&line) else {
                skipped += u64::from(!line.is_empty());
                continue;
            };
            if record.time_ms < since {
                continue;
            }
            let key = key(usage.by, &record);
            rows.entry(key.clone())
                .or_insert_with(|| Row {
                    key,
                    ..Row::default()
                })
                .add(&record);
            total.add(&record);
        }
    }
    progress.done();
    if skipped > 0 {
        eprintln!("gtl: {skipped} lines of the audit log are not records; skipped");
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    for row in &mut rows {
        row.finish();
    }
    total.finish();
    if usage.by != By::Day {
        // The biggest spenders first, then the busiest, then by name (the
        // rows come sorted by key and the sort is stable).
        rows.sort_by(|a, b| {
            b.cost_usd
                .total_cmp(&a.cost_usd)
                .then(b.calls.cmp(&a.calls))
        });
    }
    let mut out = std::io::stdout().lock();
    match usage.format {
        Format::Table => write_table(&mut out, usage.by, &rows, &total)?,
        Format::Csv => write_csv(&mut out, usage.by, &rows)?,
        Format::Json => {
            let report = serde_json::json!({"by": by_name(usage.by), "rows": rows, "total": total});
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

fn key(by: By, record: &Record) -> String {
    match by {
        By::Subject => record.subject.clone(),
        By::Provider => record.provider.clone(),
        By::Model => format!("{}/{}", record.provider, record.model),
        By::Route if record.requested.is_empty() => format!("{}/{}", record.provider, record.model),
        By::Route => record.requested.clone(),
        By::Api => record.route.clone(),
        By::Transport => record.transport.clone(),
        By::Day => civil_date(record.time_ms / 1000 / 86_400),
    }
}

fn by_name(by: By) -> &'static str {
    match by {
        By::Subject => "subject",
        By::Provider => "provider",
        By::Model => "model",
        By::Route => "route",
        By::Api => "api",
        By::Transport => "transport",
        By::Day => "day",
    }
}

const COLUMNS: [&str; 8] = [
    "calls",
    "errors",
    "error %",
    "tokens in",
    "tokens out",
    "cost USD",
    "p50 ms",
    "p99 ms",
];

fn cells(row: &Row) -> [String; 9] {
    [
        row.key.clone(),
        row.calls.to_string(),
        row.errors.to_string(),
        format!("{:.1}", row.error_rate * 100.0),
        row.tokens_in.to_string(),
        row.tokens_out.to_string(),
        format!("{:.4}", row.cost_usd),
        row.p50_ms.to_string(),
        row.p99_ms.to_string(),
    ]
}

fn write_table(
    out: &mut impl std::io::Write,
    by: By,
    rows: &[Row],
    total: &Row,
) -> std::io::Result<()> {
    let mut header = vec![by_name(by).to_owned()];
    header.extend(COLUMNS.iter().map(|c| (*c).to_owned()));
    let lines: Vec<Vec<String>> = std::iter::once(header)
        .chain(
            rows.iter()
                .chain(std::iter::once(total))
                .map(|r| cells(r).to_vec()),
        )
        .collect();
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in &lines {
        let mut text = format!("{:<width$}", line[0], width = widths[0]);
        for (cell, width) in line.iter().zip(&widths).skip(1) {
            text.push_str(&format!("  {cell:>width$}"));
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}

fn write_csv(out: &mut impl std::io::Write, by: By, rows: &[Row]) -> std::io::Result<()> {
    writeln!(
        out,
        "{},calls,errors,error_rate,tokens_in,tokens_out,cost_usd,p50_ms,p99_ms",
        by_name(by)
    )?;
    for row in rows {
        writeln!(
            out,
            "{},{},{},{:.4},{},{},{:.6},{},{}",
            csv_field(&row.key),
            row.calls,
            row.errors,
            row.error_rate,
            row.tokens_in,
            row.tokens_out,
            row.cost_usd,
            row.p50_ms,
            row.p99_ms
        )?;
    }
    Ok(())
}

/// RFC 4180 quoting, when needed.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// The audit log the gateway configured in `config` (or by default) writes.
fn audit_path(config: Option<&Path>) -> anyhow::Result<PathBuf> {
    let config = match config {
        Some(path) => gtl_server::Config::from_file(path)?,
        None => gtl_server::Config::default(),
    };
    if config.audit.stdout {
        bail!(
            "this gateway writes its audit records to stdout: pass the file they go to with --audit"
        );
    }
    Ok(config
        .audit
        .path
        .clone()
        .unwrap_or_else(|| config.data_dir.join("audit.log")))
}

/// `path` and its rotated files that exist, oldest first.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    if path.exists() {
        files.push(path.to_owned());
    }
    files
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The start of `--since`, in Unix milliseconds.
fn since_ms(since: &str, now_ms: u64) -> anyhow::Result<u64> {
    let unit_ms = |unit: char| match unit {
        'm' => Some(60_000),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        'w' => Some(7 * 86_400_000),
        _ => None,
    };
    if let Some(unit) = since.chars().last().and_then(unit_ms)
        && let Ok(n) = since[..since.len() - 1].parse::<u64>()
    {
        return Ok(now_ms.saturating_sub(n.saturating_mul(unit)));
    }
    if let Some(days) = days_from_date(since) {
        return Ok(days * 86_400_000);
    }
    bail!("--since {since}: give a span (30m, 24h, 7d, 2w) or a date (2026-12-01)")
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
fn days_from_date(date: &str) -> Option<u64> {
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// `YYYY-MM-DD` of a day number since 1970-01-01.
fn civil_date(days: u64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A progress line on a terminal while a large log is read.
struct Progress {
    total: u64,
    read: u64,
    shown: u64,
    on: bool,
}

impl Progress {
    /// Logs under this size are read too fast to need one.
    const WORTH_IT: u64 = 32 << 20;

    fn new(files: &[PathBuf]) -> Self {
        let total = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        Self {
            total,
            read: 0,
            shown: 0,
            on: total >= Self::WORTH_IT && std::io::stderr().is_terminal(),
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.read += bytes;
        if self.on && self.read - self.shown >= Self::WORTH_IT / 4 {
            self.shown = self.read;
            eprint!(
                "\rgtl: reading the audit log: {} of {} MiB",
                self.read >> 20,
                self.total >> 20
            );
        }
    }

    fn done(&self) {
        if self.on && self.shown > 0 {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_spans_count_back_from_now() {
        assert_eq!(days_from_date("1970-01-01"), Some(0));
        assert_eq!(days_from_date("2026-12-03"), Some(20_790));
        assert_eq!(civil_date(20_790), "2026-12-03");
        assert_eq!(
            civil_date(days_from_date("2024-02-29").unwrap()),
            "2024-02-29"
        );
        assert_eq!(since_ms("7d", 10 * 86_400_000).unwrap(), 3 * 86_400_000);
        assert_eq!(since_ms("30m", 3_600_000).unwrap(), 1_800_000);
        assert_eq!(since_ms("2026-12-03", 0).unwrap(), 20_790 * 86_400_000);
        assert!(since_ms("yesterday", 0).is_err());
        assert!(since_ms("2026-13-01", 0).is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), 50);
        assert_eq!(percentile(&values, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("sub:alice"), "sub:alice");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
