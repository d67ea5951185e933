//! The built-in list of Bedrock models `models()` reports.
//!
//! Bedrock lists its models through its control-plane API
//! (`ListFoundationModels`, another endpoint and IAM permission), without
//! limits or prices, so a short list of well-known Converse models is kept
//! here, with the limits of AWS's model cards. It is not exhaustive: any
//! model id or inference-profile ARN the account can use is passed through,
//! and configuration can replace the list.

use gtl_proto::ModelInfo;

use crate::usage::PriceTable;

/// `(model id, context window, max output tokens, reads images)`.
const MODELS: &[(&str, u32, u32, bool)] = &[
    (
        "anthropic.claude-sonnet-4-20250514-v1:0",
        200_000,
        64_000,
        true,
    ),
    (
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        200_000,
        64_000,
        true,
    ),
    (
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        200_000,
        8_192,
        true,
    ),
    (
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        200_000,
        8_192,
        false,
    ),
    (
        "anthropic.claude-3-haiku-20240307-v1:0",
        200_000,
        4_096,
        true,
    ),
    ("amazon.nova-pro-v1:0", 300_000, 10_000, true),
    ("amazon.nova-lite-v1:0", 300_000, 10_000, true),
    ("amazon.nova-micro-v1:0", 128_000, 10_000, false),
    ("meta.llama3-1-70b-instruct-v1:0", 128_000, 2_048, false),
    ("meta.llama3-1-8b-instruct-v1:0", 128_000, 2_048, false),
];

/// The built-in models, priced from `prices` (as served by `provider`).
pub(crate) fn builtin(provider: &str, prices: &PriceTable) -> Vec<ModelInfo> {
    MODELS
        .iter()
        .map(|&(name, context_window, max_tokens, vision)| {
            let price = prices.lookup(provider, name);
            ModelInfo {
                name: name.to_owned(),
                context_window,
                max_tokens,
                supports_streaming: true,
                supports_functions: true,
                supports_vision: vision,
                cost_per_1k_input: price.map_or(0.0, |p| p.input_per_1k),
                cost_per_1k_output: price.map_or(0.0, |p| p.output_per_1k),
                health: String::new(),
            }
        })
        .collect()
}

/// The foundation-model id inside a model id, inference-profile id or ARN:
/// `us.anthropic.claude-…` and `arn:…:inference-profile/eu.amazon.nova-…`
/// are priced as the model they route to.
pub(crate) fn base_model_id(model: &str) -> &str {
    let id = model.rsplit('/').next().unwrap_or(model);
    for geo in [
        "us-gov.", "global.", "apac.", "us.", "eu.", "jp.", "au.", "ca.",
    ] {
        if let Some(rest) = id.strip_prefix(geo) {
            return rest;
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_profiles_price_as_their_model() {
        assert_eq!(
            base_model_id("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            "anthropic.claude-3-5-haiku-20241022-v1:0"
        );
        assert_eq!(
            base_model_id(
                "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.amazon.nova-lite-v1:0"
            ),
            "amazon.nova-lite-v1:0"
        );
        assert_eq!(
            base_model_id("amazon.nova-pro-v1:0"),
            "amazon.nova-pro-v1:0"
        );
    }

    #[test]
    fn the_builtin_list_is_priced() {
        let models = builtin("bedrock", &PriceTable::builtin());
        let haiku = models
            .iter()
            .find(|m| m.name == "anthropic.claude-3-haiku-20240307-v1:0")
            .unwrap();
        assert!((haiku.cost_per_1k_input - 0.000_25).abs() < 1e-12);
        assert!((haiku.cost_per_1k_output - 0.001_25).abs() < 1e-12);
        assert!(
            models
                .iter()
                .all(|m| m.supports_streaming && m.context_window > 0)
        );
    }
}
