//! AWS Bedrock's Converse and ConverseStream APIs (feature `bedrock`).
//!
//! [`BedrockProvider`] sends `POST {base}/model/{modelId}/converse-stream`
//! (or `/converse` for unary calls), where `base` is
//! `https://bedrock-runtime.{region}.amazonaws.com` unless overridden (for
//! tests, VPC interface endpoints or FIPS endpoints). Each request is
//! signed with AWS Signature Version 4 (`aws-sigv4`, signing name
//! `bedrock`) from static credentials: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, optionally `AWS_SESSION_TOKEN`, and the region
//! from `AWS_REGION` / `AWS_DEFAULT_REGION`. The streamed answer is the
//! binary `application/vnd.amazon.eventstream` format, framed with
//! `aws-smithy-eventstream` (both CRC32s checked).
//!
//! # Mapping
//!
//! | GTL | Converse |
//! |---|---|
//! | system messages | top-level `system` text blocks |
//! | user / assistant messages | `messages[]` turns; consecutive messages of one role merge into one turn |
//! | text parts | `text` blocks (empty ones dropped: Converse rejects blank text) |
//! | image parts with `data` | `image {format, source: {bytes}}` (png, jpeg, gif, webp; from `media_type`, else sniffed) |
//! | image parts with an `s3://` URL | `image {format, source: {s3Location: {uri}}}` |
//! | other image URLs | refused: `INVALID_REQUEST` |
//! | assistant `tool_calls` | `toolUse {toolUseId, name, input}` (arguments must be a JSON object) |
//! | tool messages | `toolResult {toolUseId, content: [text…]}` in a user turn |
//! | `tools` | `toolConfig.tools[].toolSpec {name, description, inputSchema.json}` |
//! | `tool_choice` auto / required / function | `toolChoice` `auto` / `any` / `tool {name}`; none: no `toolConfig` (kept without `toolChoice` when the history has tool blocks, which Converse requires) |
//! | `max_tokens`, `temperature`, `top_p`, `stop` | `inferenceConfig {maxTokens, temperature, topP, stopSequences}` |
//! | `contentBlockDelta` text | `token` |
//! | `contentBlockStart` toolUse + `contentBlockDelta` toolUse input fragments + `contentBlockStop` | one `tool_call` per block (blocks may interleave) |
//! | `metadata.usage` | `usage`: `tokens_in` = input + cache read + cache write, `cached_tokens` = cache read; priced from the table (inference profiles like `us.…` priced as their model) |
//! | `messageStop.stopReason` | `done`: `end_turn`/`stop_sequence` → `stop`, `tool_use` → `tool_calls`, `max_tokens`/`model_context_window_exceeded` → `length`, `guardrail_intervened`/`content_filtered` → `content_filter` |
//! | exception frames | `error`: `throttlingException` → `RATE_LIMIT`, `validationException` → `INVALID_REQUEST` (`CONTEXT_LENGTH_EXCEEDED` for too-long input), `serviceUnavailableException` → `PROVIDER_UNAVAILABLE`, `modelStreamErrorException` → `PROVIDER_ERROR`, `internalServerException` → `PROVIDER_UNAVAILABLE`, `modelTimeoutException` → `PROVIDER_TIMEOUT`, `accessDeniedException` → `PERMISSION_DENIED`, `resourceNotFoundException` → `MODEL_NOT_FOUND` |
//! | HTTP errors | the shared status mapping, refined by `x-amzn-ErrorType` (e.g. a 403 `UnrecognizedClientException` is `UNAUTHENTICATED`, a 424 `ModelErrorException` `PROVIDER_ERROR`) |
//!
//! Not mapped: reasoning and citation blocks, documents and video, guardrail
//! configuration and traces, `additionalModelRequestFields`, prompt caching
//! checkpoints (`cachePoint`), request `metadata` (GTL's metadata carries
//! routing data, not Bedrock's invocation-log tags). Credentials come from
//! configuration or the environment only: no profiles, SSO, web identity
//! or instance roles.

pub(crate) mod decode;
mod eventstream;
mod models;
mod request;
mod sign;

use std::sync::Arc;
use std::time::SystemTime;

use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::{CompletionRequest, ErrorCode, ProviderInfo};

use self::decode::{ConverseStreamDecoder, converse_response, exception_code};
use crate::config::{AwsCredentials, ConfigError, ProviderConfig, ProviderKind};
use crate::http::{
    ErrorBody, Headers, HttpClient, JsonBody, StreamMeta, retry_after, scrub, status_error,
};
use crate::usage::{Price, PriceTable};

/// The provider's default name in requests and routing.
pub(crate) const NAME: &str = "bedrock";

/// The largest error body read from a failed response, in bytes.
const MAX_ERROR_BODY: usize = 64 << 10;

/// AWS Bedrock through the Converse API. See the [module docs](self) for
/// what is mapped.
#[derive(Debug)]
pub struct BedrockProvider {
    name: Arc<str>,
    config: ProviderConfig,
    region: String,
    base_url: String,
    credentials: AwsCredentials,
    client: HttpClient,
    prices: PriceTable,
}

