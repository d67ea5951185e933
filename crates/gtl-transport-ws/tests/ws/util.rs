//! Loopback fixtures: a `WsConnector` or a raw tungstenite client on one
//! end, a framed server connection on the other.

use futures::{SinkExt as _, StreamExt as _};
use gtl_proto::{Body, DEFAULT_MAX_FRAME_BYTES, Frame, Token};
use gtl_transport::{Connection, Connector as _, PeerInfo};
use gtl_transport_ws::{WsConnector, echo_subprotocol, websocket_config, ws_connection};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};

pub(crate) type RawClient = WebSocketStream<TcpStream>;

pub(crate) async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/gtl/v1/ws", listener.local_addr().unwrap());
    (listener, url)
}

/// The server end as a router would build it with tungstenite's own
/// handshake: `accept_hdr_async` (echoing the subprotocol) + `ws_connection`.
pub(crate) async fn serve_one(listener: &TcpListener, max: usize) -> Connection {
    let (stream, addr) = listener.accept().await.unwrap();
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, Echo, Some(websocket_config(max)))
            .await
            .unwrap();
    let mut conn = ws_connection(ws, PeerInfo::new("ws", addr.to_string()));
    conn.read.set_max_frame_bytes(max);
    conn
}

/// tungstenite's handshake callback, accepting the `gtl.v1` subprotocol.
struct Echo;

impl Callback for Echo {
    fn on_request(self, req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
        echo_subprotocol(req.headers(), resp.headers_mut());
        Ok(resp)
    }
}

/// A `WsConnector` client and its server end.
pub(crate) async fn pair() -> (Connection, Connection) {
    let (listener, url) = bind().await;
    let connector = WsConnector::new(&url).unwrap();
    let (client, server) = tokio::join!(
        connector.connect(),
        serve_one(&listener, DEFAULT_MAX_FRAME_BYTES)
    );
    (client.unwrap(), server)
}

/// A raw tungstenite client (no subprotocol) and a server end limited to
/// `max` bytes per message, accepted by [`gtl_transport_ws::accept`].
pub(crate) async fn raw_pair(max: usize) -> (RawClient, Connection) {
    let (listener, url) = bind().await;
    let server = async {
        let (stream, addr) = listener.accept().await.unwrap();
        gtl_transport_ws::accept(stream, PeerInfo::new("ws", addr.to_string()), max)
            .await
            .unwrap()
    };
    let client = async {
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        tokio_tungstenite::client_async(url.as_str(), stream)
            .await
            .unwrap()
            .0
    };
    tokio::join!(client, server)
}

pub(crate) fn token(seq: u64, text: &str) -> Frame {
    Frame::event("s_1", seq, Body::Token(Token { text: text.into() }))
}

/// Sends one message from the raw client.
pub(crate) async fn send(raw: &mut RawClient, message: Message) {
    raw.send(message).await.unwrap();
}

/// The raw client's next message.
pub(crate) async fn next(raw: &mut RawClient) -> Message {
    raw.next().await.unwrap().unwrap()
}
