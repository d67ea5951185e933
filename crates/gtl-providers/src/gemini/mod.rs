//! Google Gemini (feature `gemini`).
//!
//! [`GeminiProvider`] sends `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`
//! for `stream: true` requests and `…:generateContent` for the others, with
//! `x-goog-api-key`. Configuration: a [`ProviderConfig`] of kind `Gemini`
//! (from `GEMINI_API_KEY` or `GOOGLE_API_KEY`, and `GEMINI_BASE_URL`, whose
//! default is `https://generativelanguage.googleapis.com`).
//!
//! # Requests
//!
//! The body is a `GenerateContentRequest` in proto3 JSON:
//!
//! - System messages, wherever they are, become the parts of
//!   `systemInstruction`.
//! - User messages are `user` contents, assistant messages `model`
//!   contents; consecutive messages of the same role are merged into one
//!   content. Text parts (empty ones dropped); images as `inlineData`
//!   (bytes, or a `data:` URL; the media type is required) or, for any
//!   other URL, `fileData {fileUri, mimeType}` (the media type given, else
//!   guessed from the extension). Gemini reads Files API URIs (and Cloud
//!   Storage / YouTube URIs where enabled) there; it does not fetch
//!   arbitrary web URLs, and answers those with a 400 (`INVALID_REQUEST`).
//!   GTL does not download images itself: that would make the gateway
//!   fetch URLs chosen by its clients.
//! - An assistant's tool calls are `functionCall` parts (arguments as the
//!   `args` object); tool messages `functionResponse` parts of a `user`
//!   content, named after the call they answer (or the message's `name`).
//!   A result that is a JSON object is the `response`; anything else is
//!   wrapped as `{"result": …}`. Call ids are not sent: Gemini matches
//!   responses to calls by order and name.
//! - Thought signatures: Gemini 3 rejects a replayed function call without
//!   the `thoughtSignature` it came with. The signature travels in the GTL
//!   tool call id (its format is under Events), so it is sent back as
//!   received; a first call without one (made by another provider, or by the client)
//!   carries Google's documented `skip_thought_signature_validator` for
//!   Gemini 3 and later models.
//! - Tools are `functionDeclarations` with the parameters schema as
//!   `parametersJsonSchema` (full JSON Schema; not the OpenAPI subset of
//!   `parameters`). `tool_choice`: `auto` → `AUTO`, `none` → `NONE`,
//!   `required` → `ANY`, a function → `ANY` with `allowedFunctionNames`.
//! - `generationConfig`: `max_tokens` → `maxOutputTokens`, `temperature`,
//!   `top_p` → `topP`, `stop` → `stopSequences`; omitted when none is set
//!   (Gemini's defaults apply).
//! - The model id goes into the path, without a `models/` prefix; an id
//!   with other characters than letters, digits, `-`, `.` and `_` is
//!   refused (`MODEL_NOT_FOUND`) before any request.
//!
//! Not mapped: a message's `name` (except to name a tool result), safety
//! settings, thinking configuration, candidate count (one candidate is
//! asked for and read), response schemas, cached content.
//!
//! # Events
//!
//! Each SSE event is a `GenerateContentResponse`; there is no end marker
//! (the events are separated by CRLF pairs, which the shared SSE parser
//! handles like LF). The first frame gives `status` (the `modelVersion`
//! serving the call, else the requested model); text parts are `token`s
//! (thought summaries are not); each `functionCall` part arrives complete
//! and is a `tool_call` at once, with the id Gemini gave or
//! `call_{index}_{name}` (`index` counting the answer's calls from 0),
//! plus `~signature` when it has a thought signature. `usageMetadata`
//! (cumulative) → `usage`: `tokens_in` = `promptTokenCount` (cached part
//! included) + `toolUsePromptTokenCount`, `tokens_out` =
//! `candidatesTokenCount` + `thoughtsTokenCount` (billed as output),
//! `cached_tokens` = `cachedContentTokenCount`; the cost uses the
//! model's price (the config's, else the built-in list's, else the shared
//! table's) with cached tokens at the model's cache rate.
//!
//! The body's end is the answer's end: with a `finishReason` seen, `done`
//! (`STOP` → `stop`, or `tool_calls` when functions were called;
//! `MAX_TOKENS` → `length`; other non-blocking reasons → `stop`); without
//! one, the stream was cut (`PROVIDER_ERROR`). A blocked prompt
//! (`promptFeedback.blockReason`) and a blocked answer (`finishReason`
//! `SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`, or an
//! image variant) are `CONTENT_FILTERED` errors in the phase reached;
//! `MALFORMED_FUNCTION_CALL`, `UNEXPECTED_TOOL_CALL` and
//! `TOO_MANY_TOOL_CALLS` are `PROVIDER_ERROR`s.
//!
//! Errors: HTTP errors are mapped by the shared table, refined by the
//! payload's details (an invalid API key → `UNAUTHENTICATED`, a
//! `RetryInfo` delay → the error's retry delay); an error object sent as a
//! frame is mapped the same way.
//!
//! # Models
//!
//! `models()` answers from a built-in list (context window, output limit,
//! capabilities, prices), not from the API; a config's model list replaces
//! it.