impl BedrockProvider {
    /// A provider for `config`, which needs a region and AWS credentials;
    /// its base URL, when set, replaces
    /// `https://bedrock-runtime.{region}.amazonaws.com`.
    pub fn new(config: ProviderConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let missing = |what: &str| ConfigError::Missing {
            provider: config.name.clone(),
            missing: what.to_owned(),
        };
        let region = config
            .region
            .clone()
            .ok_or_else(|| missing("region (AWS_REGION)"))?;
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError::Invalid {
                provider: config.name.clone(),
                message: format!("`{region}` is not an AWS region name"),
            });
        }
        let credentials = config
            .aws
            .clone()
            .ok_or_else(|| missing("AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"))?;
        let base_url = config
            .base_url()
            .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            client: HttpClient::from_config(&config)?,
            prices: config.price_table(),
            region,
            base_url,
            credentials,
            config,
        })
    }

    /// A provider for `region` with static `credentials` and the public
    /// endpoint.
    pub fn with_credentials(
        region: impl Into<String>,
        credentials: AwsCredentials,
    ) -> Result<Self, ConfigError> {
        Self::new(
            ProviderConfig::new(ProviderKind::Bedrock)
                .with_region(region)
                .with_aws(credentials),
        )
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The price of `model`, or of the foundation model an inference
    /// profile routes to.
    fn price(&self, model: &str) -> Option<Price> {
        self.prices
            .lookup(&self.name, model)
            .or_else(|| self.prices.lookup(NAME, models::base_model_id(model)))
    }

    /// The signed headers of a request.
    fn headers(
        &self,
        url: &str,
        accept: &str,
        body: &[u8],
    ) -> Result<reqwest::header::HeaderMap, ProviderError> {
        let signed_over = [("content-type", "application/json"), ("accept", accept)];
        let signature = sign::sign_request(
            &self.credentials,
            &self.region,
            "POST",
            url,
            &signed_over,
            body,
            SystemTime::now(),
        )?;
        let mut headers = Headers::new();
        for (name, value) in signed_over {
            headers = headers.header(name, value);
        }
        for (name, value) in &signature {
            headers = match *name {
                "authorization" | "x-amz-security-token" => headers.secret(name, value),
                _ => headers.header(name, value),
            };
        }
        headers.extra(&self.config.headers).build()
    }

    /// The GTL error for a non-2xx answer: the shared mapping, refined by
    /// the exception named in `x-amzn-ErrorType` (or the body's `__type`).
    async fn http_error(&self, response: reqwest::Response) -> ProviderError {
        let status = response.status().as_u16();
        let delay = retry_after(response.headers(), SystemTime::now());
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.client.read_limited(response, MAX_ERROR_BODY).await;
        let mut error = status_error(&self.name, status, delay, &body);
        // The exception's name: the header, else the body's `__type`
        // (`com.amazon.coral.validate#ValidationException`) or `code`.
        let parsed = ErrorBody::parse(&body);
        let from_body = parsed
            .kind
            .split_whitespace()
            .map(|kind| kind.rsplit('#').next().unwrap_or(kind).to_owned());
        if let Some(code) = error_type
            .into_iter()
            .chain(from_body)
            .find_map(|name| exception_code(&name, &parsed.message))
        {
            error.code = code;
        }
        let secrets: Vec<String> = self
            .credentials
            .session_token
            .iter()
            .map(|t| t.expose().to_owned())
            .collect();
        error.message = scrub(&error.message, &secrets);
        error
    }
}

#[async_trait::async_trait]
impl Provider for BedrockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn models(&self) -> Result<ProviderInfo, ProviderError> {
        Ok(self
            .config
            .provider_info(|| models::builtin(&self.name, &self.prices)))
    }

    async fn stream(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let model = self.config.resolve_model(&request.model).to_owned();
        if model.is_empty() {
            return Err(ProviderError::new(
                ErrorCode::InvalidRequest,
                "bedrock needs a model id",
            ));
        }
        let body = serde_json::to_vec(&request::converse_request(&request)?).map_err(|e| {
            ProviderError::new(
                ErrorCode::Internal,
                format!("cannot encode the request: {e}"),
            )
        })?;
        let url = format!("{}{}", self.base_url, request::path(&model, request.stream));
        let accept = if request.stream {
            "application/vnd.amazon.eventstream"
        } else {
            "application/json"
        };
        let headers = self.headers(&url, accept, &body)?;
        let response = self.client.send(&url, headers, body).await?;
        if !response.status().is_success() {
            return Err(self.http_error(response).await);
        }
        let meta = StreamMeta::streaming(&self.name, &model).with_price(self.price(&model));
        let provider = Arc::clone(&self.name);
        Ok(if request.stream {
            self.client
                .events(response, ConverseStreamDecoder::new(provider), meta)
        } else {
            let decode =
                move |body: &[u8], out: &mut Vec<_>| converse_response(&provider, body, out);
            self.client.events(response, JsonBody::new(decode), meta)
        })
    }
}

/// Builds the provider `config` describes (see [`crate::build`]).
pub(crate) fn from_config(config: ProviderConfig) -> Result<Arc<dyn Provider>, ConfigError> {
    Ok(Arc::new(BedrockProvider::new(config)?))
}
