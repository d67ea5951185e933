//! `cargo xtask chaos [gtl-chaos options]`: the chaos harness at full size
//! (10,000 swaps while replicas are killed), its figure written to
//! docs/reliability.md.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::bench::{cargo, target_dir};

const BEGIN: &str = "<!-- chaos: begin -->";
const END: &str = "<!-- chaos: end -->";

pub(crate) fn run(root: &Path, options: &[String]) -> Result<()> {
    let target = target_dir(root);
    eprintln!("xtask: building the gateway and the chaos harness (release)");
    cargo(
        root,
        &["build", "--release", "-p", "gtl-server", "-p", "gtl-chaos"],
    )?;
    let output = Command::new(target.join("release/gtl-chaos"))
        .arg(target.join("release/gtl-server"))
        .args(options)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running gtl-chaos")?;
    let report = String::from_utf8(output.stdout)?;
    print!("{report}");
    if !output.status.success() {
        bail!("the chaos run lost, doubled or changed events (report above)");
    }
    if !options.is_empty() {
        // Only the full default run is the recorded figure.
        return Ok(());
    }
    let path = root.join("docs/reliability.md");
    let doc = fs::read_to_string(&path).unwrap_or_default();
    let block = format!(
        "{BEGIN}\n```text\n$ cargo xtask chaos\n{}\n```\n{END}",
        report.trim_end()
    );
    let doc = match (doc.find(BEGIN), doc.find(END)) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{block}{}", &doc[..start], &doc[end + END.len()..])
        }
        _ => format!("{doc}\n{block}\n"),
    };
    fs::write(&path, doc)?;
    println!("wrote {}", path.display());
    Ok(())
}
