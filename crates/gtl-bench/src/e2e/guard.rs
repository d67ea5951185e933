//! The regression guard: a quick run against the figures recorded by the
//! last full run. It fails only on what noise cannot explain — a request,
//! stream or token lost, or throughput below a quarter of the recorded
//! figure on the same kind of machine.

use anyhow::{Result, bail};
use serde_json::Value;

/// A recorded figure divided by this is the floor.
const SLACK: f64 = 4.0;

/// Checks `quick` against `recorded`; prints what it compared.
pub(crate) fn check(quick: &Value, recorded: &Value) -> Result<()> {
    let mut failures = Vec::new();
    for section in ["unary", "max_throughput", "relay", "streaming"] {
        for row in quick[section].as_array().into_iter().flatten() {
            if row["errors"].as_u64().unwrap_or(0) > 0 {
                failures.push(format!(
                    "{section} `{}`: {} requests failed",
                    row["path"], row["errors"]
                ));
            }
        }
    }
    for row in quick["concurrency"].as_array().into_iter().flatten() {
        if row["dropped"] != 0 || row["failed_streams"] != 0 {
            failures.push(format!(
                "{} open streams: {} tokens dropped, {} streams failed",
                row["streams"], row["dropped"], row["failed_streams"]
            ));
        }
    }
    let same_kind = quick["machine"]["cpu"] == recorded["machine"]["cpu"]
        && quick["machine"]["cores"] == recorded["machine"]["cores"];
    if same_kind {
        let figures = [
            ("max_throughput", "GTL, sessions in memory", "per_s"),
            ("max_throughput", "GTL, durable sessions (default)", "per_s"),
            ("relay", "GTL, sessions in memory", "events_per_s"),
        ];
        for (section, path, key) in figures {
            let find = |v: &Value| {
                v[section]
                    .as_array()
                    .and_then(|rows| rows.iter().find(|r| r["path"] == path))
                    .and_then(|r| r[key].as_f64())
            };
            if let (Some(now), Some(then)) = (find(quick), find(recorded)) {
                let floor = then / SLACK;
                eprintln!(
                    "guard: {section} `{path}`: {now:.0} (recorded {then:.0}, floor {floor:.0})"
                );
                if now < floor {
                    failures.push(format!(
                        "{section} `{path}`: {now:.0}, below a quarter of the recorded {then:.0}"
                    ));
                }
            }
        }
    } else {
        eprintln!(
            "guard: recorded on {} × {}, running on {} × {}: throughput not compared",
            recorded["machine"]["cores"],
            recorded["machine"]["cpu"],
            quick["machine"]["cores"],
            quick["machine"]["cpu"]
        );
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("gross regression:\n  {}", failures.join("\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(per_s: f64, errors: u64) -> Value {
        json!({
            "machine": {"cpu": "x", "cores": 2},
            "max_throughput": [{"path": "GTL, sessions in memory", "per_s": per_s, "errors": errors}],
        })
    }

    #[test]
    fn noise_passes_and_a_collapse_fails() {
        assert!(check(&run(6_000.0, 0), &run(10_000.0, 0)).is_ok());
        assert!(check(&run(2_000.0, 0), &run(10_000.0, 0)).is_err());
        assert!(check(&run(10_000.0, 1), &run(10_000.0, 0)).is_err());
    }

    #[test]
    fn another_machine_is_not_compared() {
        let mut other = run(100.0, 0);
        other["machine"]["cpu"] = json!("y");
        assert!(check(&other, &run(10_000.0, 0)).is_ok());
    }
}
