//! Ollama's native chat API (feature `ollama`).
//!
//! [`OllamaProvider`] sends `POST {base}/api/chat` to a local or remote
//! Ollama server (`OLLAMA_HOST`, default `http://127.0.0.1:11434`; no key,
//! or a bearer token for an Ollama behind an authenticating proxy) and
//! reads its newline-delimited JSON stream, or its single JSON answer for
//! unary calls (`"stream": false`).
//!
//! # Mapping
//!
//! | GTL | Ollama |
//! |---|---|
//! | system / user / assistant / tool messages | `messages[].role` |
//! | text parts | `content` (concatenated) |
//! | image parts with `data` | `images` (base64) |
//! | image parts with `url` | refused: `INVALID_REQUEST` (Ollama does not fetch URLs) |
//! | assistant `tool_calls` | `tool_calls[].function` with `arguments` as a JSON object |
//! | tool message | `role: tool` with `tool_name` (the message's `name`, else the name of the call it answers) |
//! | `tools` | `tools[]` (`type: function`) |
//! | `tool_choice` | none: no tools; a function: only that tool; `required`: not enforceable (tools sent as with auto) |
//! | `max_tokens`, `temperature`, `top_p`, `stop` | `options.num_predict`, `temperature`, `top_p`, `stop` |
//! | `message.content` deltas | `token` |
//! | `message.tool_calls` (whole calls, object arguments) | `tool_call` (arguments as JSON text, byte for byte; ids `call_<n>` when Ollama sends none) |
//! | final line: `prompt_eval_count`, `eval_count` | `usage` (priced from the table: local models cost 0) |
//! | `done_reason` | `done`: `length` → `length`, tool calls → `tool_calls`, else `stop` |
//! | `{"error": …}` line under HTTP 200 | `error` (by its message: unknown model → `MODEL_NOT_FOUND`, context → `CONTEXT_LENGTH_EXCEEDED`, else `PROVIDER_ERROR`) |
//! | HTTP errors | the shared mapping (404 → `MODEL_NOT_FOUND`, 400 → `INVALID_REQUEST`, 5xx → `PROVIDER_UNAVAILABLE`, …) |
//!
//! Not mapped: `thinking` output (GTL has no reasoning event), `format`
//! (structured output), `keep_alive` and Ollama-specific `options` (GTL
//! requests carry no such fields).
//!
//! # Models
//!
//! [`Provider::models`] returns the configured model list if there is one;
//! otherwise it asks the server, with a real `GET {base}/api/tags` call, and
//! lists what is pulled there. If the server cannot be reached the list is
//! empty (the failure is logged), so a stopped Ollama does not break
//! `models.list`.

pub(crate) mod decode;
mod request;

use std::sync::Arc;

use futures::StreamExt as _;
use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::{CompletionRequest, ErrorCode, ModelInfo, ProviderInfo};
use serde::Deserialize;

use self::decode::ChatDecoder;
use crate::config::{ConfigError, ProviderConfig, ProviderKind};
use crate::http::{Headers, HttpClient, JsonBody, Ndjson, StreamMeta};
use crate::usage::PriceTable;

/// The provider's default name in requests and routing.
pub(crate) const NAME: &str = "ollama";

/// The largest `/api/tags` answer read, in bytes.
const MAX_TAGS_BODY: usize = 4 << 20;

/// An Ollama server, spoken to in its native API. See the [module
/// docs](self) for what is mapped.
#[derive(Debug)]
pub struct OllamaProvider {
    name: Arc<str>,
    config: ProviderConfig,
    base_url: String,
    client: HttpClient,
    /// For `GET /api/tags`: the shared [`HttpClient`] only POSTs.
    lister: reqwest::Client,
    prices: PriceTable,
}

