//! OpenAI Chat Completions, every OpenAI-compatible server, and Azure
//! OpenAI (features `openai` and `azure`).
//!
//! One adapter, [`OpenAiProvider`], speaks `POST /chat/completions` in
//! three flavours chosen by the config's [`ProviderKind`]:
//!
//! - [`ProviderKind::OpenAi`]: `{base}/chat/completions` (base
//!   `https://api.openai.com/v1`, or `OPENAI_BASE_URL`), `Authorization:
//!   Bearer`, `max_completion_tokens`.
//! - [`ProviderKind::OpenAiCompatible`]: the same at the preset's (or the
//!   configured) base URL, the bearer key only if one is set, and the
//!   preset's dialect: `max_tokens` (what compatible servers read),
//!   `stream_options` except for Mistral (which rejects unknown fields),
//!   and a clean end after a `finish_reason` accepted without `[DONE]`.
//!   OpenRouter's `: OPENROUTER PROCESSING` comments are SSE comments, and
//!   its errors sent under HTTP 200 are in-band `error` objects: both are
//!   handled for every dialect.
//! - [`ProviderKind::Azure`]: requests go to
//!   `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={v}`,
//!   the deployment being the (alias-resolved) model name; `api-key:
//!   <key>`, or `Authorization: Bearer <Entra ID token>` when only a
//!   token is configured. Azure's content-filter annotation frames (empty
//!   `choices`) are skipped; a `content_filter` finish reason ends with
//!   `done {finish_reason: "content_filter"}`.
//!
//! # Mapping
//!
//! Messages map role by role (images, in user messages only, as
//! `image_url` parts: a URL, or a `data:` URL of the bytes); tools,
//! `tool_choice`, `stop`, `temperature` and `top_p` as is. A streaming call
//! always asks for `stream_options.include_usage`. `request.stream` picks
//! the streaming or the unary API; both give the same events.
//!
//! Not mapped: `n > 1` (GTL has one answer), logprobs, `response_format`,
//! audio, reasoning content (`reasoning_content`, `reasoning`: GTL has no
//! event for it yet), request `metadata` (OpenAI only accepts it with
//! `store`). Refusals stream as tokens: GTL has no refusal event, and the
//! text is what a user should see.
//!
//! # Models
//!
//! Usage is priced by the provider's model name, else by the requested
//! one (an Azure deployment's alias), unless the server reports a cost
//! itself (OpenRouter).
//!
//! `models()` makes no network call: it lists the config's models, or for
//! OpenAI itself a built-in list of current models. Each entry's prices
//! come from the price table when the entry has none. A compatible server
//! or Azure without configured models lists none (their model names are
//! deployment-specific).

mod request;
pub(crate) mod stream;

use std::sync::Arc;

use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::{CompletionRequest, ErrorCode, ModelInfo, ProviderInfo};

use crate::config::{Compat, ConfigError, ProviderConfig, ProviderKind, Secret};
use crate::http::{Headers, HttpClient, JsonBody, Sse, StreamMeta};
use crate::usage::PriceTable;

/// How one server's Chat Completions differs from OpenAI's.
#[derive(Debug, Clone, Copy)]
struct Dialect {
    /// The request field carrying `max_tokens`.
    max_tokens_field: &'static str,
    /// Whether the server accepts `stream_options`.
    stream_options: bool,
    /// OpenAI or Azure themselves: their documented limits apply, and a
    /// stream must end with `[DONE]`.
    official: bool,
}

impl Dialect {
    fn of(kind: ProviderKind) -> Self {
        let official = Self {
            max_tokens_field: "max_completion_tokens",
            stream_options: true,
            official: true,
        };
        let compatible = Self {
            max_tokens_field: "max_tokens",
            stream_options: true,
            official: false,
        };
        match kind {
            ProviderKind::OpenAiCompatible(Compat::Mistral) => Self {
                stream_options: false,
                ..compatible
            },
            ProviderKind::OpenAiCompatible(_) => compatible,
            _ => official,
        }
    }
}

