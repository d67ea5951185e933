//! Writing answers: compact JSON and SSE events straight into the caller's
//! buffer.

use bytes::BufMut;
use gtl_proto::Usage;
use serde::Serialize;

/// Appends `value` as compact JSON.
///
/// Compact JSON has no raw newline (serde_json escapes control characters
/// in strings), so it always fits one SSE `data:` line.
pub(crate) fn json<B: BufMut, T: Serialize + ?Sized>(out: &mut B, value: &T) {
    // The values are this crate's own types (string keys, no failing
    // `Serialize`), and a `BufMut` writer only fails by panicking when a
    // fixed-size buffer is full, so there is no error to hand back.
    serde_json::to_writer(BufMut::writer(&mut *out), value)
        .expect("serializing a dialect value cannot fail");
}

/// The JSON of `value`, as a new body.
pub(crate) fn json_body<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    json(&mut out, value);
    out
}

/// Appends an SSE event with only a `data:` line (OpenAI's form).
pub(crate) fn data<B: BufMut, T: Serialize + ?Sized>(out: &mut B, value: &T) {
    out.put_slice(b"data: ");
    json(out, value);
    out.put_slice(b"\n\n");
}

/// Appends a named SSE event (Anthropic's form).
pub(crate) fn event<B: BufMut, T: Serialize + ?Sized>(out: &mut B, name: &str, value: &T) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\n");
    data(out, value);
}

/// Folds a `usage` event into the running total as protocol §2 says: a
/// later non-zero value replaces an earlier one, a zero never overwrites
/// (`gtl_core::Completion` folds the same way).
pub(crate) fn merge_usage(into: &mut Usage, new: &Usage) {
    if new.tokens_in != 0 {
        into.tokens_in = new.tokens_in;
    }
    if new.tokens_out != 0 {
        into.tokens_out = new.tokens_out;
    }
    if new.cost != 0.0 {
        into.cost = new.cost;
    }
    if new.cached_tokens != 0 {
        into.cached_tokens = new.cached_tokens;
    }
}

/// `unix` seconds as an RFC 3339 UTC timestamp, `1970-01-01T00:00:00Z`.
pub(crate) fn rfc3339(unix: u64) -> String {
    let days = unix / 86_400;
    let seconds = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_727_346_178), "2024-09-26T10:22:58Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
