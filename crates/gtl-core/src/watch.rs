//! Watching a provider's events go by without changing them: what the
//! audit trail, the metrics and the router's per-attempt figures each
//! need, written once.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use gtl_proto::Body;

use crate::EventStream;

/// Sees a call's events and is told, once, that the call is over.
pub trait EventWatch: Send + Unpin + 'static {
    /// Sees each event before it is passed on.
    fn see(&mut self, body: &Body);

    /// The call is over: called exactly once, at the terminal event
    /// (`done` or `error`, before it is passed on, so whoever receives it
    /// finds the call recorded), at the stream's end, or when the stream
    /// is dropped before either (a cancel).
    fn finish(self);
}

/// `events`, each seen by `watch` on its way.
pub fn watch_events<W: EventWatch>(events: EventStream, watch: W) -> EventStream {
    Box::pin(Watched {
        events,
        watch: Some(watch),
    })
}

struct Watched<W: EventWatch> {
    events: EventStream,
    watch: Option<W>,
}

impl<W: EventWatch> Stream for Watched<W> {
    type Item = Body;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Body>> {
        let this = self.get_mut();
        let next = this.events.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(body)) => {
                if let Some(watch) = this.watch.as_mut() {
                    watch.see(body);
                }
                if matches!(body, Body::Done(_) | Body::Error(_))
                    && let Some(watch) = this.watch.take()
                {
                    watch.finish();
                }
            }
            Poll::Ready(None) => {
                if let Some(watch) = this.watch.take() {
                    watch.finish();
                }
            }
            Poll::Pending => {}
        }
        next
    }
}

impl<W: EventWatch> Drop for Watched<W> {
    fn drop(&mut self) {
        if let Some(watch) = self.watch.take() {
            watch.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::StreamExt as _;
    use gtl_proto::{Done, Token};

    use super::*;

    #[derive(Default)]
    struct Log {
        seen: usize,
        finished: usize,
    }

    struct Counting(Arc<Mutex<Log>>);

    impl EventWatch for Counting {
        fn see(&mut self, _: &Body) {
            self.0.lock().unwrap().seen += 1;
        }

        fn finish(self) {
            self.0.lock().unwrap().finished += 1;
        }
    }

    fn events() -> EventStream {
        let token = Body::Token(Token { text: "a".into() });
        let done = Body::Done(Done {
            finish_reason: "stop".into(),
        });
        Box::pin(futures::stream::iter([token, done]))
    }

    #[tokio::test]
    async fn finishes_once_at_the_terminal_event_or_when_dropped() {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut watched = watch_events(events(), Counting(log.clone()));
        watched.next().await;
        assert_eq!(log.lock().unwrap().finished, 0);
        watched.next().await;
        assert_eq!(
            log.lock().unwrap().finished,
            1,
            "at the done, before it is passed on"
        );
        assert!(watched.next().await.is_none());
        drop(watched);
        let seen = log.lock().unwrap().seen;
        assert_eq!(seen, 2);
        assert_eq!(log.lock().unwrap().finished, 1, "and only once");

        let log = Arc::new(Mutex::new(Log::default()));
        let mut cancelled = watch_events(events(), Counting(log.clone()));
        cancelled.next().await;
        drop(cancelled);
        assert_eq!(
            log.lock().unwrap().finished,
            1,
            "a dropped stream finishes too"
        );
    }
}
