//! A provider for engine tests: a fixed script of events, with a gate the
//! test opens to let events through, and counters of what the engine did.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream;
use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::types::Content;
use gtl_proto::{Body, CompletionRequest, Done, ErrorCode, ProviderInfo, Token};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub(crate) struct Scripted {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: Kind,
    gated: bool,
    allowed: AtomicUsize,
    pulled: AtomicUsize,
    finished: AtomicBool,
    dropped: AtomicBool,
    changed: Notify,
    last_request_len: Mutex<usize>,
}

#[derive(Debug)]
enum Kind {
    Tokens(usize),
    EchoLast,
    Failing,
}

impl Scripted {
    fn new(kind: Kind) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                gated: false,
                allowed: AtomicUsize::new(usize::MAX),
                pulled: AtomicUsize::new(0),
                finished: AtomicBool::new(false),
                dropped: AtomicBool::new(false),
                changed: Notify::new(),
                last_request_len: Mutex::new(0),
            }),
        }
    }

    /// `n` tokens "t0 ", "t1 ", … then done.
    pub(crate) fn tokens(n: usize) -> Self {
        Self::new(Kind::Tokens(n))
    }

    /// One token with the last message's text, then done.
    pub(crate) fn echo_last() -> Self {
        Self::new(Kind::EchoLast)
    }

    /// Refuses every call with RATE_LIMIT.
    pub(crate) fn failing() -> Self {
        Self::new(Kind::Failing)
    }

    /// Holds events back until [`open`](Self::open).
    pub(crate) fn with_gate(self) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).expect("not shared yet");
        inner.gated = true;
        inner.allowed = AtomicUsize::new(0);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Lets the first `n` events through (cumulative, not additive).
    pub(crate) fn open(&self, n: usize) {
        self.inner.allowed.store(n, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    pub(crate) fn pulled(&self) -> usize {
        self.inner.pulled.load(Ordering::SeqCst)
    }

    pub(crate) fn last_request_len(&self) -> usize {
        *self.inner.last_request_len.lock().unwrap()
    }

    pub(crate) fn expected(&self) -> Vec<String> {
        match self.inner.kind {
            Kind::Tokens(n) => (0..n)
                .map(|i| format!("t{i} "))
                .chain(["done".to_owned()])
                .collect(),
            _ => Vec::new(),
        }
    }

    async fn wait(&self, done: impl Fn(&Inner) -> bool) {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.inner) {
                return;
            }
            notified.await;
        }
    }

    pub(crate) async fn wait_finished(&self) {
        self.wait(|i| i.finished.load(Ordering::SeqCst)).await;
    }

    pub(crate) async fn wait_dropped(&self) {
        self.wait(|i| i.dropped.load(Ordering::SeqCst)).await;
    }

    pub(crate) async fn wait_pulled_at_least(&self, n: usize) {
        self.wait(|i| i.pulled.load(Ordering::SeqCst) >= n).await;
    }
}

/// Marks the stream dropped when the engine lets go of it.
struct DropFlag(Arc<Inner>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn models(&self) -> Result<ProviderInfo, ProviderError> {
        Ok(ProviderInfo {
            provider: "scripted".into(),
            models: Vec::new(),
        })
    }

    async fn stream(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        *self.inner.last_request_len.lock().unwrap() = request.messages.len();
        let script: Vec<Body> = match self.inner.kind {
            Kind::Failing => return Err(ProviderError::new(ErrorCode::RateLimit, "slow down")),
            Kind::Tokens(n) => (0..n)
                .map(|i| {
                    Body::Token(Token {
                        text: format!("t{i} "),
                    })
                })
                .chain([Body::Done(Done {
                    finish_reason: "stop".into(),
                })])
                .collect(),
            Kind::EchoLast => {
                let text = match request.messages.last().and_then(|m| m.content.as_ref()) {
                    Some(Content::Text(text)) => text.clone(),
                    _ => String::new(),
                };
                vec![
                    Body::Token(Token { text }),
                    Body::Done(Done {
                        finish_reason: "stop".into(),
                    }),
                ]
            }
        };
        let flag = DropFlag(self.inner.clone());
        let this = self.clone();
        Ok(Box::pin(stream::unfold(
            (script.into_iter(), 0usize, flag),
            move |(mut script, i, flag)| {
                let this = this.clone();
                async move {
                    if this.inner.gated {
                        this.wait(|inner| inner.allowed.load(Ordering::SeqCst) > i)
                            .await;
                    }
                    let Some(body) = script.next() else {
                        this.inner.finished.store(true, Ordering::SeqCst);
                        this.inner.changed.notify_waiters();
                        return None;
                    };
                    this.inner.pulled.fetch_add(1, Ordering::SeqCst);
                    this.inner.changed.notify_waiters();
                    if body.is_terminal() {
                        this.inner.finished.store(true, Ordering::SeqCst);
                    }
                    Some((body, (script, i + 1, flag)))
                }
            },
        )))
    }
}
