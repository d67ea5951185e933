//! Where test data lives.

use std::path::{Path, PathBuf};

/// The shared directory beside the workspace (`<workspace>/../shared`), or
/// `$GTL_SHARED_DIR` when set.
///
/// It holds `providers/specs/` (the providers' API definitions) and
/// `providers/fixtures/` (recorded streams). CI checks the workspace out with
/// `shared/` beside it.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GTL_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    // crates/gtl-test → the workspace root → its parent.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// A recorded provider stream: `shared/providers/fixtures/<relative>`, e.g.
/// `provider_fixture("openai/chat_text.sse")`.
pub fn provider_fixture(relative: &str) -> PathBuf {
    shared_dir().join("providers/fixtures").join(relative)
}

/// A provider API definition: `shared/providers/specs/<relative>`, e.g.
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
            "cannot read test data {} ({error}); is shared/ beside the workspace, or GTL_SHARED_DIR set?",
            path.display()
        )
    })
}
