//! A scripted provider: each call plays the next script, and every request
//! is recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::types::Content;
use gtl_proto::{
    Body, CompletionRequest, Done, ErrorCode, Message, ModelInfo, ProviderInfo, Role, Status,
    Token, Usage,
};
use gtl_providers::Registry;
use gtl_router::{CallContext, RouteConfig, Router, RouterConfig};

/// One step of a scripted stream.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Token(&'static str),
    Usage(u64, u64),
    Done,
    /// An error event (its phase is set by what came before).
    Error(ErrorCode),
    /// Waits (virtual time in paused tests).
    Sleep(Duration),
    /// Never yields again.
    Stall,
}

/// What one call does.
#[derive(Debug, Clone)]
pub(crate) enum Script {
    /// `stream` fails with this code (and Retry-After).
    Refuse(ErrorCode, Option<Duration>),
    /// `stream` never returns.
    Hang,
    /// A stream of these steps, after `status streaming`.
    Steps(Vec<Step>),
}

/// A full answer: the words as tokens, usage, done.
pub(crate) fn answer(words: &[&'static str]) -> Script {
    let mut steps: Vec<Step> = words.iter().map(|w| Step::Token(w)).collect();
    steps.push(Step::Usage(10, words.len() as u64));
    steps.push(Step::Done);
    Script::Steps(steps)
}

#[derive(Debug, Default)]
struct State {
    scripts: VecDeque<Script>,
    /// Played when the queue is empty.
    fallback: Option<Script>,
    requests: Vec<CompletionRequest>,
}

/// A provider playing scripts.
#[derive(Debug, Clone)]
pub(crate) struct Scripted {
    name: &'static str,
    state: Arc<Mutex<State>>,
}

impl Scripted {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            state: Arc::default(),
        }
    }

    /// Queues scripts for the next calls.
    pub(crate) fn push(&self, scripts: impl IntoIterator<Item = Script>) -> &Self {
        self.lock().scripts.extend(scripts);
        self
    }

    /// Plays `script` whenever the queue is empty.
    pub(crate) fn always(&self, script: Script) -> &Self {
        self.lock().fallback = Some(script);
        self
    }

    pub(crate) fn requests(&self) -> Vec<CompletionRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn calls(&self) -> usize {
        self.lock().requests.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

#[async_trait::async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        self.name
    }

    async fn models(&self) -> Result<ProviderInfo, ProviderError> {
        Ok(ProviderInfo {
            provider: self.name.to_owned(),
            models: vec![ModelInfo {
                name: "m".to_owned(),
                ..ModelInfo::default()
            }],
        })
    }

    async fn count_tokens(&self, _request: CompletionRequest) -> Result<u64, ProviderError> {
        Ok(42)
    }

    async fn stream(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let model = request.model.clone();
        let script = {
            let mut state = self.lock();
            state.requests.push(request);
            state
                .scripts
                .pop_front()
                .or_else(|| state.fallback.clone())
                .expect("a script for every call")
        };
        let steps = match script {
            Script::Refuse(code, retry_after) => {
                let mut error = ProviderError::new(code, format!("{} refused", self.name));
                if let Some(after) = retry_after {
                    error = error.with_retry_after(after);
                }
                return Err(error);
            }
            Script::Hang => std::future::pending().await,
            Script::Steps(steps) => steps,
        };
        let status = Body::Status(Status {
            state: "streaming".to_owned(),
            provider: self.name.to_owned(),
            model,
            reason: String::new(),
        });
        let name = self.name;
        let events = futures::stream::unfold(
            (Some(status), steps.into_iter(), false),
            move |(status, mut steps, mut output)| async move {
                if let Some(status) = status {
                    return Some((status, (None, steps, output)));
                }
                loop {
                    let body = match steps.next()? {
                        Step::Token(text) => {
                            output = true;
                            Body::Token(Token {
                                text: text.to_owned(),
                            })
                        }
                        Step::Usage(tokens_in, tokens_out) => Body::Usage(Usage {
                            tokens_in,
                            tokens_out,
                            cost: 0.5,
                            cached_tokens: 0,
                        }),
                        Step::Done => Body::Done(Done {
                            finish_reason: "stop".to_owned(),
                        }),
                        Step::Error(code) => {
                            let phase = if output {
                                gtl_proto::Phase::AfterFirstToken
                            } else {
                                gtl_proto::Phase::BeforeFirstToken
                            };
                            ProviderError::new(code, format!("{name} broke"))
                                .with_phase(phase)
                                .to_event()
                        }
                        Step::Sleep(d) => {
                            tokio::time::sleep(d).await;
                            continue;
                        }
                        Step::Stall => std::future::pending().await,
                    };
                    return Some((body, (None, steps, output)));
                }
            },
        );
        Ok(Box::pin(events))
    }
}

/// A registry of scripted providers `a`, `b`, `c`...
pub(crate) fn registry(providers: &[&Scripted]) -> Registry {
    let mut registry = Registry::new();
    for provider in providers {
        registry.add(Arc::new((*provider).clone()));
    }
    registry
}

pub(crate) fn router(providers: &[&Scripted], routes: Vec<RouteConfig>) -> Router {
    router_with(providers, routes, RouterConfig::default())
}

pub(crate) fn router_with(
    providers: &[&Scripted],
    routes: Vec<RouteConfig>,
    config: RouterConfig,
) -> Router {
    Router::builder(registry(providers))
        .config(config)
        .routes(routes)
        .build()
        .unwrap()
}

pub(crate) fn request(model: &str) -> CompletionRequest {
    CompletionRequest {
        model: model.to_owned(),
        stream: true,
        messages: vec![Message {
            role: Role::User as i32,
            content: Some(Content::Text("hi".to_owned())),
            ..Message::default()
        }],
        ..CompletionRequest::default()
    }
}

pub(crate) fn context() -> CallContext {
    CallContext::new("tester")
}

/// Runs `request` through `router` and collects every event.
pub(crate) async fn run(
    router: &Router,
    mut request: CompletionRequest,
) -> Result<Vec<Body>, ProviderError> {
    use futures::StreamExt as _;
    let provider = router.resolve(&mut request, &context())?;
    let events = provider.stream(request).await?;
    Ok(events.collect().await)
}

/// A compact, comparable form of an event sequence.
pub(crate) fn show(events: &[Body]) -> Vec<String> {
    events
        .iter()
        .map(|body| match body {
            Body::Status(s) => format!("status {} {}/{}", s.state, s.provider, s.model),
            Body::Token(t) => format!("token {}", t.text),
            Body::Usage(u) => format!("usage {} {} {}", u.tokens_in, u.tokens_out, u.cost),
            Body::Done(d) => format!("done {}", d.finish_reason),
            Body::Error(e) => format!(
                "error {} {}",
                e.code().name(),
                if e.phase() == gtl_proto::Phase::AfterFirstToken {
                    "after"
                } else {
                    "before"
                }
            ),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Every token's text, concatenated.
pub(crate) fn text(events: &[Body]) -> String {
    events
        .iter()
        .filter_map(|body| match body {
            Body::Token(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect()
}
