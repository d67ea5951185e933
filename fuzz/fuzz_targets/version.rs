//! Version parsing and negotiation on arbitrary strings.
//!
//! The input is split at the first `|` into two `GTL-Version`-style lists
//! (offered, supported). Parsing must never panic, a parsed version must
//! print and parse back to itself (and be made of digits and dots only),
//! lists must skip empty elements, and negotiation must pick exactly the
//! highest version usable by both sides: the same answer whichever side
//! asks, from a major both speak, no higher than either side's best minor.

#![no_main]

use gtl_proto::{NegotiationError, SUPPORTED_VERSIONS, Version, negotiate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (left, right) = text.split_once('|').unwrap_or((text, "1.0"));

    for part in text.split([',', '|']) {
        check_single(part);
    }

    let offered = check_list(left);
    let supported = check_list(right);
    if let (Some(offered), Some(supported)) = (offered, supported) {
        check_negotiation(&offered, &supported);
        check_negotiation(&offered, SUPPORTED_VERSIONS);
        check_negotiation(SUPPORTED_VERSIONS, &offered);
    }
});

fn check_single(s: &str) {
    match s.parse::<Version>() {
        Ok(v) => {
            // Digits only: no sign, no empty part.
            assert!(
                s.trim()
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
                "{s:?} parsed as {v}"
            );
            let printed = v.to_string();
            assert_eq!(printed.parse::<Version>(), Ok(v), "{s:?} → {printed}");
            assert_eq!(printed, format!("{}.{}", v.major, v.minor));
        }
        Err(NegotiationError::Malformed(echo)) => assert_eq!(echo, s),
        Err(e) => panic!("parsing {s:?} gave {e}"),
    }
}

/// Parses a comma-separated list and checks it agrees with parsing each
/// non-empty element on its own (RFC 9110 §5.6.1: empty elements are
/// ignored).
fn check_list(header: &str) -> Option<Vec<Version>> {
    let list = Version::parse_list([header]);
    let single: Result<Vec<Version>, _> = header
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(str::parse)
        .collect();
    assert_eq!(list, single, "parse_list disagrees with parsing one by one");
    // A header given as several lines is the same as one joined by commas.
    let lines: Vec<&str> = header.splitn(3, ',').collect();
    assert_eq!(Version::parse_list(lines.iter().copied()), list);
    list.ok()
}

fn check_negotiation(offered: &[Version], supported: &[Version]) {
    let result = negotiate(offered, supported);
    assert_eq!(
        result.clone().ok(),
        negotiate(supported, offered).ok(),
        "negotiation is not symmetric"
    );
    // The expected answer, computed the slow way: over every shared major,
    // the lower of the two sides' highest minors; the highest of those.
    let best =
        |side: &[Version], major: u16| side.iter().filter(|v| v.major == major).max().copied();
    let expected = offered
        .iter()
        .filter_map(|o| Some(best(offered, o.major)?.min(best(supported, o.major)?)))
        .max();
    match (result, expected) {
        (Ok(v), Some(e)) => {
            assert_eq!(v, e);
            assert!(offered.contains(&v) || supported.contains(&v));
        }
        (
            Err(NegotiationError::Unsupported {
                offered: o,
                supported: s,
            }),
            None,
        ) => {
            let join = |vs: &[Version]| {
                vs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            assert_eq!(o, join(offered));
            assert_eq!(s, join(supported));
        }
        (got, want) => panic!("negotiate({offered:?}, {supported:?}) = {got:?}, expected {want:?}"),
    }
}
