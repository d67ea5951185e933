//! The lifecycle of a session's generation and its allowed transitions.
//!
//! Transitions are declared once in `transitions!`; the macro writes one
//! method per event and, for tests, a Graphviz rendering of the whole graph
//! that is checked against `state.dot` beside this file.

/// Where a session's generation is in its life.
///
/// Whether a client is attached is separate: see
/// [`Session::attached`](super::Session::attached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// The provider is still producing events.
    Streaming,
    /// The generation ended with a terminal event (`done` or `error`); the
    /// log is kept for replay until the resume window passes.
    Finished,
    /// The session was cancelled explicitly; its last event is a `CANCELLED`
    /// error.
    Cancelled,
    /// The resume window passed: the events are gone and the session can be
    /// dropped.
    Expired,
}

impl State {
    /// The state's lowercase name, e.g. `"streaming"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Streaming => "streaming",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares the state events: each becomes a method that moves the state
/// along one of its listed edges, or returns `Err(current)` and leaves the
/// state alone when no edge starts at the current state.
macro_rules! transitions {
    ($(
        $(#[doc = $doc:literal])*
        $event:ident($($($from:ident)|+ => $to:ident),+ $(,)?);
    )*) => {
        impl State {
            $(
                $(#[doc = $doc])*
                pub(super) fn $event(&mut self) -> Result<(), Self> {
                    match *self {
                        $($(Self::$from)|+ => {
                            *self = Self::$to;
                            Ok(())
                        })+
                        #[allow(
                            unreachable_patterns,
                            reason = "an event may be allowed from every state"
                        )]
                        current => Err(current),
                    }
                }
            )*

            /// Renders every transition as a Graphviz digraph.
            #[cfg(test)]
            pub(super) fn dot() -> String {
                use std::fmt::Write as _;
                let mut states = vec![$($($(stringify!($from),)+ stringify!($to),)+)*];
                states.sort_unstable();
                states.dedup();
                let mut out = String::from("digraph {\n");
                for state in states {
                    let _ = writeln!(out, "  {state};");
                }
                $($($(
                    let _ = writeln!(
                        out,
                        "  {} -> {} [label = {:?}];",
                        stringify!($from),
                        stringify!($to),
                        stringify!($event),
                    );
                )+)+)*
                out.push_str("}\n");
                out
            }
        }
    };
}

transitions! {
    /// The provider sent a terminal event.
    finish(Streaming => Finished);
    /// The session was cancelled explicitly.
    cancel(Streaming => Cancelled);
    /// The resume window passed.
    expire(Streaming | Finished | Cancelled => Expired);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transition graph, snapshot-tested: set `GTL_UPDATE_SNAPSHOTS=1`
    /// to rewrite `state.dot` after changing `transitions!`.
    #[test]
    fn transition_graph_snapshot() {
        let dot = State::dot();
        if std::env::var_os("GTL_UPDATE_SNAPSHOTS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/session/state.dot");
            std::fs::write(path, &dot).expect("write the snapshot");
        } else {
            assert_eq!(
                dot,
                include_str!("state.dot"),
                "run with GTL_UPDATE_SNAPSHOTS=1"
            );
        }
    }

    #[test]
    fn invalid_transitions_leave_the_state_alone() {
        let mut state = State::Streaming;
        assert_eq!(state.finish(), Ok(()));
        assert_eq!(state.cancel(), Err(State::Finished));
        assert_eq!(state.finish(), Err(State::Finished));
        assert_eq!(state.expire(), Ok(()));
        assert_eq!(state.expire(), Err(State::Expired));
        assert_eq!(state, State::Expired);
    }
}
