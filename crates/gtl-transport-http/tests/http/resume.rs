//! Cut an SSE stream, resume it with `Last-Event-ID`: the events after it,
//! exactly; session.pipe input and cancel by session id need the token.

use serde_json::json;

use crate::{SseReader, chat, client, data, events, start, terminal, text};

#[tokio::test]
async fn a_cut_stream_resumes_after_last_event_id_exactly() {
    let addr = start().await;
    let http = client();
    let model = "echo:tokens=60,delay_ms=2";
    let response = http
        .post(format!("http://{addr}/gtl/v1/stream"))
        .json(&chat(model, "x"))
        .send()
        .await
        .unwrap();
    // Read the first 20 events, then drop the connection.
    let mut seen = 0;
    let first = events(response, |_| {
        seen += 1;
        seen == 21
    })
    .await;
    let accepted = data(&first[0]);
    let session = accepted["session_id"].as_str().unwrap().to_owned();
    let token = accepted["resume_token"].as_str().unwrap().to_owned();
    let last = first.last().unwrap().id.clone().unwrap();

    let resumed = http
        .get(format!("http://{addr}/gtl/v1/sessions/{session}/events"))
        .header("Last-Event-ID", &last)
        .header("GTL-Resume-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let rest = events(resumed, terminal).await;
    assert_eq!(rest[0].event, "accepted");
    let ids: Vec<u64> = first[1..]
        .iter()
        .chain(&rest[1..])
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "nothing lost, nothing doubled");
    assert_eq!(rest.last().unwrap().event, "done");

    // The whole stream, once more, with the query-string form.
    let replay = http
        .get(format!(
            "http://{addr}/gtl/v1/sessions/{session}/events?after_seq=0&resume_token={token}"
        ))
        .send()
        .await
        .unwrap();
    let all = events(replay, terminal).await;
    let mut cut: Vec<_> = first[1..].to_vec();
    cut.extend_from_slice(&rest[1..]);
    assert_eq!(text(&all), text(&cut));
}

#[tokio::test]
async fn pipe_input_and_cancel_by_session_id_need_the_token() {
    let addr = start().await;
    let http = client();
    let mut request = chat("echo", "first");
    request["stream"] = json!(true);
    request["pipe"] = json!(true);
    let response = http
        .post(format!("http://{addr}/gtl/v1/stream"))
        .json(&request)
        .send()
        .await
        .unwrap();
    let mut stream = SseReader::new(response);
    let accepted = stream.next().await.unwrap();
    let session = data(&accepted)["session_id"].as_str().unwrap().to_owned();
    let token = data(&accepted)["resume_token"].as_str().unwrap().to_owned();
    let first_turn = stream.until(|e| e.event == "done").await;
    assert_eq!(text(&first_turn), "first");

    let url =
        |session: &str, action: &str| format!("http://{addr}/gtl/v1/sessions/{session}/{action}");
    let input = json!({"messages": [{"role": "user", "content": "injected"}]});
    // Without the token, or with a wrong one: the answer an unknown session
    // gets, word for word but for the id.
    let unknown = http
        .post(url("s_unknown", "input"))
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let unknown: serde_json::Value = unknown.json().await.unwrap();
    for (action, token) in [
        ("input", ""),
        ("input", "wrong"),
        ("cancel", ""),
        ("cancel", "wrong"),
    ] {
        let refused = http
            .post(url(&session, action))
            .header("GTL-Resume-Token", token)
            .json(&input)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 404, "{action} with {token:?}");
        let refused: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(
            refused["message"]
                .as_str()
                .unwrap()
                .replace(&session, "s_unknown"),
            unknown["message"].as_str().unwrap()
        );
    }

    // With the token (header form): the next turn.
    let accepted = http
        .post(url(&session, "input"))
        .header("GTL-Resume-Token", &token)
        .json(&json!({"messages": [{"role": "user", "content": "second"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 204);
    let second_turn = stream.until(|e| e.event == "done").await;
    assert_eq!(text(&second_turn), "second");

    // Cancel with the token in the body: the stream ends with CANCELLED.
    let cancel = http
        .post(url(&session, "cancel"))
        .json(&json!({"reason": "enough", "resume_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 204);
    let end = stream.until(terminal).await;
    let last = data(end.last().unwrap());
    assert_eq!(last["code"], "CANCELLED");
    assert_eq!(last["message"], "enough");
    assert!(stream.next().await.is_none());
}
