//! Bytes no encoder would produce, for the checks that need them: a raw
//! socket to a `tcp://` or `unix://` endpoint, JSON lines after `hello`.

use gtl_client::proto::{Body, Codec, Encoding, ErrorCode, Frame};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::wire::{Failed, PATIENCE, describe};

trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

pub(crate) struct Raw {
    stream: BufReader<Box<dyn Duplex>>,
}

impl Raw {
    /// A raw connection to `url` after a JSON `hello` with `token`; `None`
    /// for a scheme this cannot open raw (anything but plain TCP and Unix
    /// sockets).
    pub(crate) async fn ready(url: &str, token: &str) -> Result<Option<Self>, Failed> {
        let stream: Box<dyn Duplex> = if let Some(addr) = url.strip_prefix("tcp://") {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            Box::new(tcp)
        } else if let Some(path) = url.strip_prefix("unix://") {
            let unix = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            Box::new(unix)
        } else {
            return Ok(None);
        };
        let mut raw = Self {
            stream: BufReader::new(stream),
        };
        let hello = serde_json::json!({"type": "hello", "versions": ["1.0"], "token": token});
        raw.send_line(&hello.to_string()).await?;
        let welcome = raw.recv().await?;
        if !matches!(welcome.body, Some(Body::Welcome(_))) {
            return Err(format!("hello answered with {}", describe(&welcome)));
        }
        Ok(Some(raw))
    }

    pub(crate) async fn send_line(&mut self, line: &str) -> Result<(), Failed> {
        let stream = self.stream.get_mut();
        stream
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("send failed: {e}"))
    }

    pub(crate) async fn recv(&mut self) -> Result<Frame, Failed> {
        let mut line = String::new();
        let read = tokio::time::timeout(PATIENCE, self.stream.read_line(&mut line))
            .await
            .map_err(|_| "no frame within 10 s".to_owned())?
            .map_err(|e| format!("read failed: {e}"))?;
        if read == 0 {
            return Err("the server closed the connection".into());
        }
        let mut buf = bytes::BytesMut::from(line.as_bytes());
        Codec::new(Encoding::Json)
            .decode(&mut buf)
            .map_err(|e| format!("undecodable frame from the server: {e}"))?
            .ok_or_else(|| "an incomplete frame".to_owned())
    }
}

/// A line that is not JSON, then a frame with an unknown `type` on call 5:
/// each refused with `INVALID_REQUEST` (the second on its call when the
/// server can read that far, else 0), and the connection goes on (§6, §10).
pub(crate) async fn undecodable(url: &str, token: &str) -> Result<bool, Failed> {
    let Some(mut raw) = Raw::ready(url, token).await? else {
        return Ok(false);
    };
    raw.send_line("this is not json").await?;
    let frame = raw.recv().await?;
    let code = |f: &Frame| match &f.body {
        Some(Body::Error(e)) => Some(e.code()),
        _ => None,
    };
    if code(&frame) != Some(ErrorCode::InvalidRequest) || frame.seq != 0 {
        return Err(format!(
            "a line that is not JSON answered with {}",
            describe(&frame)
        ));
    }
    raw.send_line(r#"{"type":"no_such_frame","call_id":5}"#)
        .await?;
    let frame = raw.recv().await?;
    if code(&frame) != Some(ErrorCode::InvalidRequest) || ![0, 5].contains(&frame.call_id) {
        return Err(format!(
            "an unknown frame type answered with {}",
            describe(&frame)
        ));
    }
    raw.send_line(r#"{"type":"ping","nonce":9}"#).await?;
    let frame = raw.recv().await?;
    match frame.body {
        Some(Body::Pong(p)) if p.nonce == 9 => Ok(true),
        _ => Err(format!(
            "after the bad frames, ping answered with {}",
            describe(&frame)
        )),
    }
}
