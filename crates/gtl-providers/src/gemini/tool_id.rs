//! Tool call ids for Gemini's function calls.
//!
//! Gemini sends each `functionCall` complete, usually without an id. GTL
//! needs one, so the decoder makes it deterministic: the id Gemini gave,
//! or `call_{index}_{name}` with `index` counting the calls of the answer
//! from 0.
//!
//! Gemini 3 attaches a `thoughtSignature` to (the first of) its function
//! calls and rejects a later request whose replayed call lacks it. GTL's
//! `tool_call` has no field for it, so it rides in the id after a `~`:
//! `call_0_get_weather~<base64 signature>`. Clients echo ids back verbatim
//! in `tool_calls` and `tool_call_id`, which brings the signature back to
//! the request builder; ids stay opaque strings to everyone else.

/// Separates the id proper from the signature.
const SEPARATOR: char = '~';

/// The GTL id of the `index`th function call of an answer.
pub(crate) fn make(index: usize, name: &str, id: &str, signature: &str) -> String {
    let mut out = if id.is_empty() {
        format!("call_{index}_{name}")
    } else {
        id.to_owned()
    };
    if !signature.is_empty() {
        out.push(SEPARATOR);
        out.push_str(signature);
    }
    out
}

/// The thought signature carried in `id`, if it holds one that is base64.
pub(crate) fn signature(id: &str) -> Option<&str> {
    let (_, signature) = id.split_once(SEPARATOR)?;
    let base64 = !signature.is_empty()
        && signature
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'));
    base64.then_some(signature)
}
