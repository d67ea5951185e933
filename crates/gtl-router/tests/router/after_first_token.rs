//! After the first token: abort, restart and continue.

use gtl_proto::types::Content;
use gtl_proto::{ErrorCode, Role};
use gtl_router::{AfterFirstToken, RouteConfig, TargetConfig};

use crate::support::{Script, Scripted, Step, answer, request, router, run, show, text};

fn route(policy: AfterFirstToken) -> RouteConfig {
    RouteConfig::new(
        "smart",
        [TargetConfig::new("a/m"), TargetConfig::new("b/m")],
    )
    .with_after_first_token(policy)
}

/// `a` sends two tokens and its usage, then breaks.
fn broken() -> Script {
    Script::Steps(vec![
        Step::Token("The quick"),
        Step::Token(" brown"),
        Step::Usage(10, 2),
        Step::Error(ErrorCode::ProviderUnavailable),
    ])
}

#[tokio::test]
async fn abort_ends_with_an_after_first_token_error_and_keeps_the_partial_output() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([broken()]);
    let router = router(&[&a, &b], vec![route(AfterFirstToken::Abort)]);
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(
        show(&events),
        [
            "status streaming a/m",
            "token The quick",
            "token  brown",
            "usage 10 2 0.5",
            "error PROVIDER_UNAVAILABLE after",
        ]
    );
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn restart_tells_the_client_to_discard_then_sends_the_whole_answer() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([broken()]);
    b.push([answer(&["The quick", " brown", " fox"])]);
    let router = router(&[&a, &b], vec![route(AfterFirstToken::Restart)]);
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(
        show(&events),
        [
            "status streaming a/m",
            "token The quick",
            "token  brown",
            "status restarted a/m",
            "status streaming b/m",
            "token The quick",
            "token  brown",
            "token  fox",
            // Both legs are paid for.
            "usage 20 5 1",
            "done stop",
        ]
    );
    // The fallback starts from the original conversation.
    assert_eq!(b.requests()[0].messages, request("smart").messages);
}

#[tokio::test]
async fn continue_gives_one_answer_with_no_gap_and_no_duplicate() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([broken()]);
    b.push([answer(&[" fox", " jumps."])]);
    let router = router(&[&a, &b], vec![route(AfterFirstToken::Continue)]);
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(
        show(&events),
        [
            "status streaming a/m",
            "token The quick",
            "token  brown",
            "status continuing a/m",
            "status streaming b/m",
            "token  fox",
            "token  jumps.",
            "usage 20 4 1",
            "done stop",
        ]
    );
    assert_eq!(text(&events), "The quick brown fox jumps.");
    // The fallback was asked to continue the partial text.
    let sent = &b.requests()[0].messages;
    let prefill = sent.last().unwrap();
    assert_eq!(prefill.role(), Role::Assistant);
    assert_eq!(
        prefill.content,
        Some(Content::Text("The quick brown".into()))
    );
    assert_eq!(sent.len(), request("smart").messages.len() + 1);
}

#[tokio::test]
async fn continue_survives_two_breaks() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    let c = Scripted::new("c");
    a.push([broken()]);
    b.push([Script::Steps(vec![
        Step::Token(" fox"),
        Step::Error(ErrorCode::ProviderError),
    ])]);
    c.push([answer(&[" jumps."])]);
    let route = RouteConfig::new(
        "smart",
        [
            TargetConfig::new("a/m"),
            TargetConfig::new("b/m"),
            TargetConfig::new("c/m"),
        ],
    )
    .with_after_first_token(AfterFirstToken::Continue);
    let router = router(&[&a, &b, &c], vec![route]);
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(text(&events), "The quick brown fox jumps.");
    let prefill = c.requests()[0].messages.last().unwrap().content.clone();
    assert_eq!(prefill, Some(Content::Text("The quick brown fox".into())));
}

#[tokio::test]
async fn the_request_may_choose_the_policy() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([broken()]);
    b.push([answer(&[" fox"])]);
    let router = router(&[&a, &b], vec![route(AfterFirstToken::Abort)]);
    let mut req = request("smart");
    req.metadata
        .insert(gtl_router::AFTER_FIRST_TOKEN_KEY.into(), "continue".into());
    let events = run(&router, req).await.unwrap();
    assert_eq!(text(&events), "The quick brown fox");
}

#[tokio::test]
async fn a_non_retryable_error_after_output_is_never_papered_over() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Steps(vec![
        Step::Token("x"),
        Step::Error(ErrorCode::ContentFiltered),
    ])]);
    let router = router(&[&a, &b], vec![route(AfterFirstToken::Continue)]);
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(
        show(&events),
        [
            "status streaming a/m",
            "token x",
            "error CONTENT_FILTERED after"
        ]
    );
    assert_eq!(b.calls(), 0);
}
