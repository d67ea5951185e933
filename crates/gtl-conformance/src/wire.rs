//! One connection as a checker drives it: frames written and read by
//! hand, every wait bounded.

use std::time::Duration;

use gtl_client::proto::{Body, Encoding, Frame, Hello, Welcome};
use gtl_client::{ConnectOpts, Connection, hello_token, open_frames};

/// How long any one frame may take to arrive.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// A failed check, in words.
pub(crate) type Failed = String;

pub(crate) struct Peer {
    conn: Connection,
}

impl Peer {
    /// A connection to `url`, nothing sent yet.
    pub(crate) async fn open(url: &str, opts: &ConnectOpts) -> Result<Self, Failed> {
        let conn = open_frames(url, opts)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        Ok(Self { conn })
    }

    /// A connection after `hello` and `welcome` (JSON, or protobuf when
    /// `protobuf` and the server picks it).
    pub(crate) async fn ready(
        url: &str,
        opts: &ConnectOpts,
        protobuf: bool,
    ) -> Result<(Self, Welcome), Failed> {
        let mut peer = Self::open(url, opts).await?;
        let mut encodings = vec![Encoding::Json as i32];
        if protobuf {
            encodings.insert(0, Encoding::Protobuf as i32);
        }
        peer.send(Frame::control(
            0,
            Body::Hello(Box::new(Hello {
                versions: vec!["1.0".into()],
                encodings,
                token: hello_token(url, opts),
                client: "gtl-conformance".into(),
                ..Hello::default()
            })),
        ))
        .await?;
        let frame = peer
            .recv()
            .await?
            .ok_or("closed instead of answering hello")?;
        let Some(Body::Welcome(welcome)) = frame.body else {
            return Err(format!("hello answered with {}", describe(&frame)));
        };
        let encoding = welcome.encoding();
        peer.conn.read.set_encoding(encoding);
        peer.conn.write.set_encoding(encoding);
        Ok((peer, *welcome))
    }

    pub(crate) async fn send(&mut self, frame: Frame) -> Result<(), Failed> {
        self.conn
            .write
            .write_frame(frame.as_ref())
            .map_err(|e| format!("cannot send {}: {e}", describe(&frame)))?;
        tokio::time::timeout(PATIENCE, self.conn.write.flush())
            .await
            .map_err(|_| "the server took nothing for 10 s".to_owned())?
            .map_err(|e| format!("send failed: {e}"))
    }

    /// The next frame; `None` when the server closed.
    pub(crate) async fn recv(&mut self) -> Result<Option<Frame>, Failed> {
        match tokio::time::timeout(PATIENCE, self.conn.read.read_frame()).await {
            Err(_) => Err("no frame within 10 s".into()),
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e)) if e.is_recoverable() => {
                Err(format!("undecodable frame from the server: {e}"))
            }
            Ok(Err(_)) => Ok(None),
        }
    }

    /// The next frame of call `call_id`, skipping others.
    pub(crate) async fn recv_call(&mut self, call_id: u64) -> Result<Frame, Failed> {
        loop {
            let frame = self
                .recv()
                .await?
                .ok_or_else(|| format!("closed while call {call_id} waited for a frame"))?;
            if frame.call_id == call_id {
                return Ok(frame);
            }
        }
    }

    /// Every frame of call `call_id` through the one that ends it (§2.1);
    /// in a session.pipe call (`pipe`) a `done` ends only its turn.
    pub(crate) async fn until_end(
        &mut self,
        call_id: u64,
        pipe: bool,
    ) -> Result<Vec<Frame>, Failed> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv_call(call_id).await?;
            let end = ends_call(&frame, pipe);
            frames.push(frame);
            if end {
                return Ok(frames);
            }
        }
    }

    /// Waits for the server to close the connection.
    pub(crate) async fn closed(&mut self) -> Result<(), Failed> {
        match self.recv().await? {
            None => Ok(()),
            Some(frame) => Err(format!("expected the close, got {}", describe(&frame))),
        }
    }
}

/// Whether `frame` ends its call (§2.1): any `error`; `done` with seq 0
/// (models.list); a `done` event, except a session.pipe turn's, which only
/// `end_of_input` ends.
fn ends_call(frame: &Frame, pipe: bool) -> bool {
    match &frame.body {
        Some(Body::Error(_)) => true,
        Some(Body::Done(done)) => frame.seq == 0 || !pipe || done.finish_reason == "end_of_input",
        _ => false,
    }
}

/// A frame in a few words, for failure messages.
pub(crate) fn describe(frame: &Frame) -> String {
    let kind = frame
        .body
        .as_ref()
        .map_or("frame without body", |b| b.frame_type().as_str());
    let mut text = format!("`{kind}` (call_id {}, seq {})", frame.call_id, frame.seq);
    if let Some(Body::Error(e)) = &frame.body {
        text.push_str(&format!(
            " {}: {}",
            e.code().as_str_name().trim_start_matches("ERROR_CODE_"),
            e.message
        ));
    }
    text
}
