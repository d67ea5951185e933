//! The multi-replica tasks, all run by the release `gtl-chaos` harness:
//!
//! - `cargo xtask chaos [options]`: 10,000 swaps while replicas are killed;
//!   the figure goes to docs/reliability.md (only the default run);
//! - `cargo xtask soak --minutes N`: steady load with periodic resumes, the
//!   replicas' memory trend, to docs/reliability.md;
//! - `cargo xtask bench replicas`: resume, `chat.complete` and streaming
//!   with the Redis backend against redb, to docs/benchmarks.md.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::bench::{cargo, target_dir};

/// Where a task's output goes: a file and the marker name of its block.
struct Block {
    file: &'static str,
    name: &'static str,
    /// Fenced as text (a report), or pasted as Markdown (a table).
    text: bool,
}

pub(crate) fn chaos(root: &Path, options: &[String]) -> Result<()> {
    let block = options.is_empty().then_some(Block {
        file: "docs/reliability.md",
        name: "chaos",
        text: true,
    });
    harness(root, options, "cargo xtask chaos", block)
}

pub(crate) fn soak(root: &Path, options: &[String]) -> Result<()> {
    let mut args = vec!["--soak".to_owned()];
    args.extend(options.iter().cloned());
    let command = format!("cargo xtask soak {}", options.join(" "));
    let block = Block {
        file: "docs/reliability.md",
        name: "soak",
        text: true,
    };
    harness(root, &args, command.trim_end(), Some(block))
}

pub(crate) fn figures(root: &Path) -> Result<()> {
    let block = Block {
        file: "docs/benchmarks.md",
        name: "bench replicas",
        text: false,
    };
    harness(
        root,
        &["--figures".to_owned()],
        "cargo xtask bench replicas",
        Some(block),
    )
}

fn harness(root: &Path, args: &[String], command: &str, block: Option<Block>) -> Result<()> {
    let target = target_dir(root);
    eprintln!("xtask: building the gateway and the chaos harness (release)");
    cargo(
        root,
        &["build", "--release", "-p", "gtl-server", "-p", "gtl-chaos"],
    )?;
    let output = Command::new(target.join("release/gtl-chaos"))
        .arg(target.join("release/gtl-server"))
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running gtl-chaos")?;
    let report = String::from_utf8(output.stdout)?;
    print!("{report}");
    if !output.status.success() {
        bail!("gtl-chaos failed (report above)");
    }
    let Some(block) = block else {
        return Ok(());
    };
    let (begin, end) = (
        format!("<!-- {}: begin -->", block.name),
        format!("<!-- {}: end -->", block.name),
    );
    let body = if block.text {
        format!("```text\n$ {command}\n{}\n```", report.trim_end())
    } else {
        format!("`{command}`:\n\n{}", report.trim_end())
    };
    let path = root.join(block.file);
    let doc = fs::read_to_string(&path).unwrap_or_default();
    let section = format!("{begin}\n{body}\n{end}");
    let doc = match (doc.find(&begin), doc.find(&end)) {
        (Some(start), Some(stop)) if stop > start => {
            format!("{}{section}{}", &doc[..start], &doc[stop + end.len()..])
        }
        _ => format!("{}\n{section}\n", doc.trim_end()),
    };
    fs::write(&path, doc)?;
    println!("wrote {}", path.display());
    Ok(())
}
