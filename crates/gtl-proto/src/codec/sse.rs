//! Server-Sent Events: framing GTL frames as events, and a parser of any
//! `text/event-stream` (for the SSE transport's client and for providers).
//!
//! Each frame is one event: `event:` is the frame type, `id:` the session
//! sequence number (so a reconnecting browser's `Last-Event-ID` is exactly
//! the `after_seq` of a resume), `data:` the frame's JSON form. JSON never
//! holds a raw newline, so one `data:` line carries the whole frame.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};

use crate::{CodecError, FrameRef};

/// Appends one SSE event for `frame` to `dst`. On error `dst` is unchanged.
pub fn encode(frame: FrameRef<'_>, max: usize, dst: &mut BytesMut) -> Result<(), CodecError> {
    let body = frame.body.ok_or(CodecError::MissingBody {
        call_id: frame.call_id,
    })?;
    let start = dst.len();
    dst.put_slice(b"event: ");
    dst.put_slice(body.frame_type().as_str().as_bytes());
    if frame.seq != 0 {
        // Writing into a BytesMut cannot fail.
        let _ = write!(dst, "\nid: {}", frame.seq);
    }
    dst.put_slice(b"\ndata: ");
    let json_start = dst.len();
    if let Err(e) = frame.write_json(&mut super::Appender(dst)) {
        dst.truncate(start);
        return Err(e.into());
    }
    let size = dst.len() - json_start;
    if size > max {
        dst.truncate(start);
        return Err(CodecError::FrameTooLarge { size, max });
    }
    dst.put_slice(b"\n\n");
    Ok(())
}

/// Appends an SSE comment line, e.g. a keep-alive that proxies will not
/// buffer forever.
pub fn comment(text: &str, dst: &mut BytesMut) {
    for line in text.split('\n') {
        dst.put_slice(b": ");
        dst.put_slice(line.as_bytes());
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
}

/// One parsed SSE event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field; empty means the default type, `message`.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    /// The `retry:` field, in milliseconds, if it had a valid one.
    pub retry: Option<u64>,
}

/// An incremental parser of `text/event-stream`, as the HTML standard
/// specifies it: `\n`, `\r\n` and `\r` line ends, `:` comment lines,
/// multi-line `data:`, one optional space after the colon, a UTF-8 BOM at
/// the start, events split across reads at any byte.
///
/// Feed it bytes as they arrive; it returns the events completed so far.
/// A line longer than the limit is an error (a stream without line ends
/// must not grow memory without bound).
#[derive(Debug, Clone)]
pub struct Parser {
    line: Vec<u8>,
    pending: Event,
    has_data: bool,
    /// The previous chunk ended in `\r`: a `\n` starting the next one
    /// belongs to it.
    after_cr: bool,
    started: bool,
    max_line: usize,
}

/// A line exceeded the parser's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SSE line longer than {max} bytes")]
pub struct LineTooLong {
    /// The limit.
    pub max: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new(crate::DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Parser {
    /// A parser accepting lines up to `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            line: Vec::new(),
            pending: Event::default(),
            has_data: false,
            after_cr: false,
            started: false,
            max_line,
        }
    }

