//! docs/protocol.md against the code: every test vector (a canonical JSON
//! frame followed by its protobuf bytes in hex) must hold exactly, and the
//! error-code table must say what `ErrorCode` does.

use gtl_proto::{ErrorCode, Frame};
use prost::Message as _;

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The body of the `## …` section whose title contains `title`.
fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let start = doc
        .match_indices("\n## ")
        .map(|(i, _)| i + 1)
        .find(|&i| doc[i..].lines().next().is_some_and(|l| l.contains(title)))
        .unwrap_or_else(|| panic!("docs/protocol.md has no `## …{title}…` section"));
    let body = &doc[start..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

/// Fenced code blocks in order: (info string, content, line of the fence).
fn fenced_blocks(text: &str) -> Vec<(String, String, usize)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut content = Vec::new();
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            if line.starts_with("```") {
                closed = true;
                break;
            }
            content.push(line);
        }
        assert!(closed, "unclosed code block at line {n} of the section");
        blocks.push((info.trim().to_owned(), content.join("\n"), n));
    }
    blocks
}

/// Every ```json block must be followed directly by a ```hex block.
fn vectors(section: &str) -> Vec<(String, Vec<u8>)> {
    let blocks = fenced_blocks(section);
    let mut pairs = Vec::new();
    let mut iter = blocks.iter().peekable();
    while let Some((info, content, line)) = iter.next() {
        match info.as_str() {
            "json" => {
                let Some((_, hex, _)) = iter.next_if(|(info, ..)| info == "hex") else {
                    panic!("json block at line {line} is not followed by a hex block");
                };
                assert_eq!(
                    content.lines().count(),
                    1,
                    "json block at line {line} must be one line"
                );
                pairs.push((content.clone(), parse_hex(hex, *line)));
            }
            other => panic!("unexpected ```{other} block at line {line} among the vectors"),
        }
    }
    pairs
}

fn parse_hex(hex: &str, line: usize) -> Vec<u8> {
    hex.split_whitespace()
        .flat_map(|word| {
            assert!(
                word.len() % 2 == 0 && word.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "hex block after line {line}: `{word}` is not lowercase hex bytes"
            );
            (0..word.len())
                .step_by(2)
                .map(move |i| u8::from_str_radix(&word[i..i + 2], 16).unwrap())
        })
        .collect()
}

#[test]
fn test_vectors_hold_in_both_encodings() {
    let doc = protocol_md();
    let pairs = vectors(section(&doc, "Test vectors"));
    assert!(
        pairs.len() >= 12,
        "only {} test vectors found in docs/protocol.md",
        pairs.len()
    );
    for (json, wire) in &pairs {
        let from_json = Frame::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{json}\n{e}"));
        let from_wire = Frame::decode(&wire[..]).unwrap_or_else(|e| panic!("{json}\n{e}"));
        assert_eq!(from_json, from_wire, "JSON and protobuf differ: {json}");
        assert_eq!(
            from_json.to_json().unwrap(),
            *json,
            "the vector is not canonical JSON"
        );
        assert_eq!(
            from_json.encode_to_vec(),
            *wire,
            "protobuf encoding differs: {json}"
        );
        let mut borrowed = Vec::new();
        from_json.as_ref().encode_protobuf(&mut borrowed);
        assert_eq!(borrowed, *wire, "FrameRef encoding differs: {json}");
    }
}

#[test]
fn test_vectors_cover_every_event_and_the_main_control_frames() {
    let doc = protocol_md();
    let types: Vec<_> = vectors(section(&doc, "Test vectors"))
        .iter()
        .map(|(json, _)| {
            Frame::from_json(json.as_bytes())
                .unwrap()
                .frame_type()
                .unwrap()
        })
        .collect();
    for &t in gtl_proto::FrameType::ALL {
        assert!(types.contains(&t), "no test vector for `{}`", t.as_str());
    }
}

/// The canonical gRPC status names, by number (google.rpc.Code).
fn grpc_name(code: i32) -> &'static str {
    match code {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        other => panic!("{other} is not a gRPC error status"),
    }
}

#[test]
fn error_table_matches_the_code() {
    let doc = protocol_md();
    let errors = section(&doc, "Errors");
    let rows: Vec<Vec<&str>> = errors
        .lines()
        .filter(|l| l.starts_with("| ") && l[2..].starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), ErrorCode::ALL.len(), "one row per error code");
    for (row, &code) in rows.iter().zip(ErrorCode::ALL) {
        let [number, name, _meaning, grpc, http, retryable] = row[..] else {
            panic!("error table row has {} columns: {row:?}", row.len());
        };
        assert_eq!(number, (code as i32).to_string(), "{code}");
        assert_eq!(name, format!("`{}`", code.name()), "{code}");
        let g = code.grpc_code();
        assert_eq!(grpc, format!("`{}` ({g})", grpc_name(g)), "{code}");
        assert_eq!(http, code.http_status().to_string(), "{code}");
        let expected = if code.is_retryable() { "yes" } else { "no" };
        assert_eq!(retryable, expected, "{code}");
    }
}
