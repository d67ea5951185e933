//! Scopes: what a token allows, and what each operation needs.

use std::fmt;

/// An operation a caller asks for, by the scope it needs.
///
/// | operation | scope |
/// |---|---|
/// | `chat.complete`, `chat.stream`, `session.pipe`, the compatible chat APIs | `chat:write` |
/// | a request that declares tools, and `input` carrying tool results | `tools:call` |
/// | `models.list`, `GET /v1/models`, `count_tokens` | `chat:read` |
/// | resume, SSE session events | `session:read` |
/// | cancel or input by session id (a detached session) | `session:admin` |
///
/// `chat:*`, `session:*` and `tools:*` grant every scope of their group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Start a call (any kind).
    Chat,
    /// Use tools: declare them, or send their results.
    Tools,
    /// List models or count tokens.
    Models,
    /// Resume a session or read its events.
    ReadSession,
    /// Control a session the caller is not attached to (cancel, input).
    ControlSession,
}

impl Operation {
    /// The scope the operation needs.
    pub fn scope(self) -> &'static str {
        match self {
            Self::Chat => "chat:write",
            Self::Tools => "tools:call",
            Self::Models => "chat:read",
            Self::ReadSession => "session:read",
            Self::ControlSession => "session:admin",
        }
    }
}

/// The scopes a token grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Scopes from their names.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(names.into_iter().map(Into::into).collect())
    }

    /// Scopes from OAuth's space-separated `scope` string.
    pub fn parse(spaced: &str) -> Self {
        Self::new(spaced.split_whitespace())
    }

    /// Whether these scopes allow `operation`: its scope itself, or its
    /// group's wildcard (`chat:*` for `chat:write`).
    pub fn allows(&self, operation: Operation) -> bool {
        let needed = operation.scope();
        let group = needed.split_once(':').map_or(needed, |(group, _)| group);
        self.0.iter().any(|granted| {
            granted == needed
                || granted
                    .strip_suffix(":*")
                    .is_some_and(|wildcard| wildcard == group)
        })
    }

    /// The scope names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_grant_their_group_only() {
        let scopes = Scopes::parse("chat:* session:read");
        assert!(scopes.allows(Operation::Chat));
        assert!(scopes.allows(Operation::Models));
        assert!(scopes.allows(Operation::ReadSession));
        assert!(!scopes.allows(Operation::ControlSession));
        assert!(!scopes.allows(Operation::Tools));
        assert!(Scopes::parse("tools:*").allows(Operation::Tools));
        // Neither a bare `*` nor a prefix of a group is a wildcard.
        assert!(!Scopes::parse("* chat").allows(Operation::Chat));
        assert!(!Scopes::parse("cha:*").allows(Operation::Chat));
        assert!(!Scopes::default().allows(Operation::Models));
    }
}
