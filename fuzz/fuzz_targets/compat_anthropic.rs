//! `gtl_compat::anthropic::parse_request` and `parse_count_tokens_request`
//! on arbitrary bytes, and what the first accepted sent back out through
//! the Anthropic stream encoder. See `compat` for the checks.

#![no_main]

mod compat;

use gtl_compat::anthropic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = anthropic::parse_request(data);
    match (&parsed, anthropic::parse_request(data)) {
        (Ok(first), Ok(second)) => assert_eq!(first, &second, "two parses differ"),
        (Err(first), Err(second)) => assert_eq!(first.to_string(), second.to_string()),
        _ => panic!("two parses differ"),
    }
    // A message request is a count_tokens request with two more fields.
    let counted = anthropic::parse_count_tokens_request(data);
    if let Ok((request, _)) = &parsed {
        let counted = counted.as_ref().expect("a valid message is a valid count");
        assert_eq!(counted.messages, request.messages);
        assert_eq!(counted.tools, request.tools);
    }
    match &counted {
        Ok(request) => {
            compat::check_request(request);
            assert!(!request.stream && request.max_tokens.is_none());
        }
        Err(error) => compat::check_refusal(error, &anthropic::request_error(error)),
    }
    let (request, options) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return compat::check_refusal(&error, &anthropic::request_error(&error)),
    };
    compat::check_request(&request);
    assert!(request.max_tokens.is_some(), "max_tokens is required");
    assert_eq!(options.model, request.model);
    assert_eq!(options.stream, request.stream);

    let events = compat::answer_events(&request);
    let mut encoder = anthropic::StreamEncoder::new("s", &options.model);
    compat::check_stream(&events, |body, out| encoder.push(body, out));
});
