//! Which providers the gateway serves: the built-in echo provider, the
//! providers the usual environment variables switch on, and those listed in
//! the config file.

use std::collections::BTreeMap;
use std::sync::Arc;

use gtl_providers::{Compat, Env, ProviderConfig, ProviderKind};
use gtl_providers::{EchoProvider, Registry};
use serde::{Deserialize, Serialize};

/// One `[[providers]]` entry of the config file.
///
/// Keys never go in the file: `api_key_env` names the variable holding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderEntry {
    /// `openai`, `azure`, `anthropic`, `gemini`, `ollama`, `bedrock`, or an
    /// OpenAI-compatible preset (`vllm`, `llamacpp`, `lmstudio`, `groq`,
    /// `mistral`, `deepseek`, `together`, `openrouter`,
    /// `openai-compatible`).
    pub kind: String,
    /// The name to address it by (`name/model`); defaults to the kind's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Replaces the provider's public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Azure's `api-version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Bedrock's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Extra headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Model aliases of this provider (Azure: model → deployment).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
    /// Speak HTTP/2 without TLS (h2c) to an `http://` base URL: one
    /// connection carries every call.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub h2c: bool,
}

/// The providers could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("provider configuration: {0}")]
pub struct ProvidersError(String);

impl ProviderEntry {
    fn to_config(&self, env: &Env) -> Result<ProviderConfig, ProvidersError> {
        let kind = match self.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            "azure" => ProviderKind::Azure,
            "anthropic" => ProviderKind::Anthropic,
            "gemini" => ProviderKind::Gemini,
            "ollama" => ProviderKind::Ollama,
            "bedrock" => ProviderKind::Bedrock,
            other => ProviderKind::OpenAiCompatible(Compat::from_name(other).ok_or_else(|| {
                ProvidersError(format!(
                    "unknown provider kind `{other}`: use openai, azure, anthropic, gemini, \
                     ollama, bedrock or an OpenAI-compatible preset"
                ))
            })?),
        };
        let mut config = ProviderConfig::new(kind);
        if let Some(name) = &self.name {
            config = config.with_name(name);
        }
        if let Some(url) = &self.base_url {
            config = config.with_base_url(url);
        }
        if let Some(var) = &self.api_key_env {
            let key = env.get(var).ok_or_else(|| {
                ProvidersError(format!("provider `{}`: ${var} is not set", config.name))
            })?;
            config = config.with_api_key(key);
        }
        if let Some(version) = &self.api_version {
            config = config.with_api_version(version);
        }
        if let Some(region) = &self.region {
            config = config.with_region(region);
        }
        for (name, value) in &self.headers {
            config = config.with_header(name, value);
        }
        for (alias, model) in &self.aliases {
            config = config.with_alias(alias, model);
        }
        if self.h2c {
            config = config.with_http2_prior_knowledge();
        }
        Ok(config)
    }
}

/// The registry for `entries` and `aliases` of the config and the process
/// environment `env`: echo (always, the default for requests that name no
/// provider), then every provider the environment switches on, then the
/// config's entries (which replace an environment provider of the same
/// name).
pub fn registry(
    entries: &[ProviderEntry],
    aliases: &BTreeMap<String, String>,
    env: &Env,
) -> Result<Registry, ProvidersError> {
    build(entries, aliases, env, true)
}

/// [`registry`], with the echo provider only when `echo` says.
pub(crate) fn build(
    entries: &[ProviderEntry],
    aliases: &BTreeMap<String, String>,
    env: &Env,
    echo: bool,
) -> Result<Registry, ProvidersError> {
    let mut registry = Registry::new();
    if echo {
        registry.add(Arc::new(EchoProvider::new()));
    }
    let from_env =
        gtl_providers::providers_from_env(env).map_err(|e| ProvidersError(e.to_string()))?;
    for provider in from_env {
        registry.add(provider);
    }
    for entry in entries {
        let config = entry.to_config(env)?;
        let provider = gtl_providers::build(config).map_err(|e| ProvidersError(e.to_string()))?;
        registry.add(provider);
    }
    for (alias, target) in aliases {
        registry.alias(alias, target);
    }
    Ok(registry)
}
