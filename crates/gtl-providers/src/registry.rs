//! Which provider serves a request.
//!
//! Models are addressed as `provider/model` (`anthropic/claude-sonnet-4-5`),
//! by the request's `provider` field plus a bare model, or by an alias from
//! configuration. A request naming no provider at all goes to the default
//! provider (the built-in `echo` unless configured otherwise).

use std::collections::BTreeMap;
use std::sync::Arc;

use gtl_core::{Provider, ProviderError};
use gtl_proto::{CompletionRequest, ErrorCode, ProviderInfo};

/// The providers a gateway serves, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    aliases: BTreeMap<String, String>,
    default: Option<String>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider under its [`Provider::name`]. The first one added is
    /// the default until [`set_default`](Self::set_default) says otherwise.
    pub fn add(&mut self, provider: Arc<dyn Provider>) -> &mut Self {
        let name = provider.name().to_owned();
        self.default.get_or_insert_with(|| name.clone());
        self.providers.insert(name, provider);
        self
    }

    /// Makes `name` the provider for requests that name none.
    pub fn set_default(&mut self, name: impl Into<String>) -> &mut Self {
        self.default = Some(name.into());
        self
    }

    /// Adds an alias: `alias` means `target` (`provider/model`).
    pub fn alias(&mut self, alias: impl Into<String>, target: impl Into<String>) -> &mut Self {
        self.aliases.insert(alias.into(), target.into());
        self
    }

    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    /// The aliases, `(alias, "provider/model")`, sorted by alias.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases
            .iter()
            .map(|(alias, target)| (alias.as_str(), target.as_str()))
    }

    /// Names of the providers, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// Picks the provider for `request` and rewrites `request.model` to the
    /// provider's own model name.
    pub fn resolve(
        &self,
        request: &mut CompletionRequest,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        if let Some(target) = self.aliases.get(&request.model) {
            request.model = target.clone();
        }
        let (provider, model) = match (request.provider.as_str(), request.model.split_once('/')) {
            ("", Some((provider, model))) if self.providers.contains_key(provider) => {
                (provider.to_owned(), model.to_owned())
            }
            ("", _) => {
                let default = self.default.as_deref().ok_or_else(|| {
                    ProviderError::new(ErrorCode::ModelNotFound, "no provider is configured")
                })?;
                (default.to_owned(), request.model.clone())
            }
            (provider, Some((prefix, model))) if prefix == provider => {
                (provider.to_owned(), model.to_owned())
            }
            (provider, _) => (provider.to_owned(), request.model.clone()),
        };
        let found = self.providers.get(&provider).ok_or_else(|| {
            ProviderError::new(
                ErrorCode::ModelNotFound,
                format!(
                    "unknown provider `{provider}`; configured: {}",
                    self.names().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        request.provider = provider;
        request.model = model;
        Ok(found.clone())
    }

    /// Every provider's models; one provider's failure does not hide the
    /// others' (its entry lists no models).
    pub async fn models(&self, only: Option<&str>) -> Vec<ProviderInfo> {
        let mut out = Vec::new();
        for (name, provider) in &self.providers {
            if only.is_some_and(|only| only != name) {
                continue;
            }
            match provider.models().await {
                Ok(info) => out.push(info),
                Err(_) => out.push(ProviderInfo {
                    provider: name.clone(),
                    models: Vec::new(),
                }),
            }
        }
        out
    }
}
