//! The web chat page in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) loads the page from a real
//! gateway, sends a prompt and streams the echo provider's answer; a test
//! cuts the connection mid-stream and the page resumes it.

mod cdp;
mod proxy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gtl_providers::{EchoProvider, Registry};
use gtl_server::tls::LocalCertificate;
use gtl_server::{Config, Server};
use gtl_transport_http::{HttpGateway, WebTransportInfo};
use gtl_transport_quic::WtGateway;
use serde_json::Value;
use tokio::sync::oneshot;

use cdp::{Browser, Tab};
use proxy::CuttingProxy;

/// How long a page may take to finish its call.
const DEADLINE: Duration = Duration::from_secs(60);
/// The pause between two looks at the page.
const POLL: Duration = Duration::from_millis(50);

/// A gateway on free loopback ports with a temp data dir, echo provider.
struct Gateway {
    /// The HTTP port, `127.0.0.1:PORT`.
    http: String,
    /// The call service, for a second HTTP port with other settings.
    service: Arc<gtl_service::CallService>,
    stop: Option<oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<()>,
    /// The gateway's local token, which the page needs.
    token: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.set_data_dir(dir.path().join("data"));
        config.listen.uds.path = dir.path().join("gtl.sock");
        config.listen.tcp.addr = "127.0.0.1:0".parse().unwrap();
        config.listen.http.addr = "127.0.0.1:0".parse().unwrap();
        config.listen.quic.addr = "127.0.0.1:0".parse().unwrap();
        config.listen.h3.addr = "127.0.0.1:0".parse().unwrap();
        let mut registry = Registry::new();
        registry.add(Arc::new(EchoProvider::new()));
        let server = Server::bind(&config, registry).await.unwrap();
        let http = server
            .endpoints()
            .into_iter()
            .find_map(|e| e.strip_prefix("http://").map(str::to_owned))
            .unwrap();
        let service = server.gateway().service().clone();
        let token = std::fs::read_to_string(server.local_token_path().unwrap()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            http,
            service,
            stop: Some(stop),
            serving,
            token: token.trim().to_owned(),
            _dir: dir,
        }
    }

    /// Serves the gateway's calls on another loopback HTTP port whose page
    /// is told of `webtransport`; that port's `host:port`.
    async fn http_port_with(&self, webtransport: WebTransportInfo) -> String {
        let gateway = HttpGateway::new(self.service.clone()).with_webtransport(webtransport);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((stream, addr)) = listener.accept().await {
                let peer = gtl_transport_tcp::peer_info(&stream, addr, "http");
                tokio::spawn(gateway.clone().serve_connection(stream, peer));
            }
        });
        addr
    }

    /// Serves WebTransport on a free loopback UDP port of its own (so a
    /// test can close it), with a certificate made like the server's, and
    /// another HTTP port whose page is told of it; that port's
    /// `host:port`, and the WebTransport endpoint.
    async fn http_port_with_webtransport(&self) -> (String, quinn::Endpoint) {
        let certificate = LocalCertificate::load_or_create(&self._dir.path().join("wt")).unwrap();
        let gateway = WtGateway::new(self.service.clone());
        let config = gateway
            .server_config(vec![certificate.cert], certificate.key)
            .unwrap();
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        tokio::spawn(gateway.serve(endpoint.clone()));
        let info = WebTransportInfo::new(addr, gtl_transport_quic::WT_PATH, certificate.sha256);
        (self.http_port_with(info).await, endpoint)
    }

    /// `url` with the gateway's token in its fragment, as a user opens it
    /// (the page reads it from there; browsers never send a fragment).
    fn with_token(&self, url: &str) -> String {
        format!("{url}#token={}", self.token)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.serving.await.unwrap();
    }
}

/// What the page shows, by its elements' ids.
#[derive(Debug)]
struct Shown {
    status: String,
    output: String,
    transport: String,
    usage: String,
    resumes: String,
    log: String,
}

const READ_PAGE: &str = "(() => {
    const text = (id) => document.getElementById(id)?.textContent ?? '';
    return {status: text('status'), output: text('output'), transport: text('transport'),
            usage: text('usage'), resumes: text('resumes'), log: text('log')};
})()";

/// Reads what the page shows (nothing while it is still loading).
async fn shown(browser: &mut Browser, tab: &Tab) -> Shown {
    let value = browser.try_eval(tab, READ_PAGE).await.unwrap_or_default();
    let field = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    Shown {
        status: field("status"),
        output: field("output"),
        transport: field("transport"),
        usage: field("usage"),
        resumes: field("resumes"),
        log: field("log"),
    }
}

