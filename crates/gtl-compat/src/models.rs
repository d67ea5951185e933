//! The routable model names, shared by both dialects' model lists.

use gtl_proto::{ModelInfo, ProviderInfo};

/// One routable name.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    /// What a client puts in `model`: `provider/model`, or an alias.
    pub(crate) id: String,
    /// The provider that serves it.
    pub(crate) provider: &'a str,
    /// What the provider says about the model, when it lists it.
    pub(crate) info: Option<&'a ModelInfo>,
}

/// Every routable name: each provider's models as `provider/model`, in
/// the order given, then each alias (`alias`, `provider/model`).
///
/// Bare model names are not listed: they route to the default provider
/// only, so listing them would name the same model twice.
pub(crate) fn entries<'a>(
    providers: &'a [ProviderInfo],
    aliases: &'a [(&'a str, &'a str)],
) -> Vec<Entry<'a>> {
    let mut out: Vec<Entry<'a>> = providers
        .iter()
        .flat_map(|provider| {
            provider.models.iter().map(move |model| Entry {
                id: format!("{}/{}", provider.provider, model.name),
                provider: &provider.provider,
                info: Some(model),
            })
        })
        .collect();
    for &(alias, target) in aliases {
        let (provider, model) = target.split_once('/').unwrap_or(("", target));
        let info = providers
            .iter()
            .find(|p| p.provider == provider)
            .and_then(|p| p.models.iter().find(|m| m.name == model));
        out.push(Entry {
            id: alias.to_owned(),
            provider,
            info,
        });
    }
    out
}

/// The entry named `id`.
pub(crate) fn find<'a>(
    providers: &'a [ProviderInfo],
    aliases: &'a [(&'a str, &'a str)],
    id: &str,
) -> Option<Entry<'a>> {
    entries(providers, aliases)
        .into_iter()
        .find(|entry| entry.id == id)
}
