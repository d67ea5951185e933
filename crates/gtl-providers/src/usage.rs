//! Token usage: merging reports from several sources, and what it costs.
//!
//! Providers report usage in pieces: Anthropic sends input tokens at the
//! start and output tokens at the end, Gemini repeats cumulative counts in
//! every chunk, OpenAI sends one usage chunk at the very end. [`merge_usage`]
//! folds them: for each field the latest non-zero value wins, and a zero
//! (a field the source did not know) never overwrites a known count.
//!
//! [`PriceTable`] holds USD prices per 1000 input and output tokens by
//! model, with a built-in table of well-known models that configuration
//! overrides ([`ProviderConfig::prices`](crate::ProviderConfig::prices)).
//! `cost = tokens_in / 1000 × input + tokens_out / 1000 × output`; cached
//! input tokens are charged at the input price (an upper bound: providers
//! discount them).

use std::collections::{BTreeMap, HashMap};

use gtl_proto::Usage;

/// Folds `from` into `into`: each non-zero field of `from` replaces the
/// one in `into`; zeros are ignored.
pub fn merge_usage(into: &mut Usage, from: &Usage) {
    if from.tokens_in != 0 {
        into.tokens_in = from.tokens_in;
    }
    if from.tokens_out != 0 {
        into.tokens_out = from.tokens_out;
    }
    if from.cached_tokens != 0 {
        into.cached_tokens = from.cached_tokens;
    }
    if from.cost != 0.0 {
        into.cost = from.cost;
    }
}

/// The price of a model, in USD per 1000 tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Price {
    /// USD per 1000 input (prompt) tokens.
    pub input_per_1k: f64,
    /// USD per 1000 output (completion) tokens.
    pub output_per_1k: f64,
}

impl Price {
    /// A price from USD per 1000 input and output tokens.
    pub const fn per_1k(input: f64, output: f64) -> Self {
        Self {
            input_per_1k: input,
            output_per_1k: output,
        }
    }

    /// A price from USD per million tokens, as price lists give it.
    pub const fn per_1m(input: f64, output: f64) -> Self {
        Self::per_1k(input / 1000.0, output / 1000.0)
    }

    /// What `usage` costs, in USD.
    pub fn cost(&self, usage: &Usage) -> f64 {
        usage.tokens_in as f64 / 1000.0 * self.input_per_1k
            + usage.tokens_out as f64 / 1000.0 * self.output_per_1k
    }
}

/// Prices by model.
///
/// Keys are model names or prefixes, optionally scoped to a provider
/// (`"openrouter/openai/gpt-4o"`). [`lookup`](Self::lookup) tries, in
/// order: `provider/model`, `model`, then the model's last `/` segment
/// (OpenRouter-style `vendor/model` names); each first exactly, then as the
/// longest key the name starts with followed by `-`, `:` or `@` (so
/// `gpt-4o-2024-08-06` is priced as `gpt-4o`, while `gpt-4o-mini` has its
/// own entry).
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: BTreeMap<String, Price>,
    /// Answers already looked up, by provider and model: a lookup that
    /// finds nothing scans every entry for a prefix, and a provider looks
    /// up every call's model.
    memo: std::sync::Arc<std::sync::RwLock<HashMap<String, Option<Price>>>>,
}

/// Models remembered at most; past it the memo starts over (model names
/// come from requests, so they are not a fixed set).
const MEMO_MAX: usize = 4096;

/// The longest provider and model names remembered, together.
const MEMO_KEY_MAX: usize = 128;

