//! docs/protocol.md §14.1, the worked transcript of a whole session,
//! against the real server: every client frame in it is sent as written
//! (the local token and the resume tokens filled in), and every server
//! frame in it must be exactly the next frame on its connection.

use bytes::BytesMut;
use gtl_proto::{Body, Codec, Encoding, Frame};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::support::{PATIENCE, ServerProcess, socket};

/// One line of the transcript.
#[derive(Debug)]
enum Step {
    Send(char, Frame),
    Receive(char, Frame),
    /// Connection A drops.
    CutA,
}

fn transcript() -> Vec<Step> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc.find("### 14.1").expect("docs/protocol.md has §14.1");
    let end = doc[start..].find("\n## ").map_or(doc.len(), |i| start + i);
    let mut steps = Vec::new();
    let mut pending = None;
    let mut lines = doc[start..end].lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("**") {
            let mut chars = rest.chars();
            let conn = chars.next().unwrap();
            let arrow = chars.nth(1).unwrap();
            pending = Some((conn, arrow));
        } else if line.starts_with("*A's connection drops") {
            steps.push(Step::CutA);
        } else if line == "```json" {
            let json = lines.next().unwrap();
            let frame = Frame::from_json(json.as_bytes()).unwrap();
            steps.push(match pending.take().expect("a frame without its arrow") {
                (conn, '→') => Step::Send(conn, frame),
                (conn, _) => Step::Receive(conn, frame),
            });
        }
    }
    steps
}

trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// One connection, framed by hand.
struct Wire {
    stream: Box<dyn Duplex>,
    codec: Codec,
    buf: BytesMut,
}

impl Wire {
    fn new(stream: Box<dyn Duplex>) -> Self {
        Self {
            stream,
            codec: Codec::new(Encoding::Json),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        self.codec.encode(frame.as_ref(), &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    async fn recv(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf).unwrap() {
                return frame;
            }
            let read = self.stream.read_buf(&mut self.buf);
            let n = tokio::time::timeout(PATIENCE, read).await.unwrap().unwrap();
            assert!(n > 0, "the server closed the connection");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_transcript_is_what_the_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;
    let tcp = tokio::net::TcpStream::connect(&server.tcp).await.unwrap();
    let uds = tokio::net::UnixStream::connect(socket(dir.path()))
        .await
        .unwrap();
    let mut a = Some(Wire::new(Box::new(tcp)));
    let mut b = Wire::new(Box::new(uds));
    // The resume tokens the server drew, by the placeholder that stands
    // for each in the transcript.
    let mut tokens: Vec<(String, String)> = Vec::new();
    let steps = transcript();
    assert!(steps.len() > 30, "{steps:?}");
    for step in steps {
        match step {
            Step::CutA => drop(a.take()),
            Step::Send(conn, mut frame) => {
                match &mut frame.body {
                    Some(Body::Hello(hello)) if hello.token == "local-token" => {
                        hello.token = server.token.clone();
                    }
                    Some(Body::Resume(resume)) => {
                        let (_, real) = tokens
                            .iter()
                            .find(|(stand_in, _)| *stand_in == resume.resume_token)
                            .expect("a resume token the transcript named");
                        resume.resume_token = real.clone();
                    }
                    _ => {}
                }
                let wire = if conn == 'A' {
                    a.as_mut().unwrap()
                } else {
                    &mut b
                };
                wire.send(&frame).await;
            }
            Step::Receive(conn, want) => {
                let wire = if conn == 'A' {
                    a.as_mut().unwrap()
                } else {
                    &mut b
                };
                let mut got = wire.recv().await;
                if let (Some(Body::Accepted(got)), Some(Body::Accepted(want))) =
                    (&mut got.body, &want.body)
                    && !want.resume_token.is_empty()
                {
                    assert!(got.resume_token.len() >= 22, "a short resume token");
                    let real = std::mem::replace(&mut got.resume_token, want.resume_token.clone());
                    tokens.push((want.resume_token.clone(), real));
                }
                assert_eq!(got, want, "connection {conn}");
                if let Some(Body::Welcome(welcome)) = &got.body {
                    wire.codec.set_encoding(welcome.encoding());
                }
            }
        }
    }
}
