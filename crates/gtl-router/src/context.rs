//! What the router knows about the call it routes.

use std::sync::Arc;

use gtl_core::{Provider, ProviderError};
use tokio::time::Instant;

use crate::CallTiming;

/// A caller's own provider keys, applied to each target a routed call
/// tries. The keys stay inside: implementations keep them out of `Debug`.
pub trait CallerKeys: std::fmt::Debug + Send + Sync {
    /// `provider` calling with the caller's key for it, when the caller
    /// has one; `None` to call with the provider's own credential.
    fn apply(
        &self,
        provider: &Arc<dyn Provider>,
    ) -> Result<Option<Arc<dyn Provider>>, ProviderError>;
}

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
    /// The caller's own provider keys, if it brought any.
    pub keys: Option<Arc<dyn CallerKeys>>,
    /// Where the upstream attempts note when they sent and first answered.
    pub timing: Option<Arc<CallTiming>>,
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

    /// Calls each target with the caller's own key where `keys` has one.
    #[must_use]
    pub fn with_keys(mut self, keys: Arc<dyn CallerKeys>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Notes the upstream attempts' times in `timing`.
    #[must_use]
    pub fn with_timing(mut self, timing: Arc<CallTiming>) -> Self {
        self.timing = Some(timing);
        self
    }

    /// Sets the tenant.
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
}