/// Where requests go and how they authenticate.
#[derive(Debug, Clone)]
enum Endpoint {
    /// `{base}/chat/completions` (parsed once), with an optional bearer key.
    Standard {
        url: reqwest::Url,
        key: Option<Secret>,
    },
    /// An Azure resource's deployments.
    #[cfg(feature = "azure")]
    Azure {
        endpoint: String,
        api_version: String,
        auth: AzureAuth,
    },
}

#[cfg(feature = "azure")]
#[derive(Debug, Clone)]
enum AzureAuth {
    ApiKey(Secret),
    Bearer(Secret),
}

/// The OpenAI Chat Completions adapter; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ProviderConfig,
    client: HttpClient,
    endpoint: Endpoint,
    dialect: Dialect,
    prices: PriceTable,
}

impl OpenAiProvider {
    /// An adapter for `config`, whose kind is [`ProviderKind::OpenAi`],
    /// [`ProviderKind::OpenAiCompatible`] or (feature `azure`)
    /// [`ProviderKind::Azure`].
    pub fn new(config: ProviderConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let missing = |what: &str| ConfigError::Missing {
            provider: config.name.clone(),
            missing: what.to_owned(),
        };
        let endpoint = match config.kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible(_) => Endpoint::Standard {
                url: {
                    let base = config.base_url().ok_or_else(|| missing("base_url"))?;
                    format!("{base}/chat/completions").parse().map_err(|e| {
                        ConfigError::Invalid {
                            provider: config.name.clone(),
                            message: format!("base_url `{base}` is not a URL: {e}"),
                        }
                    })?
                },
                key: config
                    .api_key
                    .clone()
                    .or_else(|| config.bearer_token.clone()),
            },
            #[cfg(feature = "azure")]
            ProviderKind::Azure => Endpoint::Azure {
                endpoint: config
                    .base_url()
                    .ok_or_else(|| missing("base_url (the Azure OpenAI endpoint)"))?,
                api_version: config
                    .api_version
                    .clone()
                    .unwrap_or_else(|| crate::config::AZURE_DEFAULT_API_VERSION.to_owned()),
                auth: match (&config.api_key, &config.bearer_token) {
                    (Some(key), _) => AzureAuth::ApiKey(key.clone()),
                    (None, Some(token)) => AzureAuth::Bearer(token.clone()),
                    (None, None) => return Err(missing("api_key or bearer_token")),
                },
            },
            kind => {
                return Err(ConfigError::Invalid {
                    provider: config.name.clone(),
                    message: format!("the OpenAI adapter does not serve {kind:?}"),
                });
            }
        };
        if config.kind == ProviderKind::OpenAi
            && matches!(&endpoint, Endpoint::Standard { key: None, .. })
        {
            return Err(missing("api_key"));
        }
        let client = HttpClient::from_config(&config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                dialect: Dialect::of(config.kind),
                prices: config.price_table(),
                client,
                endpoint,
                config,
            }),
        })
    }
}

/// Builds the adapter for the config (see [`crate::build`]).
pub(crate) fn from_config(config: ProviderConfig) -> Result<Arc<dyn Provider>, ConfigError> {
    Ok(Arc::new(OpenAiProvider::new(config)?))
}

#[async_trait::async_trait]
impl Provider for OpenAiProvider {
    fn with_api_key(&self, key: &str) -> Result<Arc<dyn Provider>, ProviderError> {
        let config = self.inner.config.clone().with_api_key(key);
        let keyed = Self::new(config)
            .map_err(|e| ProviderError::new(ErrorCode::InvalidRequest, e.to_string()))?;
        Ok(Arc::new(keyed))
    }

    fn name(&self) -> &str {
        &self.inner.config.name
    }

    async fn models(&self) -> Result<ProviderInfo, ProviderError> {
        let inner = &self.inner;
        let mut models =
            if inner.config.models.is_empty() && inner.config.kind == ProviderKind::OpenAi {
                builtin_models()
            } else {
                inner.config.models.clone()
            };
        for model in &mut models {
            if model.cost_per_1k_input == 0.0
                && model.cost_per_1k_output == 0.0
                && let Some(price) = inner.prices.lookup(&inner.config.name, &model.name)
            {
                model.cost_per_1k_input = price.input_per_1k;
                model.cost_per_1k_output = price.output_per_1k;
            }
        }
        Ok(ProviderInfo {
            provider: inner.config.name.clone(),
            models,
        })
    }

