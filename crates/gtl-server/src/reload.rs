//! Applying a changed configuration to a running server (SIGHUP, or the
//! file changing): providers, aliases, routes and the router's settings,
//! `[auth]` keys, and the TLS certificate files take effect for new calls
//! and connections at once; running calls keep what they resolved. The
//! rest (listeners, data dir, limits, sessions, audit, log) is read at
//! start only, and a reload that changes it says so.

use std::sync::{Arc, Mutex};

use gtl_providers::Registry;
use gtl_service::CallService;
use gtl_transport_http::WebTransportInfo;

use crate::config::Config;
use crate::local_token::LocalToken;
use crate::server::ServerError;
use crate::tls::ServerIdentity;

/// Applies reloaded configurations to a running server; clones share it.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    service: Arc<CallService>,
    local_token: Option<LocalToken>,
    identity: Option<Arc<ServerIdentity>>,
    webtransport: Option<WebTransportInfo>,
    /// The configuration in force.
    running: Mutex<Config>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    pub(crate) fn new(
        service: Arc<CallService>,
        local_token: Option<LocalToken>,
        identity: Option<Arc<ServerIdentity>>,
        webtransport: Option<WebTransportInfo>,
        running: Config,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                service,
                local_token,
                identity,
                webtransport,
                running: Mutex::new(running),
            }),
        }
    }

    /// Checks `config` and, when every part of it can be built, swaps it
    /// in whole for new calls and connections; on an error nothing
    /// changes. Returns the sections that changed but apply only after a
    /// restart.
    pub async fn reload(
        &self,
        config: &Config,
        registry: Registry,
    ) -> Result<Vec<&'static str>, ServerError> {
        config.validate()?;
        let old = self.inner.service.router();
        let router = crate::server::router(config, registry, Some(&old))?;
        let auth = crate::auth::authenticator(config, self.inner.local_token.as_ref()).await?;
        self.inner.service.reload(router, auth);
        if let Some(identity) = &self.inner.identity {
            match identity.refresh(std::time::SystemTime::now()) {
                Ok(true) => {
                    if let Some(info) = &self.inner.webtransport {
                        info.set_cert_sha256(identity.sha256());
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    "the TLS certificate could not be replaced; the current one stays"
                ),
            }
        }
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let restart = needs_restart(&running, config);
        *running = config.clone();
        Ok(restart)
    }
}

/// The sections of `new` that differ from `old` and are read at start only.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut sections = Vec::new();
    for (section, changed) in [
        ("data_dir", old.data_dir != new.data_dir),
        ("listen", old.listen != new.listen),
        ("sessions", old.sessions != new.sessions),
        ("limits", old.limits != new.limits),
        ("audit", old.audit != new.audit),
        ("log", old.log != new.log),
        ("tls", old.tls != new.tls),
    ] {
        if changed {
            sections.push(section);
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_read_at_start_are_named_when_they_change() {
        let old = Config::default();
        let mut new = old.clone();
        new.routes =
            Config::from_toml("[[routes]]\nname = \"r\"\ntargets = [{ model = \"echo/echo\" }]")
                .unwrap()
                .routes;
        assert!(needs_restart(&old, &new).is_empty(), "routes reload");
        new.limits.max_calls_per_subject = 1;
        new.listen.tcp.enabled = false;
        assert_eq!(needs_restart(&old, &new), ["listen", "limits"]);
    }
}