mod error;
mod models;
mod request;
pub(crate) mod stream;
mod tool_id;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::SystemTime;

use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::{CompletionRequest, ErrorCode, ProviderInfo};
use reqwest::header::HeaderMap;

use crate::config::{ConfigError, ProviderConfig};
use crate::http::{
    Headers, HttpClient, JsonBody, Sse, StreamMeta, retry_after, scrub, status_error,
};
use crate::usage::{Price, PriceTable};

/// The largest error body read from a failed response, in bytes.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The Gemini adapter. See the [module docs](self).
#[derive(Debug)]
pub struct GeminiProvider {
    config: ProviderConfig,
    client: HttpClient,
    /// The base URL, without a trailing `/`.
    base: String,
    /// The config's own prices.
    prices: PriceTable,
    /// The shared built-in prices, for models not in this module's list.
    shared_prices: PriceTable,
}

impl GeminiProvider {
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
            base,
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
            headers = headers.secret("x-goog-api-key", key.expose());
        }
        if let Some(token) = &self.config.bearer_token {
            headers = headers.bearer(token);
        }
        headers.extra(&self.config.headers).build()
    }

    /// POSTs `body`; a non-2xx answer is mapped by the shared table, then
    /// refined by what its payload's details say.
    async fn post(&self, url: &str, body: Vec<u8>) -> Result<reqwest::Response, ProviderError> {
        let response = self.client.send(url, self.headers()?, body).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let delay = retry_after(response.headers(), SystemTime::now());
        let body = self.client.read_limited(response, MAX_ERROR_BODY).await;
        let error = status_error(&self.config.name, status.as_u16(), delay, &body);
        let mut error = error::refine(error, &body);
        let secrets: Vec<String> = [&self.config.api_key, &self.config.bearer_token]
            .into_iter()
            .flatten()
            .map(|secret| secret.expose().to_owned())
            .collect();
        error.message = scrub(&error.message, &secrets);
        Err(error)
    }
}

/// Builds the adapter for [`crate::build`].
pub(crate) fn from_config(config: ProviderConfig) -> Result<Arc<dyn Provider>, ConfigError> {
    Ok(Arc::new(GeminiProvider::new(config)?))
}

#[async_trait::async_trait]
impl Provider for GeminiProvider {
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
        let model = request::model_id(&request.model)?.to_owned();
        let url = format!("{}{}", self.base, request::path(&model, request.stream)?);
        let body = request::build(&request)?;
        let body = serde_json::to_vec(&body).map_err(|e| {
            ProviderError::new(
                ErrorCode::Internal,
                format!("cannot encode the request: {e}"),
            )
        })?;
        let response = self.post(&url, body).await?;
        let mut decoder = stream::Decoder::new(&self.config.name, &model, self.price(&model));
        Ok(if request.stream {
            self.client
                .events(response, Sse::new(decoder), StreamMeta::default())
        } else {
            let unary = JsonBody::new(move |body: &[u8], out: &mut Vec<_>| {
                decoder.frame(body, out);
                decoder.finish(out);
            });
            self.client.events(response, unary, StreamMeta::default())
        })
    }
}