impl OllamaProvider {
    /// A provider for `config` (its base URL, default
    /// `http://127.0.0.1:11434`; an optional bearer token or API key; extra
    /// headers; timeouts; aliases; prices; models).
    pub fn new(config: ProviderConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let base_url = config.base_url().ok_or_else(|| ConfigError::Missing {
            provider: config.name.clone(),
            missing: "base_url".to_owned(),
        })?;
        // The shared client comes first: it installs the TLS crypto provider
        // the lister's builder needs.
        let client = HttpClient::from_config(&config)?;
        let lister = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .timeout(config.timeouts.first_byte)
            .build()
            .map_err(|e| ConfigError::Invalid {
                provider: config.name.clone(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            client,
            lister,
            prices: config.price_table(),
            base_url,
            config,
        })
    }

    /// A provider for the local server, `http://127.0.0.1:11434`.
    pub fn local() -> Result<Self, ConfigError> {
        Self::new(ProviderConfig::new(ProviderKind::Ollama))
    }

    fn headers(&self) -> Result<reqwest::header::HeaderMap, ProviderError> {
        let mut headers = Headers::new().extra(&self.config.headers);
        if let Some(token) = self
            .config
            .bearer_token
            .as_ref()
            .or(self.config.api_key.as_ref())
        {
            headers = headers.bearer(token);
        }
        headers.build()
    }

    /// `GET /api/tags`: the models pulled on the server.
    async fn tags(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let url = format!("{}/api/tags", self.base_url);
        let unavailable = |e: reqwest::Error| {
            let code = if e.is_timeout() {
                ErrorCode::ProviderTimeout
            } else {
                ErrorCode::ProviderUnavailable
            };
            ProviderError::new(
                code,
                format!("{}: listing models failed: {}", self.name, e.without_url()),
            )
        };
        let response = self
            .lister
            .get(&url)
            .headers(self.headers()?)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk.map_err(unavailable)?);
            if body.len() > MAX_TAGS_BODY {
                break;
            }
        }
        if !status.is_success() {
            return Err(crate::http::status_error(
                &self.name,
                status.as_u16(),
                None,
                &body,
            ));
        }
        let tags: Tags = serde_json::from_slice(&body).map_err(|e| {
            ProviderError::new(
                ErrorCode::ProviderError,
                format!("{}: malformed /api/tags answer: {e}", self.name),
            )
        })?;
        Ok(tags.models.into_iter().map(Tag::into_model).collect())
    }
}

/// `components.schemas.ListResponse`.
#[derive(Debug, Deserialize)]
struct Tags {
    #[serde(default)]
    models: Vec<Tag>,
}

/// `components.schemas.ModelSummary`, the fields read.
#[derive(Debug, Deserialize)]
struct Tag {
    name: String,
    #[serde(default)]
    details: TagDetails,
}

#[derive(Debug, Default, Deserialize)]
struct TagDetails {
    #[serde(default)]
    families: Option<Vec<String>>,
}

impl Tag {
    /// `/api/tags` tells no limits or capabilities, except that models with
    /// a vision encoder list its family (`clip`, `mllama`).
    fn into_model(self) -> ModelInfo {
        let vision = self
            .details
            .families
            .unwrap_or_default()
            .iter()
            .any(|f| f == "clip" || f == "mllama");
        ModelInfo {
            name: self.name,
            supports_streaming: true,
            supports_functions: true,
            supports_vision: vision,
            ..ModelInfo::default()
        }
    }
}

#[async_trait::async_trait]
impl Provider for OllamaProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn models(&self) -> Result<ProviderInfo, ProviderError> {
        let models = if self.config.models.is_empty() {
            self.tags().await.unwrap_or_else(|error| {
                tracing::warn!(provider = %self.name, %error, "cannot list ollama models");
                Vec::new()
            })
        } else {
            self.config.models.clone()
        };
        Ok(ProviderInfo {
            provider: self.name.to_string(),
            models,
        })
    }

    async fn stream(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let model = self.config.resolve_model(&request.model).to_owned();
        if model.is_empty() {
            return Err(ProviderError::new(
                ErrorCode::InvalidRequest,
                "ollama needs a model name",
            ));
        }
        let body = serde_json::to_vec(&request::chat_request(&request, &model)?).map_err(|e| {
            ProviderError::new(
                ErrorCode::Internal,
                format!("cannot encode the request: {e}"),
            )
        })?;
        let url = format!("{}/api/chat", self.base_url);
        let response = self.client.post(&url, self.headers()?, body).await?;
        let meta = StreamMeta::streaming(&self.name, &model).with_price(
            self.prices
                .lookup(&self.name, &model)
                .or(self.prices.lookup(NAME, &model)),
        );
        let provider = Arc::clone(&self.name);
        Ok(if request.stream {
            self.client
                .events(response, Ndjson::new(ChatDecoder::new(provider)), meta)
        } else {
            let decode = move |body: &[u8], out: &mut Vec<_>| {
                ChatDecoder::unary(Arc::clone(&provider), body, out);
            };
            self.client.events(response, JsonBody::new(decode), meta)
        })
    }
}

/// Builds the provider `config` describes (see [`crate::build`]).
pub(crate) fn from_config(config: ProviderConfig) -> Result<Arc<dyn Provider>, ConfigError> {
    Ok(Arc::new(OllamaProvider::new(config)?))
}
