//! Provider configuration, and the providers the environment switches on.
//!
//! A [`ProviderConfig`] says how to reach one provider: its kind, the name
//! it is registered under, its key, base URL, extra headers, timeouts,
//! model aliases, prices and model list. [`configs_from_env`] reads the
//! usual environment variables (the ones the providers' own SDKs read) into
//! configs, and [`providers_from_env`] builds the providers of those whose
//! cargo feature is compiled in. [`build`] builds one provider from a
//! config, e.g. one read from the server's TOML file.
//!
//! The environment variables read are listed on [`configs_from_env`].
//!
//! # Adding a provider kind
//!
//! Each provider module provides
//! `pub(crate) fn from_config(config: ProviderConfig) -> Result<Arc<dyn Provider>, ConfigError>`,
//! called by [`build`] for its [`ProviderKind`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use gtl_core::Provider;
use gtl_proto::{ModelInfo, ProviderInfo};

use crate::usage::{Price, PriceTable};

/// A secret (an API key or token): never printed. `Debug` shows
/// `Secret(<redacted>)`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// Which adapter serves a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI's Chat Completions API.
    OpenAi,
    /// A server speaking OpenAI's Chat Completions API (feature `openai`).
    OpenAiCompatible(Compat),
    /// Azure OpenAI deployments (feature `azure`).
    Azure,
    /// Anthropic Messages (feature `anthropic`).
    Anthropic,
    /// Google Gemini (feature `gemini`).
    Gemini,
    /// Ollama's native API (feature `ollama`).
    Ollama,
    /// AWS Bedrock Converse (feature `bedrock`).
    Bedrock,
}

impl ProviderKind {
    /// The name a provider of this kind is registered under by default.
    pub fn default_name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::OpenAiCompatible(compat) => compat.name(),
            Self::Azure => "azure",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Ollama => "ollama",
            Self::Bedrock => "bedrock",
        }
    }

    /// The public endpoint, when the kind has one that needs no
    /// per-account part. Azure (a resource endpoint) and Bedrock (derived
    /// from the region) have none here.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("https://api.openai.com/v1"),
            Self::OpenAiCompatible(compat) => compat.default_base_url(),
            Self::Anthropic => Some("https://api.anthropic.com"),
            Self::Gemini => Some("https://generativelanguage.googleapis.com"),
            Self::Ollama => Some("http://127.0.0.1:11434"),
            Self::Azure | Self::Bedrock => None,
        }
    }

    /// The cargo feature that builds this kind's adapter.
    pub fn feature(self) -> &'static str {
        match self {
            Self::OpenAi | Self::OpenAiCompatible(_) => "openai",
            Self::Azure => "azure",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Ollama => "ollama",
            Self::Bedrock => "bedrock",
        }
    }
}

/// A named preset of an OpenAI-compatible server: its default name, base
/// URL, key variable and dialect quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compat {
    /// Any OpenAI-compatible server; its base URL must be configured.
    Generic,
    /// vLLM's OpenAI-compatible server.
    Vllm,
    /// llama.cpp's `llama-server`.
    LlamaCpp,
    /// LM Studio's local server.
    LmStudio,
    /// Groq.
    Groq,
    /// Mistral's La Plateforme.
    Mistral,
    /// DeepSeek.
    DeepSeek,
    /// Together AI.
    Together,
    /// OpenRouter.
    OpenRouter,
}

impl Compat {
    /// Every preset.
    pub const ALL: &'static [Self] = &[
        Self::Generic,
        Self::Vllm,
        Self::LlamaCpp,
        Self::LmStudio,
        Self::Groq,
        Self::Mistral,
        Self::DeepSeek,
        Self::Together,
        Self::OpenRouter,
    ];

    /// The preset's name, which is also the provider's default name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Generic => "openai-compatible",
            Self::Vllm => "vllm",
            Self::LlamaCpp => "llamacpp",
            Self::LmStudio => "lmstudio",
            Self::Groq => "groq",
            Self::Mistral => "mistral",
            Self::DeepSeek => "deepseek",
            Self::Together => "together",
            Self::OpenRouter => "openrouter",
        }
    }

    /// The preset named `name` (see [`Compat::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// The preset's default base URL (including the `/v1` part, as with
    /// `OPENAI_BASE_URL`).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::Generic => None,
            Self::Vllm => Some("http://127.0.0.1:8000/v1"),
            Self::LlamaCpp => Some("http://127.0.0.1:8080/v1"),
            Self::LmStudio => Some("http://127.0.0.1:1234/v1"),
            Self::Groq => Some("https://api.groq.com/openai/v1"),
            Self::Mistral => Some("https://api.mistral.ai/v1"),
            Self::DeepSeek => Some("https://api.deepseek.com/v1"),
            Self::Together => Some("https://api.together.xyz/v1"),
            Self::OpenRouter => Some("https://openrouter.ai/api/v1"),
        }
    }

    /// The environment variable holding the hosted service's key; local
    /// servers have none.
    pub fn key_variable(self) -> Option<&'static str> {
        match self {
            Self::Groq => Some("GROQ_API_KEY"),
            Self::Mistral => Some("MISTRAL_API_KEY"),
            Self::DeepSeek => Some("DEEPSEEK_API_KEY"),
            Self::Together => Some("TOGETHER_API_KEY"),
            Self::OpenRouter => Some("OPENROUTER_API_KEY"),
            Self::Generic | Self::Vllm | Self::LlamaCpp | Self::LmStudio => None,
        }
    }
}

