//! `gtl_compat::openai::parse_request` on arbitrary bytes, and what it
//! accepted sent back out through the OpenAI stream encoder. See `compat`
//! for the checks.

#![no_main]

mod compat;

use gtl_compat::openai;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = openai::parse_request(data);
    match (&parsed, openai::parse_request(data)) {
        (Ok(first), Ok(second)) => assert_eq!(first, &second, "two parses differ"),
        (Err(first), Err(second)) => assert_eq!(first.to_string(), second.to_string()),
        _ => panic!("two parses differ"),
    }
    let (request, options) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return compat::check_refusal(&error, &openai::request_error(&error)),
    };
    compat::check_request(&request);
    assert_eq!(options.model, request.model);
    assert_eq!(options.stream, request.stream);
    assert!(!options.include_usage || options.stream, "usage without a stream");

    let events = compat::answer_events(&request);
    let mut encoder = openai::StreamEncoder::new("s", &options.model, 0, options.include_usage);
    compat::check_stream(&events, |body, out| encoder.push(body, out));
});