impl PartialEq for PriceTable {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

/// The built-in prices (USD per million tokens, input and output), from
/// the providers' public price lists.
const BUILTIN: &[(&str, f64, f64)] = &[
    // OpenAI.
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4-turbo", 10.0, 30.0),
    ("gpt-4", 30.0, 60.0),
    ("gpt-3.5-turbo", 0.5, 1.5),
    ("o1", 15.0, 60.0),
    ("o1-mini", 1.1, 4.4),
    ("o3", 2.0, 8.0),
    ("o3-mini", 1.1, 4.4),
    ("o4-mini", 1.1, 4.4),
    // Anthropic.
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("claude-3-opus", 15.0, 75.0),
    ("claude-3-haiku", 0.25, 1.25),
    // Google Gemini (the prices of prompts up to 200k tokens).
    ("gemini-2.5-pro", 1.25, 10.0),
    ("gemini-2.5-flash", 0.3, 2.5),
    ("gemini-2.5-flash-lite", 0.1, 0.4),
    ("gemini-2.0-flash", 0.1, 0.4),
    ("gemini-2.0-flash-lite", 0.075, 0.3),
    ("gemini-1.5-pro", 1.25, 5.0),
    ("gemini-1.5-flash", 0.075, 0.3),
    // AWS Bedrock model ids (on-demand, us-east-1).
    ("anthropic.claude-3-5-sonnet", 3.0, 15.0),
    ("anthropic.claude-3-7-sonnet", 3.0, 15.0),
    ("anthropic.claude-sonnet-4", 3.0, 15.0),
    ("anthropic.claude-3-5-haiku", 0.8, 4.0),
    ("anthropic.claude-3-haiku", 0.25, 1.25),
    ("amazon.nova-pro", 0.8, 3.2),
    ("amazon.nova-lite", 0.06, 0.24),
    ("amazon.nova-micro", 0.035, 0.14),
    ("meta.llama3-1-70b-instruct", 0.72, 0.72),
    ("meta.llama3-1-8b-instruct", 0.22, 0.22),
    // Compatible hosted services.
    ("deepseek/deepseek-chat", 0.27, 1.1),
    ("deepseek/deepseek-reasoner", 0.55, 2.19),
    ("groq/llama-3.3-70b-versatile", 0.59, 0.79),
    ("groq/llama-3.1-8b-instant", 0.05, 0.08),
    ("mistral/mistral-large", 2.0, 6.0),
    ("mistral/mistral-small", 0.2, 0.6),
    // Local servers cost nothing per token.
    ("ollama/", 0.0, 0.0),
    ("vllm/", 0.0, 0.0),
    ("llamacpp/", 0.0, 0.0),
    ("lmstudio/", 0.0, 0.0),
];

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in table of well-known models.
    pub fn builtin() -> Self {
        Self {
            entries: BUILTIN
                .iter()
                .map(|&(model, input, output)| (model.to_owned(), Price::per_1m(input, output)))
                .collect(),
            memo: Default::default(),
        }
    }

    /// Sets the price of a model or model prefix (a key ending in `/`
    /// prices every model of a provider).
    pub fn insert(&mut self, model: impl Into<String>, price: Price) -> &mut Self {
        self.entries
            .insert(model.into().to_ascii_lowercase(), price);
        // A fresh memo: clones made before keep theirs, for their entries.
        self.memo = Default::default();
        self
    }

