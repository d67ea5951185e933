//! Shared test fixtures: the event sequences, the golden files and the
//! encoders run over whole sequences.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use gtl_compat::{ErrorReply, Flow, anthropic, openai};
use gtl_proto::{Body, Frame};

/// The session id, creation time and model every golden answer uses.
pub(crate) const SESSION: &str = "s_golden";
pub(crate) const CREATED: u64 = 1_727_346_178;
pub(crate) const MODEL: &str = "openai/gpt-4o";

pub(crate) fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every event sequence: `(name, events)`, sorted by name.
pub(crate) fn cases() -> Vec<(String, Vec<Body>)> {
    let dir = golden_dir().join("events");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, events(&path))
        })
        .collect()
}

/// One sequence by name.
pub(crate) fn case(name: &str) -> Vec<Body> {
    events(&golden_dir().join("events").join(format!("{name}.ndjson")))
}

fn events(path: &Path) -> Vec<Body> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            Frame::from_json(line)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .body
                .expect("an event")
        })
        .collect()
}

/// What an encoder made of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// The stream's bytes; `true` when the encoder said it ended.
    Stream(Vec<u8>, bool),
    /// The call failed before any byte: the HTTP error answer.
    Rejected(ErrorReply),
}

/// Runs OpenAI's encoder over `events`, into a `BytesMut`.
pub(crate) fn openai_stream(events: &[Body], include_usage: bool) -> Output {
    let mut encoder = openai::StreamEncoder::new(SESSION, MODEL, CREATED, include_usage);
    let mut out = BytesMut::new();
    run(events, &mut out, |body, out| encoder.push(body, out))
}

/// Runs Anthropic's encoder over `events`, into a `Vec`.
pub(crate) fn anthropic_stream(events: &[Body]) -> Output {
    let mut encoder = anthropic::StreamEncoder::new(SESSION, MODEL);
    let mut out = Vec::new();
    run(events, &mut out, |body, out| encoder.push(body, out))
}

fn run<B: AsRef<[u8]>>(
    events: &[Body],
    out: &mut B,
    mut push: impl FnMut(&Body, &mut B) -> Flow,
) -> Output {
    let mut ended = false;
    for body in events {
        assert!(!ended, "an event after the end: {body:?}");
        match push(body, out) {
            Flow::Continue => {}
            Flow::End => ended = true,
            Flow::Reject(reply) => {
                assert!(out.as_ref().is_empty(), "rejected after writing");
                return Output::Rejected(reply);
            }
            other => panic!("unexpected flow {other:?}"),
        }
    }
    Output::Stream(out.as_ref().to_vec(), ended)
}

/// An error answer as one text: the status line, headers, a blank line
/// and the body.
pub(crate) fn render_reply(reply: &ErrorReply) -> Vec<u8> {
    let mut out = format!("HTTP {}\n", reply.status).into_bytes();
    for (name, value) in &reply.headers {
        out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(&reply.body);
    out.push(b'\n');
    out
}

/// Compares outputs with the golden files, or rewrites them under
/// `GTL_BLESS=1`; collects every mismatch so one run shows them all.
#[derive(Debug, Default)]
pub(crate) struct Golden {
    mismatches: Vec<String>,
    checked: Vec<PathBuf>,
}

impl Golden {
    pub(crate) fn check(&mut self, relative: &str, actual: &[u8]) {
        let path = golden_dir().join(relative);
        self.checked.push(path.clone());
        if std::env::var_os("GTL_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            return;
        }
        match std::fs::read(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => self.mismatches.push(format!(
                "{relative} differs:\n--- expected\n{}\n--- actual\n{}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(actual)
            )),
            Err(_) => self
                .mismatches
                .push(format!("{relative} is missing (run with GTL_BLESS=1)")),
        }
    }

    /// Fails on mismatches, and on golden files no case wrote (stale).
    pub(crate) fn finish(self, dirs: &[&str]) {
        let mut problems = self.mismatches;
        for dir in dirs {
            for entry in std::fs::read_dir(golden_dir().join(dir)).expect("golden dir") {
                let path = entry.expect("entry").path();
                if !self.checked.contains(&path) {
                    problems.push(format!("{} is stale: no case writes it", path.display()));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    }
}