    async fn stream(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let inner = &self.inner;
        let name = inner.config.name.as_str();
        let model = inner.config.resolve_model(&request.model).to_owned();
        if model.is_empty() {
            return Err(ProviderError::new(
                ErrorCode::InvalidRequest,
                format!("{name}: the request names no model"),
            ));
        }
        let body = request::body(&request, &model, &inner.dialect, request.stream)?;
        let body = serde_json::to_vec(&body).map_err(|error| {
            ProviderError::new(
                ErrorCode::Internal,
                format!("{name}: cannot encode the request: {error}"),
            )
        })?;
        let (url, headers) = match &inner.endpoint {
            Endpoint::Standard { url, key } => {
                let headers = match key {
                    Some(key) => Headers::new().bearer(key),
                    None => Headers::new(),
                };
                (url.clone(), headers)
            }
            #[cfg(feature = "azure")]
            Endpoint::Azure {
                endpoint,
                api_version,
                auth,
            } => {
                let url = format!(
                    "{endpoint}/openai/deployments/{}/chat/completions?api-version={}",
                    percent_encode(&model),
                    percent_encode(api_version)
                );
                let url = reqwest::Url::parse(&url).map_err(|e| {
                    ProviderError::new(
                        ErrorCode::InvalidRequest,
                        format!("{name}: `{url}` is not a URL: {e}"),
                    )
                })?;
                let headers = match auth {
                    AzureAuth::ApiKey(key) => Headers::new().secret("api-key", key.expose()),
                    AzureAuth::Bearer(token) => Headers::new().bearer(token),
                };
                (url, headers)
            }
        };
        let accept = if request.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let headers = headers
            .header("accept", accept)
            .extra(&inner.config.headers)
            .build()?;
        let response = inner.client.post(url, headers, body).await?;
        // A deployment or alias name may not be in the price table; the
        // requested model name may.
        let price = inner
            .prices
            .lookup(name, &model)
            .or_else(|| inner.prices.lookup(name, &request.model));
        let meta = StreamMeta::streaming(name, &model).with_price(price);
        Ok(if request.stream {
            let handler = stream::ChunkHandler::new(name, !inner.dialect.official);
            inner.client.events(response, Sse::new(handler), meta)
        } else {
            let provider = name.to_owned();
            let decoder = JsonBody::new(move |body: &[u8], out: &mut Vec<gtl_proto::Body>| {
                stream::decode_unary(&provider, body, out);
            });
            inner.client.events(response, decoder, meta)
        })
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
#[cfg(feature = "azure")]
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// OpenAI's current models: name, context window, max output tokens,
/// vision.
const BUILTIN_MODELS: &[(&str, u32, u32, bool)] = &[
    ("gpt-5", 400_000, 128_000, true),
    ("gpt-5-mini", 400_000, 128_000, true),
    ("gpt-5-nano", 400_000, 128_000, true),
    ("gpt-4.1", 1_047_576, 32_768, true),
    ("gpt-4.1-mini", 1_047_576, 32_768, true),
    ("gpt-4.1-nano", 1_047_576, 32_768, true),
    ("gpt-4o", 128_000, 16_384, true),
    ("gpt-4o-mini", 128_000, 16_384, true),
    ("o3", 200_000, 100_000, true),
    ("o4-mini", 200_000, 100_000, true),
];

fn builtin_models() -> Vec<ModelInfo> {
    BUILTIN_MODELS
        .iter()
        .map(|&(name, context_window, max_tokens, vision)| ModelInfo {
            name: name.to_owned(),
            context_window,
            max_tokens,
            supports_streaming: true,
            supports_functions: true,
            supports_vision: vision,
            cost_per_1k_input: 0.0,
            cost_per_1k_output: 0.0,
            health: String::new(),
        })
        .collect()
}
