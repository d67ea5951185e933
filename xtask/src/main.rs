//! Project automation: `cargo xtask <task>`.
//!
//! - `codegen`: regenerate the checked-in prost messages, tonic service code and
//!   descriptor set from `proto/` (no `protoc` needed).
//! - `codegen --check`: fail when any of them is stale.
//! - `bench`: run the criterion benches and the load harness; write
//!   `docs/benchmarks.md`.
//! - `bench e2e`: the direct-versus-gateway benchmark against a mock
//!   upstream; writes its section of `docs/benchmarks.md` and
//!   `docs/benchmarks-e2e.json`.
//! - `bench e2e --quick`: a short run of the same, checked against
//!   `docs/benchmarks-e2e.json` for gross regressions (what CI runs).
//! - `chaos [options]`: streams over two replicas sharing Redis while
//!   connections are cut and replicas killed (10,000 swaps); the figure goes
//!   to `docs/reliability.md`. Options go to `gtl-chaos`.
//! - `soak --minutes N`: steady load with periodic resumes; the replicas'
//!   memory trend, to `docs/reliability.md`.
//! - `bench replicas`: resume, `chat.complete` and streaming with the Redis
//!   backend against redb, to `docs/benchmarks.md`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

mod bench;
mod chaos;
mod codegen;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("codegen") => {
            let check = args.iter().any(|a| a == "--check");
            codegen::run(&root, check)
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("e2e") => {
            bench::e2e(&root, args.iter().any(|a| a == "--quick"))
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("replicas") => {
            chaos::figures(&root)
        }
        Some("bench") => bench::run(&root),
        Some("chaos") => chaos::chaos(&root, &args[1..]),
        Some("soak") => chaos::soak(&root, &args[1..]),
        Some(other) => {
            bail!(
                "unknown task `{other}`; tasks: codegen [--check], bench [e2e [--quick] | replicas], \
                 chaos, soak [--minutes N]"
            )
        }
        None => bail!(
            "usage: cargo xtask <codegen [--check] | bench [e2e [--quick] | replicas] | chaos | soak>"
        ),
    }
}

fn workspace_root() -> PathBuf {
    // `cargo xtask` (cargo run) sets it at run time; the compile-time value
    // can name another checkout when build caches are shared between them.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .context("xtask lives inside the workspace")
        .expect("workspace root")
        .to_path_buf()
}
