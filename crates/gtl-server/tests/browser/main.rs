//! The web chat page in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) loads the page from a real
//! gateway, sends a prompt and streams the echo provider's answer; a test
//! cuts the connection mid-stream and the page resumes it.

mod cdp;
mod proxy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gtl_providers::{EchoProvider, Registry};
use gtl_server::{Config, Server};
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
    stop: Option<oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<()>,
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
        let mut registry = Registry::new();
        registry.add(Arc::new(EchoProvider::new()));
        let server = Server::bind(&config, registry).await.unwrap();
        let http = server
            .endpoints()
            .into_iter()
            .find_map(|e| e.strip_prefix("http://").map(str::to_owned))
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            http,
            stop: Some(stop),
            serving,
            _dir: dir,
        }
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

/// Looks at the page until its call has ended (`#status` is `done` or an
/// error code), within [`DEADLINE`].
async fn finished(browser: &mut Browser, tab: &Tab) -> Shown {
    let start = Instant::now();
    loop {
        let value = browser.eval(tab, READ_PAGE).await;
        let field = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
        let shown = Shown {
            status: field("status"),
            output: field("output"),
            transport: field("transport"),
            usage: field("usage"),
            resumes: field("resumes"),
            log: field("log"),
        };
        if !matches!(shown.status.as_str(), "" | "idle" | "streaming") {
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
        .open(&page_url(&gateway.http, "websocket", prompt))
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
        .open(&page_url(&proxy.addr, "websocket", &prompt))
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
