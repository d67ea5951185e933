//! Where test data lives.

use std::path::{Path, PathBuf};

/// The test data directory (`crates/gtl-test/data`), or `$GTL_SHARED_DIR`
/// when set.
///
/// It holds `providers/specs/` (the providers' official API definitions)
/// and `providers/fixtures/` (streams recorded from their live APIs); see
/// `data/providers/README.md` and the `SOURCES.md` files for provenance.
/// They live in the repository so a fresh clone tests with nothing else.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GTL_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// A recorded provider stream: `data/providers/fixtures/<relative>`, e.g.
/// `provider_fixture("openai/chat_text.sse")`.
pub fn provider_fixture(relative: &str) -> PathBuf {
    shared_dir().join("providers/fixtures").join(relative)
}

/// A provider API definition: `data/providers/specs/<relative>`, e.g.
/// `provider_spec("openai/openapi.json")`.
pub fn provider_spec(relative: &str) -> PathBuf {
    shared_dir().join("providers/specs").join(relative)
}

/// Reads a file, panicking with its path when it cannot: a missing fixture
/// is a broken test setup, never a skipped test.
pub fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|error| {
        panic!(
            "cannot read test data {} ({error}); the data ships in crates/gtl-test/data",
            path.display()
        )
    })
}

/// A recorded SSE stream as a server sends it: some recordings were saved
/// without the blank line that ends their last event, which the live APIs
/// send (see the fixtures' `SOURCES.md`).
pub fn served_sse(recording: &[u8]) -> Vec<u8> {
    let mut body = recording.to_vec();
    let crlf = body.ends_with(b"\r\n");
    while !body.ends_with(b"\n\n") && !body.ends_with(b"\r\n\r\n") {
        body.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    body
}
