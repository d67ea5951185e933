//! Anthropic Messages (feature `anthropic`).
//!
//! [`AnthropicProvider`] sends `POST {base}/v1/messages` with `x-api-key`
//! and `anthropic-version: 2023-06-01`; `stream: true` requests read the
//! SSE stream, others the unary JSON answer. Configuration: a
//! [`ProviderConfig`] of kind `Anthropic` (from `ANTHROPIC_API_KEY` and
//! `ANTHROPIC_BASE_URL`, whose default is `https://api.anthropic.com`,
//! without `/v1`).
//!
//! # Requests
//!
//! - System messages, wherever they are, become the top-level `system`
//!   (a string for one, text blocks for several).
//! - User and assistant messages become turns of content blocks: text
//!   (empty text is dropped: the API rejects it), images (`base64` sources
//!   for inline data and `data:` URLs, `url` sources for other URLs, which
//!   the API fetches; JPEG, PNG, GIF and WebP only), and an assistant's
//!   tool calls as `tool_use` blocks.
//! - Tool messages become `tool_result` blocks of a user turn. Consecutive
//!   messages of the same role are merged into one turn, so the results of
//!   parallel calls share one user message.
//! - Tool call ids are kept, except characters outside `[A-Za-z0-9_-]`
//!   (ids made by other providers), which become `_` in both the
//!   `tool_use` and its `tool_result`.
//! - Tools are sent with their parameters schema as `input_schema` (a
//!   missing `"type"` is set to `"object"`, which the API requires).
//!   `tool_choice`: `auto` → `auto`, `none` → `none`, `required` → `any`,
//!   a function → `tool`; sent only with tools.
//! - `max_tokens` is required by the API. Unset, it is the model's output
//!   limit capped at 8192 ([`DEFAULT_MAX_TOKENS`]), or 4096 for a model
//!   not in the built-in list.
//! - `stop` → `stop_sequences`; `temperature` and `top_p` are passed
//!   through (the API takes 0–1, and newer models reject them; the API's
//!   400 is reported as `INVALID_REQUEST`).
//! - A model alias from the config is resolved first.
//!
//! Not mapped: a message's `name` (the API has none), extended thinking
//! (GTL has no request field for it), prompt-cache breakpoints, `metadata`
//! (GTL's metadata is for the gateway, not the provider).
//!
//! # Events
//!
//! `message_start` → `status` (the model that serves the call) and usage;
//! `text_delta` → `token`; `input_json_delta` fragments are assembled per
//! block index (several tool blocks may interleave) and each `tool_call`
//! is sent at its `content_block_stop`; `message_delta` → finish reason
//! and usage; `message_stop` → `done`; `ping` and event types added later
//! are ignored. Finish reasons: `end_turn` and `stop_sequence` → `stop`,
//! `max_tokens` → `length`, `tool_use` → `tool_calls`, `refusal` →
//! `content_filter`.
//!
//! Thinking (`thinking_delta`, `signature_delta`, redacted thinking) and
//! citations are not surfaced: they are not answer text, and GTL has no
//! event for them. Their tokens are in Anthropic's `output_tokens`, so
//! `usage.tokens_out` counts them.
//!
//! `usage`: `tokens_in` = input + cache writes + cache reads,
//! `cached_tokens` = cache reads, `tokens_out` = output tokens. The cost
//! uses the model's price (the config's, else the built-in list's, else
//! the shared table's) with Anthropic's cache rates: writes 1.25×, reads
//! 0.1× the input price.
//!
//! Errors: HTTP errors are mapped by the shared table (401
//! `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404 `MODEL_NOT_FOUND`, 429
//! `RATE_LIMIT` with `Retry-After`, 5xx and 529 `PROVIDER_UNAVAILABLE`, a
//! "prompt is too long" 400 `CONTEXT_LENGTH_EXCEEDED`); an `error` event
//! in the stream by its type (`overloaded_error` → `PROVIDER_UNAVAILABLE`,
//! …), in the phase the stream reached. A malformed event and a stream cut
//! before `message_stop` are `PROVIDER_ERROR`.
//!
//! # Models
//!
//! `models()` answers from a built-in list (context window, output limit,
//! capabilities, prices), not from the API; a config's model list replaces
//! it.

mod models;
mod request;
pub(crate) mod stream;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::{CompletionRequest, ErrorCode, ProviderInfo};
use reqwest::header::HeaderMap;

pub use models::DEFAULT_MAX_TOKENS;

use crate::config::{ConfigError, ProviderConfig};
use crate::http::{Headers, HttpClient, JsonBody, Sse, StreamMeta};
use crate::usage::{Price, PriceTable};

/// The `anthropic-version` header sent with every request.
pub const API_VERSION: &str = "2023-06-01";

