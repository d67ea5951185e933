//! Streamed answers in the providers' wire formats, for fault injection.
//!
//! An [`SseAnswer`] is a small, hand-made `text/event-stream` body in
//! OpenAI's or Anthropic's format that knows where each text piece ends,
//! so a [`Reply`] can break it at an exact point: cut the connection,
//! stall, or send a malformed event after the k-th piece.

use std::time::Duration;

use crate::Reply;

/// A streamed answer and the byte offset just after each text piece's
/// event.
#[derive(Debug, Clone)]
pub struct SseAnswer {
    body: Vec<u8>,
    /// Where each piece's event starts.
    before_piece: Vec<usize>,
    /// Where each piece's event ends.
    after_piece: Vec<usize>,
}

impl SseAnswer {
    /// OpenAI Chat Completions chunks: a role chunk, one chunk per piece,
    /// a `stop` chunk, a usage chunk (`tokens_in`, one output token per
    /// piece) and `[DONE]`.
    pub fn openai(model: &str, pieces: &[&str], tokens_in: u64) -> Self {
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            let chunk = serde_json::json!({
                "id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            format!("data: {chunk}\n\n")
        };
        let mut answer = Self::start(&chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            serde_json::Value::Null,
        ));
        for piece in pieces {
            answer.piece(&chunk(
                serde_json::json!({ "content": piece }),
                serde_json::Value::Null,
            ));
        }
        answer.push(&chunk(serde_json::json!({}), "stop".into()));
        let usage = serde_json::json!({
            "id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": pieces.len(),
                      "total_tokens": tokens_in + pieces.len() as u64},
        });
        answer.push(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
        answer
    }

    /// Anthropic Messages events: `message_start` (with `tokens_in`), a
    /// text block with one delta per piece, `message_delta` (`end_turn`,
    /// one output token per piece) and `message_stop`.
    pub fn anthropic(model: &str, pieces: &[&str], tokens_in: u64) -> Self {
        let event =
            |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
        let mut answer = Self::start(&event(
            "message_start",
            serde_json::json!({"type": "message_start", "message": {
                "id": "msg_fault", "type": "message", "role": "assistant", "content": [],
                "model": model, "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": tokens_in, "output_tokens": 1}}}),
        ));
        answer.push(&event(
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0,
                               "content_block": {"type": "text", "text": ""}}),
        ));
        for piece in pieces {
            answer.piece(&event(
                "content_block_delta",
                serde_json::json!({"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        answer.push(&event(
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ));
        answer.push(&event(
            "message_delta",
            serde_json::json!({"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                               "usage": {"output_tokens": pieces.len()}}),
        ));
        answer.push(&event(
            "message_stop",
            serde_json::json!({"type": "message_stop"}),
        ));
        answer
    }

    fn start(first: &str) -> Self {
        Self {
            body: first.as_bytes().to_vec(),
            before_piece: Vec::new(),
            after_piece: Vec::new(),
        }
    }

    fn push(&mut self, event: &str) {
        self.body.extend_from_slice(event.as_bytes());
    }

    fn piece(&mut self, event: &str) {
        self.before_piece.push(self.body.len());
        self.push(event);
        self.after_piece.push(self.body.len());
    }

    /// The whole body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The whole answer, as a `200` SSE reply, each piece's event written
    /// on its own.
    pub fn reply(&self) -> Reply {
        Reply::sse(self.body.clone())
            .split_at(self.before_piece.iter().chain(&self.after_piece).copied())
    }

    /// The answer up to and including the `pieces`-th piece, then the
    /// connection is cut.
    pub fn cut_after(&self, pieces: usize) -> Reply {
        self.reply().cut_after(self.offset(pieces))
    }

    /// The answer up to and including the `pieces`-th piece, then silence
    /// until the client gives up.
    pub fn stall_after(&self, pieces: usize) -> Reply {
        self.reply().stall_after(self.offset(pieces))
    }

    /// The answer up to and including the `pieces`-th piece, then an event
    /// whose data is not JSON, then the rest.
    pub fn malformed_after(&self, pieces: usize) -> Reply {
        let at = self.offset(pieces);
        let mut body = self.body[..at].to_vec();
        body.extend_from_slice(b"data: {\"choices\": [\n\n");
        body.extend_from_slice(&self.body[at..]);
        Reply::sse(body).split_at([at])
    }

    /// The whole answer, each piece's event sent on its own `delay` after
    /// the one before (a slow drip).
    pub fn drip(&self, delay: Duration) -> Reply {
        self.reply().delay(delay)
    }

    /// The offset after `pieces` pieces (0: just before the first one).
    fn offset(&self, pieces: usize) -> usize {
        match pieces {
            0 => self
                .before_piece
                .first()
                .copied()
                .unwrap_or(self.body.len()),
            k => self.after_piece[k - 1],
        }
    }
}
