//! `gtl-chaos SERVER_BIN [--small] [--swaps N] [--streams N] [--replicas N]
//! [--seed N] [--no-kills] [--json]`: runs the chaos harness against the
//! `gtl-server` binary `SERVER_BIN` and prints its report. Exit status 1 when
//! an event was lost, doubled or changed.
//!
//! `gtl-chaos SERVER_BIN --soak [--minutes N]`: steady streams with
//! periodic resumes and no kills; the replicas' memory and its trend.
//!
//! `gtl-chaos SERVER_BIN --figures`: the Redis backend's figures against
//! redb instead, as a Markdown table.

use anyhow::{Context as _, Result, bail};
use gtl_chaos::{ChaosConfig, run};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .context("usage: gtl-chaos SERVER_BIN [options]")?;
    let rest: Vec<String> = args.collect();
    if rest.iter().any(|a| a == "--figures") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        print!(
            "{}",
            runtime.block_on(gtl_chaos::figures::run(server.as_ref()))?
        );
        return Ok(());
    }
    let minutes = rest
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| rest.get(i + 1))
        .map(|m| m.parse::<u64>().context("--minutes needs a number"))
        .transpose()?;
    let mut config = if rest.iter().any(|a| a == "--soak") {
        ChaosConfig::soak(server.into(), minutes.unwrap_or(10))
    } else if rest.iter().any(|a| a == "--small") {
        ChaosConfig::small(server.into())
    } else {
        ChaosConfig::new(server.into())
    };
    let mut json = false;
    let mut i = 0;
    while i < rest.len() {
        let value = |i: usize| -> Result<u64> {
            rest.get(i + 1)
                .with_context(|| format!("{} needs a number", rest[i]))?
                .parse()
                .with_context(|| format!("{} needs a number", rest[i]))
        };
        match rest[i].as_str() {
            "--small" | "--soak" => {}
            "--json" => json = true,
            "--no-kills" => config.kill_every = None,
            "--swaps" => (config.swaps, i) = (value(i)?, i + 1),
            "--streams" => (config.streams, i) = (value(i)? as usize, i + 1),
            "--replicas" => (config.replicas, i) = (value(i)?.max(1) as usize, i + 1),
            "--seed" => (config.seed, i) = (value(i)? | 1, i + 1),
            "--minutes" => i += 1,
            other => bail!("unknown option {other}"),
        }
        i += 1;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(config))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "seed": report.seed,
                "swaps": report.swaps,
                "kills": report.kills,
                "generations": report.generations,
                "completed": report.completed,
                "cut_by_crash": report.cut_by_crash,
                "lost": report.lost,
                "doubled": report.doubled,
                "changed": report.changed,
                "taken_over": report.taken_over,
                "failures": report.failures,
                "elapsed_secs": report.elapsed.as_secs_f64(),
                "rss": report.rss,
                "rss_trend_mib_per_minute": report.rss_trend(),
            })
        );
    } else {
        println!("{report}");
    }
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
