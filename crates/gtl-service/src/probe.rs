//! Whether the gateway can serve: what `/readyz` and the gRPC health
//! service answer, decided once here for every probe.

/// The gateway's readiness, part by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// The session store takes writes (with persistence off, always).
    pub store: bool,
    /// The server's listeners are bound and accepting.
    pub listening: bool,
    /// Some provider can take a call: one no circuit breaker has shut out.
    pub providers: bool,
}

impl Readiness {
    /// Whether every part is ready.
    pub fn is_ready(&self) -> bool {
        self.store && self.listening && self.providers
    }

    /// What is not ready, for a person (empty when ready).
    pub fn problems(&self) -> Vec<&'static str> {
        let mut problems = Vec::new();
        if !self.store {
            problems.push("the session store is failing writes");
        }
        if !self.listening {
            problems.push("the listeners are not accepting");
        }
        if !self.providers {
            problems.push("no provider is usable (every circuit breaker is open)");
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_part_is() {
        let ready = Readiness {
            store: true,
            listening: true,
            providers: true,
        };
        assert!(ready.is_ready());
        assert!(ready.problems().is_empty());
        let no_providers = Readiness {
            providers: false,
            ..ready
        };
        assert!(!no_providers.is_ready());
        assert_eq!(no_providers.problems().len(), 1);
    }
}