/// How long to wait for a provider, by stage of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Establishing the connection (TCP and TLS). Default 10 s.
    pub connect: Duration,
    /// From sending the request to the response headers. A non-streaming
    /// call gets its headers only when the whole answer is generated, so
    /// this is as long as the SDKs' request timeout. Default 600 s.
    pub first_byte: Duration,
    /// Between two chunks of the response body. Reasoning models can think
    /// for minutes between chunks. Default 300 s.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(600),
            idle: Duration::from_secs(300),
        }
    }
}

impl Timeouts {
    /// Timeouts with the given values.
    pub fn new(connect: Duration, first_byte: Duration, idle: Duration) -> Self {
        Self {
            connect,
            first_byte,
            idle,
        }
    }
}

/// Static AWS credentials (for Bedrock's SigV4 signing).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsCredentials {
    /// The access key id (an identifier, not a secret).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl AwsCredentials {
    /// Long-term credentials.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<Secret>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Adds the session token of temporary credentials.
    #[must_use]
    pub fn with_session_token(mut self, token: impl Into<Secret>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

/// How to reach one provider.
///
/// `Debug` redacts the key, the token and the extra headers' values.
#[derive(Clone)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The name the provider is registered and addressed under
    /// (`name/model`). Defaults to [`ProviderKind::default_name`].
    pub name: String,
    /// The adapter.
    pub kind: ProviderKind,
    /// The provider's own API key (OpenAI `Authorization: Bearer`, Azure
    /// `api-key`, Anthropic `x-api-key`, Gemini `x-goog-api-key`, a
    /// compatible server's bearer key).
    pub api_key: Option<Secret>,
    /// A bearer token used instead of the key (Azure Entra ID tokens, an
    /// Ollama behind an authenticating proxy).
    pub bearer_token: Option<Secret>,
    /// Replaces the kind's public endpoint (see [`ProviderConfig::base_url`]).
    pub base_url: Option<String>,
    /// Extra headers sent with every request.
    pub headers: Vec<(String, String)>,
    /// Connect, first-byte and idle timeouts.
    pub timeouts: Timeouts,
    /// Model aliases: a request for the key is sent for the value (for
    /// Azure, a model name to a deployment name).
    pub aliases: BTreeMap<String, String>,
    /// Prices overriding the built-in table for this provider, by model
    /// (or model prefix).
    pub prices: BTreeMap<String, Price>,
    /// The models `models()` reports; empty means the adapter's built-in
    /// list, if it has one.
    pub models: Vec<ModelInfo>,
    /// The API version (Azure's `api-version` query parameter).
    pub api_version: Option<String>,
    /// The region (Bedrock).
    pub region: Option<String>,
    /// AWS credentials (Bedrock).
    pub aws: Option<AwsCredentials>,
    /// Speak HTTP/2 without TLS to an `http://` base URL (h2c, prior
    /// knowledge): every call to the provider shares one connection, as a
    /// local model server or a sidecar proxy speaking h2c allows.
    pub http2_prior_knowledge: bool,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("api_key", &self.api_key)
            .field("bearer_token", &self.bearer_token)
            .field("base_url", &self.base_url)
            .field("headers", &header_names)
            .field("timeouts", &self.timeouts)
            .field("aliases", &self.aliases)
            .field("prices", &self.prices)
            .field("models", &self.models.len())
            .field("api_version", &self.api_version)
            .field("region", &self.region)
            .field("aws", &self.aws)
            .field("http2_prior_knowledge", &self.http2_prior_knowledge)
            .finish()
    }
}

