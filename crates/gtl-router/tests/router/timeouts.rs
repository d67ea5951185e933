//! Timeouts: connect, first token, idle, total (paused virtual time).

use std::time::Duration;

use gtl_router::{AfterFirstToken, RouteConfig, TargetConfig, TimeoutOverrides};

use crate::support::{Script, Scripted, Step, answer, request, router, run, show, text};

fn route(timeouts: TimeoutOverrides, policy: AfterFirstToken) -> RouteConfig {
    RouteConfig::new("r", [TargetConfig::new("a/m"), TargetConfig::new("b/m")])
        .with_timeouts(timeouts)
        .with_after_first_token(policy)
}

#[tokio::test(start_paused = true)]
async fn an_upstream_that_never_answers_is_a_connect_timeout_and_fails_over() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Hang]);
    b.push([answer(&["b"])]);
    let mut timeouts = TimeoutOverrides::default();
    timeouts.connect_secs = Some(2.0);
    let router = router(&[&a, &b], vec![route(timeouts, AfterFirstToken::Abort)]);
    let events = run(&router, request("r")).await.unwrap();
    assert_eq!(
        show(&events)[..2],
        ["status retrying a/m", "status streaming b/m"]
    );
    assert_eq!(text(&events), "b");
}

#[tokio::test(start_paused = true)]
async fn no_first_token_in_time_fails_over() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Steps(vec![Step::Stall])]);
    b.push([answer(&["b"])]);
    let mut timeouts = TimeoutOverrides::default();
    timeouts.first_token_secs = Some(5.0);
    let router = router(&[&a, &b], vec![route(timeouts, AfterFirstToken::Abort)]);
    let events = run(&router, request("r")).await.unwrap();
    assert_eq!(
        show(&events)[..3],
        [
            "status streaming a/m",
            "status retrying a/m",
            "status streaming b/m"
        ]
    );
    assert_eq!(text(&events), "b");
}

#[tokio::test(start_paused = true)]
async fn a_stall_mid_stream_is_an_idle_timeout_and_continue_goes_on() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Steps(vec![Step::Token("Hello"), Step::Stall])]);
    b.push([answer(&[" world"])]);
    let mut timeouts = TimeoutOverrides::default();
    timeouts.idle_secs = Some(3.0);
    let router = router(&[&a, &b], vec![route(timeouts, AfterFirstToken::Continue)]);
    let events = run(&router, request("r")).await.unwrap();
    assert_eq!(
        show(&events),
        [
            "status streaming a/m",
            "token Hello",
            "status continuing a/m",
            "status streaming b/m",
            "token  world",
            "usage 10 1 0.5",
            "done stop",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_total_time_bounds_every_attempt() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    // A slow drip: a token every 4 s, under the idle timeout, forever.
    let drip: Vec<Step> = (0..100)
        .flat_map(|_| [Step::Sleep(Duration::from_secs(4)), Step::Token(".")])
        .collect();
    a.push([Script::Steps(drip)]);
    let mut timeouts = TimeoutOverrides::default();
    timeouts.idle_secs = Some(5.0);
    timeouts.total_secs = Some(10.0);
    let router = router(&[&a, &b], vec![route(timeouts, AfterFirstToken::Restart)]);
    let events = run(&router, request("r")).await.unwrap();
    assert_eq!(
        show(&events),
        [
            "status streaming a/m",
            "token .",
            "token .",
            "error PROVIDER_TIMEOUT after",
        ]
    );
    assert_eq!(b.calls(), 0);
}