/// Looks at the page until its call has ended (`#status` is `done` or an
/// error code), within [`DEADLINE`].
async fn finished(browser: &mut Browser, tab: &Tab) -> Shown {
    let start = Instant::now();
    loop {
        let shown = shown(browser, tab).await;
        if !matches!(shown.status.as_str(), "" | "idle" | "streaming") {
            // The page reports what its Content-Security-Policy blocked.
            assert!(!shown.log.contains("blocked by"), "{shown:?}");
            return shown;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the page did not finish its call: {shown:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `text` for a URL's query.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn page_url(addr: &str, transport: &str, prompt: &str) -> String {
    format!(
        "http://{addr}/?transport={transport}&prompt={}&autosend=1",
        query_escape(prompt)
    )
}

/// The echo provider's usage line for `prompt`: one token per word, in and
/// out, at no cost.
fn echo_usage(prompt: &str) -> String {
    let words = prompt.split_whitespace().count();
    format!("{words} in · {words} out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_streams_an_answer_over_websocket() {
    let gateway = Gateway::start().await;
    let mut browser = Browser::launch().await;
    let prompt = "Hello from a real browser, over GTL's WebSocket & back.";
    let tab = browser
        .open(&gateway.with_token(&page_url(&gateway.http, "websocket", prompt)))
        .await;
    let shown = finished(&mut browser, &tab).await;
    assert_eq!(shown.status, "done", "{shown:?}");
    assert_eq!(shown.output, prompt, "{shown:?}");
    assert_eq!(shown.transport, "websocket", "{shown:?}");
    assert_eq!(shown.usage, echo_usage(prompt), "{shown:?}");
    assert_eq!(shown.resumes, "0", "{shown:?}");
    // The model list came from the models route.
    let models = browser
        .eval(
            &tab,
            "[...document.getElementById('model').options].map(o => o.value)",
        )
        .await;
    assert_eq!(models, Value::from(vec!["echo/echo"]), "{models}");
    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_page_is_refused_and_says_what_to_do() {
    let gateway = Gateway::start().await;
    let mut browser = Browser::launch().await;
    let tab = browser
        .open(&page_url(&gateway.http, "websocket", "no token"))
        .await;
    let shown = finished(&mut browser, &tab).await;
    assert_eq!(shown.output, "", "{shown:?}");
    assert!(shown.log.contains("gtl token show"), "{shown:?}");
    assert!(shown.log.contains("UNAUTHENTICATED"), "{shown:?}");
    browser.close().await;
    // The token the page was opened with is not left in its address.
    let mut browser = Browser::launch().await;
    let tab = browser
        .open(&gateway.with_token(&page_url(&gateway.http, "websocket", "a token")))
        .await;
    let shown = finished(&mut browser, &tab).await;
    assert_eq!(shown.output, "a token", "{shown:?}");
    let address = browser.eval(&tab, "location.href").await;
    assert!(!address.to_string().contains("token="), "{address}");
    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_resumes_after_its_websocket_is_cut_mid_stream() {
    let gateway = Gateway::start().await;
    // Sixty words stream as about five kilobytes of WebSocket messages; the
    // first socket carries the upgrade, the welcome, `accepted` and a few
    // tokens, and is cut in the middle of the answer.
    let prompt: String = (1..=60).map(|i| format!("word{i} ")).collect();
    let prompt = prompt.trim_end().to_owned();
    let proxy = CuttingProxy::start(gateway.http.clone(), 1500).await;
    let mut browser = Browser::launch().await;
    let tab = browser
        .open(&gateway.with_token(&page_url(&proxy.addr, "websocket", &prompt)))
        .await;
    let shown = finished(&mut browser, &tab).await;
    assert_eq!(proxy.cuts(), 1, "{shown:?}");
    assert_eq!(shown.status, "done", "{shown:?}");
    assert_eq!(shown.output, prompt, "nothing lost or doubled: {shown:?}");
    assert_eq!(shown.transport, "websocket", "{shown:?}");
    assert_eq!(shown.usage, echo_usage(&prompt), "{shown:?}");
    assert_eq!(shown.resumes, "1", "{shown:?}");
    assert!(shown.log.contains("resuming session"), "{shown:?}");
    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_falls_back_to_websocket_when_webtransport_fails() {
    let gateway = Gateway::start().await;
    // The page is told of a WebTransport listener on a UDP port where
    // nothing listens.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let info = WebTransportInfo::new(addr, gtl_transport_quic::WT_PATH, [0x5a; 32]);
    let http = gateway.http_port_with(info).await;
    let mut browser = Browser::launch().await;
    let prompt = "no transport forced";
    let tab = browser
        .open(&gateway.with_token(&format!(
            "http://{http}/?prompt={}&autosend=1",
            query_escape(prompt)
        )))
        .await;
    let shown = finished(&mut browser, &tab).await;
    assert_eq!(shown.status, "done", "{shown:?}");
    assert_eq!(shown.output, prompt, "{shown:?}");
    assert_eq!(shown.transport, "websocket", "{shown:?}");
    assert!(
        shown.log.contains("webtransport:"),
        "it tried WebTransport first: {shown:?}"
    );
    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_streams_an_answer_over_webtransport() {
    let gateway = Gateway::start().await;
    let http = gateway.http.clone();
    let mut browser = Browser::launch().await;
    let prompt = "Hello from a real browser, over WebTransport & back.";
    let tab = browser
        .open(&gateway.with_token(&page_url(&http, "webtransport", prompt)))
        .await;
    let shown = finished(&mut browser, &tab).await;
    assert_eq!(shown.status, "done", "{shown:?}");
    assert_eq!(shown.output, prompt, "{shown:?}");
    assert_eq!(shown.transport, "webtransport", "{shown:?}");
    assert_eq!(shown.usage, echo_usage(prompt), "{shown:?}");
    assert_eq!(shown.resumes, "0", "{shown:?}");
    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_prefers_webtransport_when_the_gateway_has_it() {
    let gateway = Gateway::start().await;
    let http = gateway.http.clone();
    let mut browser = Browser::launch().await;
    let prompt = "no transport forced";
    let tab = browser
        .open(&gateway.with_token(&format!(
            "http://{http}/?prompt={}&autosend=1",
            query_escape(prompt)
        )))
        .await;
    let shown = finished(&mut browser, &tab).await;
    assert_eq!(shown.status, "done", "{shown:?}");
    assert_eq!(shown.output, prompt, "{shown:?}");
    assert_eq!(shown.transport, "webtransport", "{shown:?}");
    browser.close().await;
    gateway.stop().await;
}

/// Opens the page on `url` (a slow echo), waits until it shows the first
/// words of the answer, then returns.
async fn open_until_streaming(browser: &mut Browser, url: &str) -> Tab {
    let tab = browser.open(url).await;
    let start = Instant::now();
    loop {
        let now = shown(browser, &tab).await;
        if now.output.split_whitespace().count() >= 3 {
            assert_eq!(now.transport, "webtransport", "{now:?}");
            return tab;
        }
        assert!(start.elapsed() < DEADLINE, "no output: {now:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Forty words, sent 150 ms apart (model `echo:delay_ms=150`): a
/// connection cut after the first few is cut seconds before the last.
fn slow_prompt() -> String {
    let prompt: String = (1..=40).map(|i| format!("word{i} ")).collect();
    prompt.trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_resumes_over_webtransport_after_its_session_closes() {
    let gateway = Gateway::start().await;
    let http = gateway.http.clone();
    let mut browser = Browser::launch().await;
    let prompt = slow_prompt();
    let url = format!(
        "http://{http}/?transport=webtransport&model=echo:delay_ms=150&prompt={}&autosend=1",
        query_escape(&prompt)
    );
    let tab = open_until_streaming(&mut browser, &gateway.with_token(&url)).await;
    // The session ends under the call, as when the network drops it: the
    // page's open call stream fails.
    browser.eval(&tab, "connection.close()").await;
    let shown = finished(&mut browser, &tab).await;
    assert_eq!(shown.status, "done", "{shown:?}");
    assert_eq!(shown.output, prompt, "nothing lost or doubled: {shown:?}");
    assert_eq!(shown.transport, "webtransport", "{shown:?}");
    assert_eq!(shown.resumes, "1", "{shown:?}");
    assert_eq!(shown.usage, echo_usage(&prompt), "{shown:?}");
    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_resumes_over_websocket_when_its_webtransport_session_is_cut() {
    let gateway = Gateway::start().await;
    let (http, webtransport) = gateway.http_port_with_webtransport().await;
    let mut browser = Browser::launch().await;
    let prompt = slow_prompt();
    let url = format!(
        "http://{http}/?model=echo:delay_ms=150&prompt={}&autosend=1",
        query_escape(&prompt)
    );
    let tab = open_until_streaming(&mut browser, &gateway.with_token(&url)).await;
    // The gateway's HTTP/3 side goes away: the browser's session ends, and
    // so does every later attempt to open one.
    webtransport.close(0u32.into(), b"cut by the test");
    drop(webtransport);
    let shown = finished(&mut browser, &tab).await;
    assert_eq!(shown.status, "done", "{shown:?}");
    assert_eq!(shown.output, prompt, "nothing lost or doubled: {shown:?}");
    assert_eq!(shown.transport, "websocket", "{shown:?}");
    assert_eq!(shown.resumes, "1", "{shown:?}");
    assert_eq!(shown.usage, echo_usage(&prompt), "{shown:?}");
    assert!(
        shown.log.contains("connected over webtransport"),
        "{shown:?}"
    );
    browser.close().await;
    gateway.stop().await;
}
