//! Reloading the real server's configuration: SIGHUP swaps a route while a
//! stream runs on it (the stream finishes on the old route, the next call
//! takes the new one); a broken configuration is refused, saying why, and
//! the last good one keeps serving; a changed file is picked up without a
//! signal.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{Raw, ServerProcess, is_terminal, stream_request};

/// The route `smart`, answering `tokens` generated tokens.
fn route(tokens: u32) -> String {
    format!(
        "[[routes]]\nname = \"smart\"\ntargets = [{{ model = \"echo/echo:tokens={tokens},delay_ms=20\" }}]\n"
    )
}

/// Reads until every call in `calls` has ended; each call's frames.
async fn until_all_end(raw: &mut Raw, calls: &[u64]) -> BTreeMap<u64, Vec<Value>> {
    let mut frames: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    while calls.iter().any(|call| {
        !frames
            .get(call)
            .is_some_and(|f| f.last().is_some_and(is_terminal))
    }) {
        let frame = raw.recv().await.expect("frames until the calls end");
        if let Some(call) = frame["call_id"].as_u64() {
            frames.entry(call).or_default().push(frame);
        }
    }
    frames
}

fn tokens(frames: &[Value]) -> usize {
    assert_eq!(frames.last().unwrap()["type"], "done", "{frames:#?}");
    frames.iter().filter(|f| f["type"] == "token").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_routes_for_new_calls_and_refuses_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &route(30)).await;
    let mut raw = Raw::hello(&server.tcp, &server.token).await;
    raw.send(stream_request(1, "smart")).await;
    let mut first = Vec::new();
    while first.last().is_none_or(|f: &Value| f["type"] != "token") {
        first.push(raw.recv_call(1).await.expect("the first stream's events"));
    }

    let mark = server.log().len();
    server.rewrite_config(&route(3));
    server.signal("HUP");
    server.log_line(mark, "configuration reloaded").await;
    raw.send(stream_request(2, "smart")).await;
    let mut ended = until_all_end(&mut raw, &[1, 2]).await;
    first.append(ended.get_mut(&1).unwrap());
    assert_eq!(tokens(&first), 30, "the running stream kept its route");
    assert_eq!(tokens(&ended[&2]), 3, "the next call took the new route");

    let mark = server.log().len();
    server.rewrite_config("[[routes]]\nname = \"smart\"\ntargets = []\n");
    server.signal("HUP");
    let refused = server.log_line(mark, "reload refused").await;
    assert!(
        refused.contains("smart"),
        "the refusal names the route: {refused}"
    );
    raw.send(stream_request(3, "smart")).await;
    assert_eq!(tokens(&until_all_end(&mut raw, &[3]).await[&3]), 3);

    // No signal: the file's new content is noticed by itself.
    let mark = server.log().len();
    server.rewrite_config(&route(5));
    server.log_line(mark, "configuration reloaded").await;
    raw.send(stream_request(4, "smart")).await;
    assert_eq!(tokens(&until_all_end(&mut raw, &[4]).await[&4]), 5);
}
