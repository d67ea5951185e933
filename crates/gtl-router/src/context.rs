//! What the router knows about the call it routes.

use tokio::time::Instant;

/// The call a request belongs to: who makes it, by when it must end, and
/// how it is named in logs. Limits, budgets and metrics key on it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallContext {
    /// The caller (a token's subject, or a local user).
    pub subject: String,
    /// The caller's tenant, where the deployment has tenants.
    pub tenant: Option<String>,
    /// The request's id, for logs.
    pub request_id: String,
    /// When the whole call must be over (the route's total timeout applies
    /// when this is later or unset).
    pub deadline: Option<Instant>,
    /// The client's attempt number for this request (1 for the first).
    pub attempt: u32,
}

impl CallContext {
    /// A context for `subject`'s call, attempt 1, no deadline.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            attempt: 1,
            ..Self::default()
        }
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = id.into();
        self
    }

    /// Sets the deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the tenant.
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
}