impl ProviderConfig {
    /// A config for `kind` with its default name and nothing else set.
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            name: kind.default_name().to_owned(),
            kind,
            api_key: None,
            bearer_token: None,
            base_url: None,
            headers: Vec::new(),
            timeouts: Timeouts::default(),
            aliases: BTreeMap::new(),
            prices: BTreeMap::new(),
            models: Vec::new(),
            api_version: None,
            region: None,
            aws: None,
            http2_prior_knowledge: false,
        }
    }

    /// Sets the registered name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the API key.
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<Secret>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Sets the bearer token.
    #[must_use]
    pub fn with_bearer_token(mut self, token: impl Into<Secret>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Sets the base URL.
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Adds an extra header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// models.list for this provider: the configured models when there are
    /// any, else the adapter's `builtin` list.
    pub fn provider_info(&self, builtin: impl FnOnce() -> Vec<ModelInfo>) -> ProviderInfo {
        let models = if self.models.is_empty() {
            builtin()
        } else {
            self.models.clone()
        };
        ProviderInfo {
            provider: self.name.clone(),
            models,
        }
    }

    /// Adds a model alias.
    #[must_use]
    pub fn with_alias(mut self, alias: impl Into<String>, model: impl Into<String>) -> Self {
        self.aliases.insert(alias.into(), model.into());
        self
    }

    /// Sets a model's (or model prefix's) price.
    #[must_use]
    pub fn with_price(mut self, model: impl Into<String>, price: Price) -> Self {
        self.prices.insert(model.into(), price);
        self
    }

    /// Adds a model to the list `models()` reports.
    #[must_use]
    pub fn with_model(mut self, model: ModelInfo) -> Self {
        self.models.push(model);
        self
    }

    /// Sets the API version.
    #[must_use]
    pub fn with_api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// Sets the region.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Speaks h2c (HTTP/2 without TLS, prior knowledge) to the provider.
    #[must_use]
    pub fn with_http2_prior_knowledge(mut self) -> Self {
        self.http2_prior_knowledge = true;
        self
    }

    /// Sets the AWS credentials.
    #[must_use]
    pub fn with_aws(mut self, credentials: AwsCredentials) -> Self {
        self.aws = Some(credentials);
        self
    }

    /// The base URL requests go to: the configured one, else the kind's
    /// public endpoint, without a trailing `/`. `None` when neither exists
    /// (Azure and Bedrock build theirs from other settings).
    pub fn base_url(&self) -> Option<String> {
        self.base_url
            .as_deref()
            .or(self.kind.default_base_url())
            .map(|url| url.trim_end_matches('/').to_owned())
    }

    /// The provider's model name for a requested one: its alias target, or
    /// the name itself.
    pub fn resolve_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.aliases.get(model).map_or(model, String::as_str)
    }

    /// The built-in price table with this config's prices over it.
    pub fn price_table(&self) -> PriceTable {
        let mut table = PriceTable::builtin();
        for (model, price) in &self.prices {
            table.insert(model.clone(), *price);
        }
        table
    }

    /// Checks what every adapter relies on: a well-formed base URL and
    /// header names and values that HTTP accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.base_url {
            check_url(&self.name, url)?;
        }
        for (name, value) in &self.headers {
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            let value_ok = value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
            if !name_ok || !value_ok {
                return Err(ConfigError::InvalidHeader {
                    provider: self.name.clone(),
                    name: name.clone(),
                });
            }
        }
        Ok(())
    }
}

