//! Headless Chromium driven over the Chrome DevTools Protocol.
//!
//! Why CDP and not WebDriver: the tests need to open a page and read its
//! DOM, nothing more. CDP does that over one WebSocket to the browser
//! process itself, with the WebSocket client and JSON crates the tests
//! already use; WebDriver (chromedriver, fantoccini) would add a second
//! process that must match the browser's version, and a dependency tree
//! of its own, for the same two calls.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Where Debian's package puts the browser; `GTL_CHROMIUM` overrides it.
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long the browser may take to start and to answer one command.
const STARTUP: Duration = Duration::from_secs(60);
const COMMAND: Duration = Duration::from_secs(30);

/// A headless Chromium with a fresh profile, killed when dropped.
pub(crate) struct Browser {
    child: tokio::process::Child,
    devtools: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// A tab, attached to by a CDP session.
pub(crate) struct Tab {
    session: String,
}

impl Browser {
    /// Starts the browser. Panics, saying how to get it, when it is not
    /// installed: these tests never pass without having run.
    pub(crate) async fn launch() -> Self {
        let path =
            std::env::var_os("GTL_CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
        assert!(
            path.exists(),
            "the browser tests need headless Chromium at {} (Debian's `chromium` package); \
             `bash .ci/run` installs it (CI always has it), or run `apt-get install -y chromium`",
            path.display()
        );
        let profile = tempfile::tempdir().unwrap();
        // The flags a root, headless Chromium needs on a machine with no
        // network but loopback: no sandbox (root), no GPU, and none of the
        // background connections to Google's services.
        let mut child = tokio::process::Command::new(&path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        // The browser prints its DevTools address once it listens.
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let find = async {
            let mut seen = Vec::new();
            while let Some(line) = stderr.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
                seen.push(line);
            }
            panic!("Chromium exited before listening: {}", seen.join("\n"));
        };
        let url = tokio::time::timeout(STARTUP, find)
            .await
            .expect("Chromium did not start in time");
        // Keep draining its log so a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        let (devtools, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self {
            child,
            devtools,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Sends one command (to a tab's session, or to the browser) and waits
    /// for its result, skipping the events that arrive meanwhile.
    async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let answer = self.try_command(session, method, params).await;
        answer.unwrap_or_else(|error| panic!("{method}: {error}"))
    }

    /// [`command`](Self::command), with the browser's refusal as an error.
    async fn try_command(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        self.devtools
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        let answer = async {
            loop {
                let message = self
                    .devtools
                    .next()
                    .await
                    .expect("DevTools closed")
                    .unwrap();
                let Message::Text(text) = message else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["id"] == id {
                    return value;
                }
            }
        };
        let value = tokio::time::timeout(COMMAND, answer)
            .await
            .unwrap_or_else(|_| panic!("no answer to {method}"));
        match value.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(value["result"].clone()),
        }
    }

    /// Opens `url` in a new tab.
    pub(crate) async fn open(&mut self, url: &str) -> Tab {
        let target = self
            .command(None, "Target.createTarget", json!({"url": url}))
            .await;
        let attached = self
            .command(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        Tab {
            session: attached["sessionId"].as_str().unwrap().to_owned(),
        }
    }

    /// The value of a JavaScript expression in `tab`.
    pub(crate) async fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        self.try_eval(tab, expression)
            .await
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// The value of a JavaScript expression in `tab`, or why there is none
    /// (e.g. the page was still being replaced by the one loading).
    pub(crate) async fn try_eval(&mut self, tab: &Tab, expression: &str) -> Result<Value, Value> {
        let result = self
            .try_command(
                Some(&tab.session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await?;
        match result.get("exceptionDetails") {
            Some(exception) => Err(exception.clone()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Closes the browser and waits for it to exit.
    pub(crate) async fn close(mut self) {
        let _ = self.command(None, "Browser.close", json!({})).await;
        if tokio::time::timeout(STARTUP, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