    /// Parses `chunk`, appending completed events to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), LineTooLong> {
        let mut rest = chunk;
        if !self.started && !rest.is_empty() {
            // The BOM may itself arrive split; only strip it when whole.
            let bom = b"\xEF\xBB\xBF";
            let have = self.line.len() + rest.len();
            if have < bom.len() && bom.starts_with(&[&self.line[..], rest].concat()) {
                self.line.extend_from_slice(rest);
                return Ok(());
            }
            let mut head = std::mem::take(&mut self.line);
            head.extend_from_slice(rest);
            self.started = true;
            let body = head.strip_prefix(bom).unwrap_or(&head).to_vec();
            return self.feed(&body, out);
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', rest) {
            self.take_line(&rest[..end], out)?;
            if rest[end] == b'\r' {
                match rest.get(end + 1) {
                    Some(b'\n') => rest = &rest[end + 2..],
                    Some(_) => rest = &rest[end + 1..],
                    None => {
                        self.after_cr = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[end + 1..];
            }
        }
        if self.line.len() + rest.len() > self.max_line {
            self.line.clear();
            return Err(LineTooLong { max: self.max_line });
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// Ends the stream. An event without its blank line is discarded, as
    /// the standard says; returns whether one was.
    pub fn finish(&mut self) -> bool {
        let incomplete = self.has_data || !self.line.is_empty();
        *self = Self::new(self.max_line);
        incomplete
    }

    fn take_line(&mut self, tail: &[u8], out: &mut Vec<Event>) -> Result<(), LineTooLong> {
        if self.line.len() + tail.len() > self.max_line {
            self.line.clear();
            return Err(LineTooLong { max: self.max_line });
        }
        let owned;
        let line: &[u8] = if self.line.is_empty() {
            tail
        } else {
            self.line.extend_from_slice(tail);
            owned = std::mem::take(&mut self.line);
            &owned
        };
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => self.pending.event = value.into_owned(),
            b"data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(&value);
                self.has_data = true;
            }
            b"id" if !value.contains('\0') => self.pending.id = Some(value.into_owned()),
            b"retry" => {
                // Only ASCII digits, as the standard says: `parse` alone
                // would also take a leading `+`.
                if value.bytes().all(|b| b.is_ascii_digit())
                    && let Ok(ms) = value.parse()
                {
                    self.pending.retry = Some(ms);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let event = std::mem::take(&mut self.pending);
        if std::mem::take(&mut self.has_data) {
            out.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], cut: usize) -> Vec<Event> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        parser.feed(&input[..cut], &mut out).unwrap();
        parser.feed(&input[cut..], &mut out).unwrap();
        out
    }

    #[test]
    fn events_split_at_every_byte_parse_the_same() {
        let input = "\u{feff}: comment\r\nevent: token\r\nid: 7\r\ndata: {\"a\":\r\ndata:1}\r\n\r\ndata: é🦀\n\nretry: 50\rdata: x\r\r";
        let whole = parse_in_pieces(input.as_bytes(), 0);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].event, "token");
        assert_eq!(whole[0].id.as_deref(), Some("7"));
        assert_eq!(whole[0].data, "{\"a\":\n1}");
        assert_eq!(whole[1].data, "é🦀");
        assert_eq!(whole[2].retry, Some(50));
        for cut in 0..=input.len() {
            assert_eq!(
                parse_in_pieces(input.as_bytes(), cut),
                whole,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn events_without_data_and_unterminated_events_are_dropped() {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        parser.feed(b"event: ping\n\ndata: cut", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(parser.finish());
    }

    /// `retry` takes only ASCII digits. A leading `+` was accepted (caught
    /// by the `sse_parser` fuzz target's reference parser).
    #[test]
    fn retry_is_digits_only() {
        let mut out = Vec::new();
        Parser::default()
            .feed(
                b"retry: +5\ndata: a\n\nretry: 7\ndata: b\n\nretry: -1\ndata: c\n\nretry:\ndata: d\n\n",
                &mut out,
            )
            .unwrap();
        let retries: Vec<Option<u64>> = out.iter().map(|e| e.retry).collect();
        assert_eq!(retries, [None, Some(7), None, None]);
    }

    #[test]
    fn overlong_lines_are_an_error() {
        let mut parser = Parser::new(8);
        assert_eq!(
            parser.feed(b"data: 0123456789", &mut Vec::new()),
            Err(LineTooLong { max: 8 })
        );
    }

    #[test]
    fn encoded_frames_parse_back() {
        let frame = crate::Frame::event(
            "s",
            3,
            crate::Body::Token(crate::Token {
                text: "a\nb".into(),
            }),
        );
        let mut wire = BytesMut::new();
        encode(frame.as_ref(), 1024, &mut wire).unwrap();
        let mut out = Vec::new();
        Parser::default().feed(&wire, &mut out).unwrap();
        assert_eq!(out[0].event, "token");
        assert_eq!(out[0].id.as_deref(), Some("3"));
        assert_eq!(
            crate::Frame::from_json(out[0].data.as_bytes()).unwrap(),
            frame
        );
    }
}