fn check_url(provider: &str, url: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        provider: provider.to_owned(),
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("it must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(invalid("it has no host"));
    }
    if url.contains(char::is_whitespace) {
        return Err(invalid("it contains whitespace"));
    }
    Ok(())
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A base URL or endpoint is malformed.
    #[error("provider `{provider}`: invalid base url `{url}`: {reason}")]
    InvalidUrl {
        /// The provider's name.
        provider: String,
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An extra header's name or value is not valid HTTP.
    #[error("provider `{provider}`: invalid header `{name}`")]
    InvalidHeader {
        /// The provider's name.
        provider: String,
        /// The header's name.
        name: String,
    },
    /// A setting the provider needs is missing.
    #[error("provider `{provider}`: {missing} is not set")]
    Missing {
        /// The provider's name.
        provider: String,
        /// What is missing (a setting or variable name).
        missing: String,
    },
    /// The provider's adapter is not compiled in.
    #[error("provider `{provider}` needs the `{feature}` feature of gtl-providers")]
    NotBuilt {
        /// The provider's name.
        provider: String,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// Any other invalid setting.
    #[error("provider `{provider}`: {message}")]
    Invalid {
        /// The provider's name.
        provider: String,
        /// What is wrong.
        message: String,
    },
}

/// A set of environment variables: the process's, or a map for tests.
///
/// Empty values count as unset. `Debug` lists the names only.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process's environment (variables that are valid UTF-8).
    pub fn from_process() -> Self {
        std::env::vars().collect()
    }

    /// Sets a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// A variable's value, trimmed; `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// The default Azure OpenAI `api-version`: the latest GA data-plane
/// version.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// The configs of every provider `env` switches on, in a fixed order:
/// OpenAI, Azure, Anthropic, Gemini, Ollama, Bedrock, then the compatible
/// presets.
///
/// | provider | enabled by | also read |
/// |---|---|---|
/// | `openai` | `OPENAI_API_KEY` | `OPENAI_BASE_URL`, `OPENAI_ORG_ID`, `OPENAI_PROJECT_ID` |
/// | `azure` | `AZURE_OPENAI_API_KEY` or `AZURE_OPENAI_AD_TOKEN`, with `AZURE_OPENAI_ENDPOINT` | `AZURE_OPENAI_API_VERSION` or `OPENAI_API_VERSION` |
/// | `anthropic` | `ANTHROPIC_API_KEY` | `ANTHROPIC_BASE_URL` |
/// | `gemini` | `GEMINI_API_KEY` (or `GOOGLE_API_KEY`) | `GEMINI_BASE_URL` |
/// | `ollama` | `OLLAMA_HOST` | `OLLAMA_API_KEY` |
/// | `bedrock` | `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` + `AWS_REGION` (or `AWS_DEFAULT_REGION`) | `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL` |
/// | `groq`, `mistral`, `deepseek`, `together`, `openrouter` | `GROQ_API_KEY`, `MISTRAL_API_KEY`, `DEEPSEEK_API_KEY`, `TOGETHER_API_KEY`, `OPENROUTER_API_KEY` | `<NAME>_BASE_URL` |
///
/// A base URL variable replaces the public endpoint exactly as in the
/// providers' SDKs (`OPENAI_BASE_URL` includes `/v1`; `ANTHROPIC_BASE_URL`
/// does not). A provider without its key is absent. Ollama needs no key,
/// but is only enabled when `OLLAMA_HOST` is set, so a default server does
/// not list a provider that is not running; `OLLAMA_HOST` takes Ollama's own
/// forms (`host`, `host:port`, `http://host:port`; port 11434 by default).
/// Bedrock reads static credentials only (no profiles, SSO or instance
/// roles), and is absent unless a region is set too. Local
/// OpenAI-compatible servers (vLLM, llama.cpp, LM Studio) have no standard
/// variable: configure them in the server's config file.
///
/// Configs are returned whatever features are compiled in; use
/// [`providers_from_env`] to build them.
pub fn configs_from_env(env: &Env) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut configs = Vec::new();

    if let Some(key) = env.get("OPENAI_API_KEY") {
        let mut config = ProviderConfig::new(ProviderKind::OpenAi).with_api_key(key);
        config.base_url = env.get("OPENAI_BASE_URL").map(str::to_owned);
        if let Some(org) = env.get("OPENAI_ORG_ID") {
            config = config.with_header("OpenAI-Organization", org);
        }
        if let Some(project) = env.get("OPENAI_PROJECT_ID") {
            config = config.with_header("OpenAI-Project", project);
        }
        configs.push(config);
    }

    let azure_key = env.get("AZURE_OPENAI_API_KEY");
    let azure_token = env.get("AZURE_OPENAI_AD_TOKEN");
    if azure_key.is_some() || azure_token.is_some() {
        let endpoint = env
            .get("AZURE_OPENAI_ENDPOINT")
            .ok_or_else(|| ConfigError::Missing {
                provider: "azure".to_owned(),
                missing: "AZURE_OPENAI_ENDPOINT".to_owned(),
            })?;
        let mut config = ProviderConfig::new(ProviderKind::Azure)
            .with_base_url(endpoint)
            .with_api_version(
                env.get("AZURE_OPENAI_API_VERSION")
                    .or_else(|| env.get("OPENAI_API_VERSION"))
                    .unwrap_or(AZURE_DEFAULT_API_VERSION),
            );
        config.api_key = azure_key.map(Secret::from);
        config.bearer_token = azure_token.map(Secret::from);
        configs.push(config);
    }

    if let Some(key) = env.get("ANTHROPIC_API_KEY") {
        let mut config = ProviderConfig::new(ProviderKind::Anthropic).with_api_key(key);
        config.base_url = env.get("ANTHROPIC_BASE_URL").map(str::to_owned);
        configs.push(config);
    }

    if let Some(key) = env
        .get("GEMINI_API_KEY")
        .or_else(|| env.get("GOOGLE_API_KEY"))
    {
        let mut config = ProviderConfig::new(ProviderKind::Gemini).with_api_key(key);
        config.base_url = env.get("GEMINI_BASE_URL").map(str::to_owned);
        configs.push(config);
    }

    if let Some(host) = env.get("OLLAMA_HOST") {
        let mut config =
            ProviderConfig::new(ProviderKind::Ollama).with_base_url(ollama_base_url(host));
        config.api_key = env.get("OLLAMA_API_KEY").map(Secret::from);
        configs.push(config);
    }

    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"));
    if let (Some(id), Some(secret), Some(region)) = (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
        region,
    ) {
        let mut credentials = AwsCredentials::new(id, secret);
        credentials.session_token = env.get("AWS_SESSION_TOKEN").map(Secret::from);
        let mut config = ProviderConfig::new(ProviderKind::Bedrock)
            .with_aws(credentials)
            .with_region(region);
        config.base_url = env
            .get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
            .or_else(|| env.get("AWS_ENDPOINT_URL"))
            .map(str::to_owned);
        configs.push(config);
    }

    for &compat in Compat::ALL {
        let Some(variable) = compat.key_variable() else {
            continue;
        };
        if let Some(key) = env.get(variable) {
            let mut config =
                ProviderConfig::new(ProviderKind::OpenAiCompatible(compat)).with_api_key(key);
            let base_variable = format!("{}_BASE_URL", compat.name().to_ascii_uppercase());
            config.base_url = env.get(&base_variable).map(str::to_owned);
            configs.push(config);
        }
    }

    for config in &configs {
        config.validate()?;
    }
    Ok(configs)
}

/// Ollama's `OLLAMA_HOST` forms as a base URL: a scheme defaults to
/// `http`, a port to 11434 (443 for `https`), and a trailing `/` goes.
pub fn ollama_base_url(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    let (scheme, rest) = match host.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("http", host),
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    // A port is a `:` after the host (after `]` for IPv6 literals).
    let host_end = authority.rfind(']').unwrap_or(0);
    let has_port = authority[host_end..].contains(':');
    let authority = match (has_port, authority.is_empty()) {
        (_, true) => "127.0.0.1:11434".to_owned(),
        (true, false) => authority.to_owned(),
        (false, false) if scheme == "https" => format!("{authority}:443"),
        (false, false) => format!("{authority}:11434"),
    };
    format!("{scheme}://{authority}{path}")
}

/// Builds the providers of every config `env` switches on whose adapter is
/// compiled in; the others are left out (they are in
/// [`configs_from_env`]'s answer).
pub fn providers_from_env(env: &Env) -> Result<Vec<Arc<dyn Provider>>, ConfigError> {
    let mut providers = Vec::new();
    for config in configs_from_env(env)? {
        match build(config) {
            Ok(provider) => providers.push(provider),
            Err(ConfigError::NotBuilt { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(providers)
}

/// Builds the provider a config describes.
pub fn build(config: ProviderConfig) -> Result<Arc<dyn Provider>, ConfigError> {
    config.validate()?;
    match config.kind {
        #[cfg(feature = "openai")]
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible(_) => {
            crate::openai::from_config(config)
        }
        #[cfg(feature = "azure")]
        ProviderKind::Azure => crate::openai::from_config(config),
        #[cfg(feature = "anthropic")]
        ProviderKind::Anthropic => crate::anthropic::from_config(config),
        #[cfg(feature = "gemini")]
        ProviderKind::Gemini => crate::gemini::from_config(config),
        #[cfg(feature = "ollama")]
        ProviderKind::Ollama => crate::ollama::from_config(config),
        #[cfg(feature = "bedrock")]
        ProviderKind::Bedrock => crate::bedrock::from_config(config),
        #[allow(
            unreachable_patterns,
            reason = "reached only when some provider feature is off"
        )]
        kind => Err(ConfigError::NotBuilt {
            provider: config.name,
            feature: kind.feature(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().copied().collect()
    }

    #[test]
    fn an_empty_environment_enables_nothing() {
        assert!(configs_from_env(&Env::new()).unwrap().is_empty());
        // Blank values are unset.
        assert!(
            configs_from_env(&env(&[("OPENAI_API_KEY", "  ")]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn keys_enable_their_providers_in_a_fixed_order() {
        let configs = configs_from_env(&env(&[
            ("GROQ_API_KEY", "g"),
            ("OLLAMA_HOST", "0.0.0.0"),
            ("ANTHROPIC_API_KEY", "a"),
            ("OPENAI_API_KEY", "o"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("GEMINI_API_KEY", "ge"),
        ]))
        .unwrap();
        let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["openai", "anthropic", "gemini", "ollama", "groq"]);
        assert_eq!(
            configs[0].base_url().as_deref(),
            Some("http://127.0.0.1:9/v1")
        );
        assert_eq!(
            configs[1].base_url().as_deref(),
            Some("https://api.anthropic.com")
        );
        assert_eq!(
            configs[3].base_url().as_deref(),
            Some("http://0.0.0.0:11434")
        );
        assert_eq!(configs[3].api_key, None);
        assert_eq!(
            configs[4].kind,
            ProviderKind::OpenAiCompatible(Compat::Groq)
        );
    }

    #[test]
    fn azure_needs_an_endpoint_and_defaults_its_version() {
        let missing = configs_from_env(&env(&[("AZURE_OPENAI_API_KEY", "k")])).unwrap_err();
        assert!(matches!(missing, ConfigError::Missing { .. }), "{missing}");
        let configs = configs_from_env(&env(&[
            ("AZURE_OPENAI_AD_TOKEN", "t"),
            ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com/"),
        ]))
        .unwrap();
        assert_eq!(
            configs[0].api_version.as_deref(),
            Some(AZURE_DEFAULT_API_VERSION)
        );
        assert_eq!(configs[0].bearer_token, Some(Secret::from("t")));
        assert_eq!(configs[0].api_key, None);
    }

    #[test]
    fn bedrock_needs_keys_and_a_region() {
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ];
        assert!(configs_from_env(&env(&keys)).unwrap().is_empty());
        let mut with_region = env(&keys);
        with_region.set("AWS_DEFAULT_REGION", "eu-west-1");
        let configs = configs_from_env(&with_region).unwrap();
        assert_eq!(configs[0].region.as_deref(), Some("eu-west-1"));
        assert_eq!(configs[0].aws.as_ref().unwrap().access_key_id, "AKID");
    }

    #[test]
    fn malformed_base_urls_are_rejected() {
        let error = configs_from_env(&env(&[
            ("OPENAI_API_KEY", "k"),
            ("OPENAI_BASE_URL", "api.example.invalid/v1"),
        ]))
        .unwrap_err();
        assert!(matches!(error, ConfigError::InvalidUrl { .. }), "{error}");
    }

    #[test]
    fn ollama_host_forms() {
        assert_eq!(ollama_base_url("localhost"), "http://localhost:11434");
        assert_eq!(ollama_base_url("10.0.0.2:9000"), "http://10.0.0.2:9000");
        assert_eq!(
            ollama_base_url("https://o.example"),
            "https://o.example:443"
        );
        assert_eq!(ollama_base_url("http://[::1]/"), "http://[::1]:11434");
        assert_eq!(ollama_base_url("[::1]:1"), "http://[::1]:1");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let config = ProviderConfig::new(ProviderKind::OpenAi)
            .with_api_key("sk-very-secret")
            .with_header("x-custom-auth", "also-secret")
            .with_aws(AwsCredentials::new("AKID", "aws-secret").with_session_token("tok"));
        let shown = format!("{config:?} {:?}", env(&[("OPENAI_API_KEY", "sk-env")]));
        for secret in [
            "sk-very-secret",
            "also-secret",
            "aws-secret",
            "tok\"",
            "sk-env",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("x-custom-auth"));
    }

    #[test]
    fn aliases_resolve() {
        let config = ProviderConfig::new(ProviderKind::Azure).with_alias("gpt-4o", "prod-4o");
        assert_eq!(config.resolve_model("gpt-4o"), "prod-4o");
        assert_eq!(config.resolve_model("other"), "other");
    }
}
