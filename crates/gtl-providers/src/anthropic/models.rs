//! The built-in list of Anthropic models: context window, output limit,
//! capabilities and list prices.
//!
//! Anthropic's `/v1/models` lists ids but no prices, so the list is kept
//! here and served by `models()` without a network call. Figures are
//! Anthropic's published ones for the models named in its API definition
//! (Claude Opus 4.7 and Mythos Preview are left out: their limits and
//! prices were not published with it). Models not listed are still served
//! (the name is passed through); they are priced from the shared table or
//! configuration, if at all.

use gtl_proto::ModelInfo;

use crate::usage::Price;

/// One model of the list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Model {
    /// The model id (an alias that follows the newest snapshot).
    pub(crate) name: &'static str,
    /// Dated snapshot ids that are the same model.
    pub(crate) snapshots: &'static [&'static str],
    /// Input context window, in tokens.
    pub(crate) context_window: u32,
    /// The largest `max_tokens` the model takes.
    pub(crate) max_output: u32,
    /// USD per million input tokens.
    pub(crate) input_per_mtok: f64,
    /// USD per million output tokens.
    pub(crate) output_per_mtok: f64,
}

/// Every listed model; all stream, call tools and read images.
pub(crate) const MODELS: &[Model] = &[
    Model {
        name: "claude-opus-4-6",
        snapshots: &[],
        context_window: 200_000,
        max_output: 128_000,
        input_per_mtok: 5.0,
        output_per_mtok: 25.0,
    },
    Model {
        name: "claude-sonnet-4-6",
        snapshots: &[],
        context_window: 200_000,
        max_output: 64_000,
        input_per_mtok: 3.0,
        output_per_mtok: 15.0,
    },
    Model {
        name: "claude-opus-4-5",
        snapshots: &["claude-opus-4-5-20251101"],
        context_window: 200_000,
        max_output: 64_000,
        input_per_mtok: 5.0,
        output_per_mtok: 25.0,
    },
    Model {
        name: "claude-sonnet-4-5",
        snapshots: &["claude-sonnet-4-5-20250929"],
        context_window: 200_000,
        max_output: 64_000,
        input_per_mtok: 3.0,
        output_per_mtok: 15.0,
    },
    Model {
        name: "claude-haiku-4-5",
        snapshots: &["claude-haiku-4-5-20251001"],
        context_window: 200_000,
        max_output: 64_000,
        input_per_mtok: 1.0,
        output_per_mtok: 5.0,
    },
    Model {
        name: "claude-opus-4-1",
        snapshots: &["claude-opus-4-1-20250805"],
        context_window: 200_000,
        max_output: 32_000,
        input_per_mtok: 15.0,
        output_per_mtok: 75.0,
    },
    Model {
        name: "claude-opus-4-0",
        snapshots: &["claude-opus-4-20250514"],
        context_window: 200_000,
        max_output: 32_000,
        input_per_mtok: 15.0,
        output_per_mtok: 75.0,
    },
    Model {
        name: "claude-sonnet-4-0",
        snapshots: &["claude-sonnet-4-20250514"],
        context_window: 200_000,
        max_output: 64_000,
        input_per_mtok: 3.0,
        output_per_mtok: 15.0,
    },
    Model {
        name: "claude-3-haiku-20240307",
        snapshots: &[],
        context_window: 200_000,
        max_output: 4_096,
        input_per_mtok: 0.25,
        output_per_mtok: 1.25,
    },
];

/// `max_tokens` when the request sets none: the model's output limit, at
/// most this. Larger answers need an explicit `max_tokens`; a bounded
/// default keeps a forgotten limit from making a long, costly generation
/// (and keeps unary calls well inside the API's time limit for them).
pub const DEFAULT_MAX_TOKENS: u32 = 8_192;

/// `max_tokens` for a model not in the list.
pub(crate) const UNKNOWN_MODEL_MAX_TOKENS: u32 = 4_096;

/// The listed model `name` (an alias or a dated snapshot id).
pub(crate) fn find(name: &str) -> Option<&'static Model> {
    MODELS
        .iter()
        .find(|model| model.name == name || model.snapshots.contains(&name))
}

/// The `max_tokens` sent when the request has none.
pub(crate) fn default_max_tokens(name: &str) -> u32 {
    find(name).map_or(UNKNOWN_MODEL_MAX_TOKENS, |model| {
        model.max_output.min(DEFAULT_MAX_TOKENS)
    })
}

impl Model {
    /// The model's list price.
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
