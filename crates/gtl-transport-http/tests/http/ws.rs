//! `GET /gtl/v1/ws`: a GTL connection over WebSocket, multiplexed calls.

use gtl_proto::{Body, CompletionRequest, Frame, Hello, Message, Role};
use gtl_transport::{Connector as _, client_handshake};
use gtl_transport_ws::WsConnector;

use crate::start;

#[tokio::test]
async fn a_websocket_client_chats_through_the_http_port() {
    let addr = start().await;
    let connector = WsConnector::new(&format!("ws://{addr}/gtl/v1/ws")).unwrap();
    let mut conn = connector.connect().await.unwrap();
    client_handshake(&mut conn, Hello::default()).await.unwrap();
    for call_id in [1, 2] {
        let request = CompletionRequest {
            model: "echo".into(),
            stream: true,
            messages: vec![Message {
                role: Role::User as i32,
                content: Some(gtl_proto::types::Content::Text(format!("call {call_id}"))),
                ..Message::default()
            }],
            ..CompletionRequest::default()
        };
        let frame = Frame::control(call_id, Body::CompletionRequest(Box::new(request)));
        conn.write.write_frame(frame.as_ref()).unwrap();
    }
    conn.write.flush().await.unwrap();
    let mut texts = [String::new(), String::new()];
    let mut done = 0;
    while done < 2 {
        let frame = conn.read.read_frame().await.unwrap().unwrap();
        match frame.body {
            Some(Body::Token(token)) => texts[frame.call_id as usize - 1].push_str(&token.text),
            Some(Body::Done(_)) => done += 1,
            Some(Body::Error(e)) => panic!("{e:?}"),
            _ => {}
        }
    }
    assert_eq!(texts, ["call 1", "call 2"]);
}
