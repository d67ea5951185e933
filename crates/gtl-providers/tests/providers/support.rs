//! What every adapter's tests do the same way: stream one request through a
//! provider at a replay server, and expect a refusal before the stream.

use futures::StreamExt as _;
use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::{Body, CompletionRequest};
use gtl_test::{RecordedRequest, ReplayServer};

/// Every event of a stream.
pub(crate) async fn collect(events: EventStream) -> Vec<Body> {
    events.collect().await
}

/// Streams `request` on `provider` (pointed at `server`) to its end: the
/// events, and the one request the server received.
pub(crate) async fn stream_once(
    provider: &dyn Provider,
    server: &ReplayServer,
    request: CompletionRequest,
) -> (Vec<Body>, RecordedRequest) {
    let events = provider.stream(request).await.expect("stream starts");
    (collect(events).await, server.single_request())
}

/// The error `provider` answers `request` with before any event.
pub(crate) async fn refused(provider: &dyn Provider, request: CompletionRequest) -> ProviderError {
    match provider.stream(request).await {
        Ok(events) => panic!("expected an error, got {:?}", collect(events).await),
        Err(error) => error,
    }
}
