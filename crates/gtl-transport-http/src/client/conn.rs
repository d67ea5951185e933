//! The connection's two halves: bounded queues to and from the bridge
//! task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use gtl_proto::{CodecError, Encoding, Frame, FrameRef};
use gtl_transport::{FrameRead, FrameWrite, TransportError};
use tokio::sync::mpsc;

/// A frame the client wrote: the frame, to route it, and its JSON, the
/// body of the request it becomes.
#[derive(Debug)]
pub(super) struct Written {
    pub(super) frame: Frame,
    pub(super) json: Bytes,
}

/// What the bridge hands the reading half: a frame, or why the connection
/// failed (after which nothing follows).
pub(super) type Delivery = Result<Frame, TransportError>;

/// The reading half: frames from the bridge.
#[derive(Debug)]
pub(super) struct BridgeRead {
    pub(super) from_bridge: mpsc::Receiver<Delivery>,
    /// The largest frame accepted, shared with the bridge, which applies
    /// it to the event streams it opens from then on.
    pub(super) max_frame_bytes: Arc<AtomicUsize>,
}

#[async_trait]
impl FrameRead for BridgeRead {
    async fn read_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        self.from_bridge.recv().await.transpose()
    }

    /// Over HTTP every frame is JSON (the welcome always says so): nothing
    /// to switch.
    fn set_encoding(&mut self, _encoding: Encoding) {}

    fn set_max_frame_bytes(&mut self, max: usize) {
        self.max_frame_bytes.store(max, Ordering::Relaxed);
    }
}

/// The writing half: frames are encoded to JSON as they are written (so a
/// frame too large is refused then, as on framed transports) and handed to
/// the bridge on `flush`.
#[derive(Debug)]
pub(super) struct BridgeWrite {
    /// `None` once closed.
    pub(super) to_bridge: Option<mpsc::Sender<Written>>,
    pub(super) buffered: Vec<Written>,
    pub(super) buffered_bytes: usize,
    pub(super) max_frame_bytes: usize,
}

#[async_trait]
impl FrameWrite for BridgeWrite {
    fn write_frame(&mut self, frame: FrameRef<'_>) -> Result<(), TransportError> {
        if frame.body.is_none() {
            return Err(CodecError::MissingBody {
                call_id: frame.call_id,
            }
            .into());
        }
        let mut json = Vec::new();
        frame
            .write_json(&mut json)
            .map_err(|e| TransportError::Codec(e.into()))?;
        if json.len() > self.max_frame_bytes {
            return Err(CodecError::FrameTooLarge {
                size: json.len(),
                max: self.max_frame_bytes,
            }
            .into());
        }
        self.buffered_bytes += json.len();
        self.buffered.push(Written {
            frame: frame.to_owned(),
            json: json.into(),
        });
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        let Some(to_bridge) = &self.to_bridge else {
            return Err(TransportError::Closed);
        };
        self.buffered_bytes = 0;
        for written in self.buffered.drain(..) {
            // A full queue waits: the bridge is that far behind.
            to_bridge
                .send(written)
                .await
                .map_err(|_| TransportError::Closed)?;
        }
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.buffered_bytes
    }

    fn set_encoding(&mut self, _encoding: Encoding) {}

    /// Closing the sending direction ends the connection's calls, as a
    /// framed server drops the calls of a peer that closed: the bridge
    /// stops, its requests are dropped, and the sessions wait for a resume.
    async fn close(&mut self) -> Result<(), TransportError> {
        let flushed = self.flush().await;
        self.to_bridge = None;
        flushed
    }
}