    /// The models and prefixes priced, as keyed (lowercase; a key ending
    /// in `/` prices a whole provider).
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The price of `model` served by `provider`; see the type's docs for
    /// the order of lookups.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<Price> {
        // Model names come from requests: a long one is looked up, never
        // kept, so the memo stays a few hundred kilobytes at most.
        if provider.len() + model.len() > MEMO_KEY_MAX {
            return self.find(provider, model);
        }
        // Provider and model, split at the first newline (a configured
        // provider name has none).
        let mut key = String::with_capacity(provider.len() + 1 + model.len());
        key.push_str(provider);
        key.push('\n');
        key.push_str(model);
        let read = self.memo.read().unwrap_or_else(|e| e.into_inner());
        if let Some(price) = read.get(&key) {
            return *price;
        }
        drop(read);
        let price = self.find(provider, model);
        let mut memo = self.memo.write().unwrap_or_else(|e| e.into_inner());
        if memo.len() >= MEMO_MAX {
            memo.clear();
        }
        memo.insert(key, price);
        price
    }

    fn find(&self, provider: &str, model: &str) -> Option<Price> {
        let model = model.to_ascii_lowercase();
        let scoped = format!("{}/{model}", provider.to_ascii_lowercase());
        let last = model.rsplit('/').next().unwrap_or(&model).to_owned();
        for name in [scoped.as_str(), model.as_str(), last.as_str()] {
            if let Some(price) = self.entries.get(name) {
                return Some(*price);
            }
            if let Some(price) = self.longest_prefix(name) {
                return Some(price);
            }
        }
        None
    }

    fn longest_prefix(&self, name: &str) -> Option<Price> {
        self.entries
            .iter()
            .filter(|(key, _)| {
                name.strip_prefix(key.as_str()).is_some_and(|rest| {
                    key.ends_with('/')
                        || rest.starts_with('-')
                        || rest.starts_with(':')
                        || rest.starts_with('@')
                })
            })
            .max_by_key(|(key, _)| key.len())
            .map(|(_, price)| *price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(tokens_in: u64, tokens_out: u64) -> Usage {
        Usage {
            tokens_in,
            tokens_out,
            ..Usage::default()
        }
    }

    #[test]
    fn remembered_answers_follow_later_prices() {
        let mut table = PriceTable::builtin();
        assert_eq!(table.lookup("openai", "my-model"), None);
        // Asked again: the remembered answer.
        assert_eq!(table.lookup("openai", "my-model"), None);
        let price = Price::per_1m(1.0, 2.0);
        let before = table.clone();
        table.insert("my-model", price);
        assert_eq!(table.lookup("openai", "my-model"), Some(price));
        assert_eq!(table.lookup("OpenAI", "My-Model-2025"), Some(price));
        // A clone made before keeps its own table and answers.
        assert_eq!(before.lookup("openai", "my-model"), None);
        // A name too long to remember is still priced.
        let long = format!("my-model-{}", "x".repeat(MEMO_KEY_MAX));
        assert_eq!(table.lookup("openai", &long), Some(price));
        assert!(
            table
                .memo
                .read()
                .unwrap()
                .keys()
                .all(|k| k.len() <= MEMO_KEY_MAX + 1)
        );
    }

    #[test]
    fn zeros_never_overwrite() {
        let mut merged = Usage::default();
        merge_usage(&mut merged, &usage(26, 0));
        merge_usage(&mut merged, &usage(0, 12));
        merge_usage(&mut merged, &usage(0, 0));
        assert_eq!(merged, usage(26, 12));
        merge_usage(&mut merged, &usage(0, 30));
        assert_eq!(merged, usage(26, 30));
    }

    #[test]
    fn lookups_go_from_specific_to_general() {
        let mut table = PriceTable::builtin();
        let gpt4o = Price::per_1m(2.5, 10.0);
        assert_eq!(table.lookup("openai", "gpt-4o"), Some(gpt4o));
        assert_eq!(table.lookup("openai", "gpt-4o-2024-08-06"), Some(gpt4o));
        assert_eq!(
            table.lookup("openai", "gpt-4o-mini-2024-07-18"),
            Some(Price::per_1m(0.15, 0.6))
        );
        assert_eq!(table.lookup("openai", "gpt-4o2"), None);
        assert_eq!(table.lookup("openrouter", "openai/gpt-4o"), Some(gpt4o));
        assert_eq!(
            table.lookup("ollama", "llama3.2:3b"),
            Some(Price::per_1k(0.0, 0.0))
        );
        assert_eq!(table.lookup("groq", "mystery"), None);

        table.insert("openrouter/openai/gpt-4o", Price::per_1k(1.0, 2.0));
        assert_eq!(
            table.lookup("openrouter", "openai/gpt-4o"),
            Some(Price::per_1k(1.0, 2.0))
        );
        assert_eq!(table.lookup("openai", "gpt-4o"), Some(gpt4o));
    }

    #[test]
    fn cost_is_per_thousand_tokens() {
        let price = Price::per_1k(0.01, 0.03);
        let cost = price.cost(&usage(2000, 500));
        assert!((cost - 0.035).abs() < 1e-12, "{cost}");
    }
}
