//! The cache layer: a provider whose answers are kept and shared.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use gtl_core::{EventStream, Provider, ProviderError, Wrapper};
use gtl_proto::{Body, CompletionRequest, Status};

use crate::cache::{Flight, Key, ResponseCache};

/// The `status` state of an answer replayed from the cache.
pub const CACHED: &str = "cached";

/// A provider whose complete answers are cached for `ttl`, and whose
/// identical calls in flight share one upstream call.
#[derive(Debug)]
pub struct Cached {
    inner: Arc<dyn Provider>,
    cache: Arc<ResponseCache>,
    key: Key,
    ttl: Duration,
}

impl Cached {
    pub(crate) fn new(
        inner: Arc<dyn Provider>,
        cache: Arc<ResponseCache>,
        key: Key,
        ttl: Duration,
    ) -> Self {
        Self {
            inner,
            cache,
            key,
            ttl,
        }
    }
}

#[async_trait::async_trait]
impl Wrapper for Cached {
    fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }

    async fn wrap(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        if let Some(events) = self.cache.get(&self.key) {
            tracing::debug!(provider = %self.inner.name(), "answered from the cache");
            let status = Body::Status(Status {
                state: CACHED.to_owned(),
                provider: self.inner.name().to_owned(),
                model: request.model,
                reason: String::new(),
            });
            let replay = std::iter::once(status).chain(events);
            return Ok(Box::pin(futures::stream::iter(replay)));
        }
        let (flight, leader) = self.cache.join(&self.key);
        if leader {
            // The upstream call runs on its own, so it is not lost when
            // the client that started it goes away: the others wait on it.
            let inner = self.inner.clone();
            let (cache, key, ttl) = (self.cache.clone(), self.key.clone(), self.ttl);
            let flight = flight.clone();
            tokio::spawn(async move {
                fly(inner.as_ref(), request, &flight).await;
                let events = flight.events();
                if matches!(events.last(), Some(Body::Done(_))) {
                    cache.put(&key, &events, ttl);
                }
                cache.land(&key);
            });
        }
        let events = futures::stream::unfold((flight, 0), |(flight, index)| async move {
            let body = flight.get(index).await?;
            Some((body, (flight, index + 1)))
        });
        Ok(Box::pin(events))
    }
}

/// Runs one upstream call into `flight`.
async fn fly(provider: &dyn Provider, request: CompletionRequest, flight: &Flight) {
    let mut events = match provider.stream(request).await {
        Ok(events) => events,
        Err(error) => return flight.push(error.to_event(), true),
    };
    while let Some(body) = events.next().await {
        let last = body.is_terminal();
        flight.push(body, last);
        if last {
            return;
        }
    }
    // A stream that ends without a terminal event: the readers end too.
    let cut = ProviderError::new(
        gtl_proto::ErrorCode::ProviderError,
        "the provider's stream ended without finishing",
    );
    flight.push(cut.to_event(), true);
}
