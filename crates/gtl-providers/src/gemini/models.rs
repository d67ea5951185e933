//! The built-in list of Gemini models: context window, output limit,
//! capabilities and list prices (paid tier).
//!
//! Gemini's `models.list` gives limits but no prices, so the list is kept
//! here and served by `models()` without a network call. Other model ids
//! (previews, Gemma, tuned models) are still served, just not listed.
//! Prices are those of prompts up to 200k tokens: the second tier of the
//! Pro models (about twice as much for longer prompts) is not modelled.

use gtl_proto::ModelInfo;

use crate::usage::Price;

/// One model of the list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Model {
    pub(crate) name: &'static str,
    /// Input context window, in tokens.
    pub(crate) context_window: u32,
    /// The largest `maxOutputTokens`.
    pub(crate) max_output: u32,
    /// USD per million input tokens (prompts up to 200k tokens).
    pub(crate) input_per_mtok: f64,
    /// USD per million output tokens, thinking included (prompts up to
    /// 200k tokens).
    pub(crate) output_per_mtok: f64,
    /// What a cached input token costs, as a fraction of the input price.
    pub(crate) cached_ratio: f64,
}

/// The cache rate of a model not in the list: Gemini 2.0's, the highest.
pub(crate) const DEFAULT_CACHED_RATIO: f64 = 0.25;

const WINDOW: u32 = 1_048_576;

/// Every listed model; all stream, call functions and read images.
pub(crate) const MODELS: &[Model] = &[
    Model {
        name: "gemini-3-pro-preview",
        context_window: WINDOW,
        max_output: 65_536,
        input_per_mtok: 2.0,
        output_per_mtok: 12.0,
        cached_ratio: 0.1,
    },
    Model {
        name: "gemini-3-flash-preview",
        context_window: WINDOW,
        max_output: 65_536,
        input_per_mtok: 0.5,
        output_per_mtok: 3.0,
        cached_ratio: 0.1,
    },
    Model {
        name: "gemini-2.5-pro",
        context_window: WINDOW,
        max_output: 65_536,
        input_per_mtok: 1.25,
        output_per_mtok: 10.0,
        cached_ratio: 0.1,
    },
    Model {
        name: "gemini-2.5-flash",
        context_window: WINDOW,
        max_output: 65_536,
        input_per_mtok: 0.3,
        output_per_mtok: 2.5,
        cached_ratio: 0.1,
    },
    Model {
        name: "gemini-2.5-flash-lite",
        context_window: WINDOW,
        max_output: 65_536,
        input_per_mtok: 0.1,
        output_per_mtok: 0.4,
        cached_ratio: 0.1,
    },
    Model {
        name: "gemini-2.0-flash",
        context_window: WINDOW,
        max_output: 8_192,
        input_per_mtok: 0.1,
        output_per_mtok: 0.4,
        cached_ratio: 0.25,
    },
    Model {
        name: "gemini-2.0-flash-lite",
        context_window: WINDOW,
        max_output: 8_192,
        input_per_mtok: 0.075,
        output_per_mtok: 0.3,
        cached_ratio: 0.25,
    },
];

/// The listed model `name`, also under a numbered version id
/// (`gemini-2.0-flash-001`).
pub(crate) fn find(name: &str) -> Option<&'static Model> {
    let name = name.strip_prefix("models/").unwrap_or(name);
    let exact = |name: &str| MODELS.iter().find(|model| model.name == name);
    exact(name).or_else(|| {
        let (base, version) = name.rsplit_once('-')?;
        let numbered = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
        if numbered { exact(base) } else { None }
    })
}

impl Model {
    /// The model's list price (prompts up to 200k tokens).
    pub(crate) fn price(&self) -> Price {
        Price::per_1m(self.input_per_mtok, self.output_per_mtok)
    }

    /// The model as GTL describes it, at `price`.
    pub(crate) fn info(&self, price: Price) -> ModelInfo {
        ModelInfo {
            name: self.name.to_owned(),
            context_window: self.context_window,
            max_tokens: self.max_output,
            supports_streaming: true,
            supports_functions: true,
            supports_vision: true,
            cost_per_1k_input: price.input_per_1k,
            cost_per_1k_output: price.output_per_1k,
            health: String::new(),
        }
    }
}

/// What a call costs at `price`: cached prompt tokens at `cached_ratio`
/// times the input price, the rest of the prompt at the input price, output
/// (thinking included) at the output price.
pub(crate) fn cost(price: Price, cached_ratio: f64, prompt: u64, cached: u64, output: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let tokens = |n: u64| n as f64 / 1000.0;
    (tokens(prompt.saturating_sub(cached)) + tokens(cached) * cached_ratio) * price.input_per_1k
        + tokens(output) * price.output_per_1k
}