/// The Anthropic Messages adapter. See the [module docs](self).
#[derive(Debug)]
pub struct AnthropicProvider {
    config: ProviderConfig,
    client: HttpClient,
    /// `{base}/v1/messages`.
    url: String,
    /// The config's own prices.
    prices: PriceTable,
    /// The shared built-in prices, for models not in this module's list.
    shared_prices: PriceTable,
}

impl AnthropicProvider {
    /// The adapter `config` describes.
    pub fn new(config: ProviderConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let base = config.base_url().ok_or_else(|| ConfigError::Missing {
            provider: config.name.clone(),
            missing: "base_url".to_owned(),
        })?;
        let mut prices = PriceTable::new();
        for (model, price) in &config.prices {
            prices.insert(model.clone(), *price);
        }
        Ok(Self {
            client: HttpClient::from_config(&config)?,
            url: format!("{base}/v1/messages"),
            prices,
            shared_prices: PriceTable::builtin(),
            config,
        })
    }

    /// The price of `model`: the config's, else the built-in list's, else
    /// the shared table's.
    fn price(&self, model: &str) -> Option<Price> {
        self.prices
            .lookup(&self.config.name, model)
            .or_else(|| models::find(model).map(models::Model::price))
            .or_else(|| self.shared_prices.lookup(&self.config.name, model))
    }

    fn headers(&self) -> Result<HeaderMap, ProviderError> {
        let mut headers = Headers::new();
        if let Some(key) = &self.config.api_key {
            headers = headers.secret("x-api-key", key.expose());
        }
        if let Some(token) = &self.config.bearer_token {
            headers = headers.bearer(token);
        }
        let versioned = self
            .config
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("anthropic-version"));
        if !versioned {
            headers = headers.header("anthropic-version", API_VERSION);
        }
        headers.extra(&self.config.headers).build()
    }
}

/// Builds the adapter for [`crate::build`].
pub(crate) fn from_config(config: ProviderConfig) -> Result<Arc<dyn Provider>, ConfigError> {
    Ok(Arc::new(AnthropicProvider::new(config)?))
}

#[async_trait::async_trait]
impl Provider for AnthropicProvider {
    fn with_api_key(&self, key: &str) -> Result<Arc<dyn Provider>, ProviderError> {
        let config = self.config.clone().with_api_key(key);
        let keyed = Self::new(config)
            .map_err(|e| ProviderError::new(ErrorCode::InvalidRequest, e.to_string()))?;
        Ok(Arc::new(keyed))
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    async fn models(&self) -> Result<ProviderInfo, ProviderError> {
        Ok(self.config.provider_info(|| {
            models::MODELS
                .iter()
                .map(|model| model.info(self.price(model.name).unwrap_or(model.price())))
                .collect()
        }))
    }

    async fn stream(&self, mut request: CompletionRequest) -> Result<EventStream, ProviderError> {
        request.model = self.config.resolve_model(&request.model).to_owned();
        if request.model.is_empty() {
            return Err(ProviderError::new(
                ErrorCode::ModelNotFound,
                format!("{}: the request names no model", self.config.name),
            ));
        }
        let body = request::build(&request, request.stream)?;
        let body = serde_json::to_vec(&body).map_err(|e| {
            ProviderError::new(
                ErrorCode::Internal,
                format!("cannot encode the request: {e}"),
            )
        })?;
        let response = self.client.post(&self.url, self.headers()?, body).await?;
        let decoder = stream::Decoder::new(
            &self.config.name,
            &request.model,
            self.price(&request.model),
        );
        Ok(if request.stream {
            self.client
                .events(response, Sse::new(decoder), StreamMeta::default())
        } else {
            let unary = JsonBody::new(move |body: &[u8], out: &mut Vec<_>| {
                stream::message(&decoder, body, out);
            });
            self.client.events(response, unary, StreamMeta::default())
        })
    }

    /// `POST {base}/v1/messages/count_tokens` with the request's messages,
    /// system and tools (the API takes no `max_tokens`, sampling or stop
    /// fields there).
    async fn count_tokens(&self, mut request: CompletionRequest) -> Result<u64, ProviderError> {
        request.model = self.config.resolve_model(&request.model).to_owned();
        let mut body = request::build(&request, false)?;
        if let Some(fields) = body.as_object_mut() {
            for unused in [
                "max_tokens",
                "stop_sequences",
                "temperature",
                "top_p",
                "stream",
            ] {
                fields.remove(unused);
            }
        }
        let body = serde_json::to_vec(&body).map_err(|e| {
            ProviderError::new(
                ErrorCode::Internal,
                format!("cannot encode the request: {e}"),
            )
        })?;
        let url = format!("{}/count_tokens", self.url);
        let response = self.client.post(&url, self.headers()?, body).await?;
        let body = self.client.read_limited(response, 64 * 1024).await;
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|answer| answer.get("input_tokens")?.as_u64())
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorCode::ProviderError,
                    format!(
                        "{}: the token count answer has no `input_tokens`",
                        self.config.name
                    ),
                )
            })
    }
}
