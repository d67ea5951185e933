//! Where each call's audit record goes: the audit log, whose writer takes
//! records through a bounded queue on a thread of its own, one JSON line
//! each, so a slow or full disk never slows a call down or fails it (when
//! the queue is full a record is dropped and counted in the log); and the
//! server's log, one info line per call.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use gtl_service::{AuditRecord, AuditSink};

use crate::config::Config;

/// Records waiting for the writer.
const QUEUE: usize = 4096;

/// The audit sink `config` describes, if calls are recorded anywhere.
pub(crate) fn sink(config: &Config) -> Option<std::sync::Arc<dyn AuditSink>> {
    let file = file_sink(config);
    if file.is_none() && !config.log.calls {
        return None;
    }
    Some(std::sync::Arc::new(CallRecords {
        file,
        log: config.log.calls,
    }))
}

/// The audit log and the call log lines.
#[derive(Debug)]
struct CallRecords {
    file: Option<FileSink>,
    log: bool,
}

impl AuditSink for CallRecords {
    fn record(&self, record: AuditRecord) {
        if self.log {
            log_call(&record);
        }
        if let Some(file) = &self.file {
            file.record(record);
        }
    }

    fn flush(&self) {
        if let Some(file) = &self.file {
            file.flush();
        }
    }
}

/// The call's line in the server's log: the record's fields.
fn log_call(record: &AuditRecord) {
    tracing::info!(
        target: "gtl::call",
        subject = %record.subject,
        api = record.route,
        transport = %record.transport,
        requested = %record.requested,
        provider = %record.provider,
        model = %record.model,
        tokens_in = record.tokens_in,
        tokens_out = record.tokens_out,
        cost = record.cost,
        duration_ms = record.duration_ms,
        outcome = record.outcome,
        error_code = record.error_code.as_deref().unwrap_or(""),
        session = %record.session_id,
        "call finished"
    );
}

fn file_sink(config: &Config) -> Option<FileSink> {
    let audit = &config.audit;
    if !audit.enabled {
        return None;
    }
    let target = if audit.stdout {
        Target::Stdout
    } else {
        Target::File {
            path: audit
                .path
                .clone()
                .unwrap_or_else(|| config.data_dir.join("audit.log")),
            max_bytes: audit.max_bytes.max(1),
            keep: audit.keep,
        }
    };
    let (queue, records) = std::sync::mpsc::sync_channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("gtl-audit".into())
        .spawn(move || write_all(&records, &target));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the audit log is off: its writer could not start");
        return None;
    }
    Some(FileSink {
        queue,
        dropped: AtomicU64::new(0),
    })
}

/// What the writer thread is sent.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every message is a record; boxing would allocate per call"
)]
enum Message {
    Record(AuditRecord),
    /// Answer once everything before is written.
    Flush(SyncSender<()>),
}

/// How long a flush waits for the writer (a full disk may never let it).
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug)]
struct FileSink {
    queue: SyncSender<Message>,
    dropped: AtomicU64,
}

impl FileSink {
    fn flush(&self) {
        let (written, wait) = std::sync::mpsc::sync_channel(1);
        if self.queue.send(Message::Flush(written)).is_ok()
            && wait.recv_timeout(FLUSH_WAIT).is_err()
        {
            tracing::warn!("audit records may be missing: the writer did not catch up in time");
        }
    }

    fn record(&self, record: AuditRecord) {
        match self.queue.try_send(Message::Record(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "audit records dropped: the writer is behind");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

#[derive(Debug)]
enum Target {
    Stdout,
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: u32,
    },
}

/// How long the writer lets records gather after writing a batch: one
/// wake-up and one write for many calls, not a thread switch and a file
/// open per call. A flush still waits for everything before it.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// Writes records until every sender is gone: whatever has queued, as one
/// batch.
fn write_all(messages: &Receiver<Message>, target: &Target) {
    let mut failing = false;
    let mut batch = Vec::new();
    let mut ends = Vec::new();
    let mut flushed = Vec::new();
    while let Ok(first) = messages.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Record(record) => {
                    if serde_json::to_writer(&mut batch, &record).is_ok() {
                        batch.push(b'\n');
                        ends.push(batch.len());
                    }
                }
                Message::Flush(written) => flushed.push(written),
            }
            next = messages.try_recv().ok();
        }
        let written = match target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&batch).and_then(|()| out.flush())
            }
            Target::File {
                path,
                max_bytes,
                keep,
            } => append(path, &batch, &ends, *max_bytes, *keep),
        };
        batch.clear();
        ends.clear();
        // One warning per failing stretch, not one per call.
        match written {
            Err(e) if !failing => {
                tracing::warn!(error = %e, "audit records are not being written");
                failing = true;
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
        let waiting = !flushed.is_empty();
        for written in flushed.drain(..) {
            let _ = written.send(());
        }
        if !waiting {
            std::thread::sleep(GATHER);
        }
    }
}

/// Appends `lines` (each ending at one of `ends`), rotating the file
/// whenever the next line would grow it past `max_bytes`:
/// `audit.log` → `audit.log.1` → … → `audit.log.<keep>`.
fn append(
    path: &Path,
    lines: &[u8],
    ends: &[usize],
    max_bytes: u64,
    keep: u32,
) -> std::io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    let mut size = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut file = open()?;
    let (mut start, mut unwritten) = (0, 0);
    for &end in ends {
        let len = (end - start) as u64;
        if size > 0 && size + len > max_bytes {
            file.write_all(&lines[unwritten..start])?;
            rotate(path, keep)?;
            file = open()?;
            (size, unwritten) = (0, start);
        }
        size += len;
        start = end;
    }
    file.write_all(&lines[unwritten..])
}

fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_is_rotated_and_old_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        // One line at a time, then the same rotation within one batch.
        for i in 0..4 {
            append(&path, format!("{i:09}\n").as_bytes(), &[10], 25, 2).unwrap();
        }
        let batch: String = (4..10).map(|i| format!("{i:09}\n")).collect();
        let ends: Vec<usize> = (1..=6).map(|n| n * 10).collect();
        append(&path, batch.as_bytes(), &ends, 25, 2).unwrap();
        // Two 10-byte lines fit in 25 bytes; ten lines make five files, of
        // which the newest three are kept.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "000000008\n000000009\n"
        );
        let first = std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap();
        assert_eq!(first, "000000006\n000000007\n");
        assert!(dir.path().join("audit.log.2").exists());
        assert!(!dir.path().join("audit.log.3").exists());
    }
}
