//! The seeds' JSON frames, exactly as they write them.

use gtl_proto::types::PatchKind;
use gtl_proto::{Body, ErrorCode, Frame, FrameType, Phase};

fn parse(json: &str) -> Frame {
    Frame::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
}

#[test]
fn seed_events_parse_and_print_back() {
    let seeds = [
        r#"{"type":"status","session_id":"s_1","seq":1,"state":"streaming"}"#,
        r#"{"type":"token","session_id":"s_1","seq":2,"text":"Hel"}"#,
        r#"{"type":"tool_call","session_id":"s_1","seq":3,"id":"call_1","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}"#,
        r#"{"type":"patch","session_id":"s_1","seq":4,"op":{"Replace":{"range":{"sl":10,"sc":0,"el":12,"ec":0},"text":"..."}},"rev":42}"#,
        r#"{"type":"usage","session_id":"s_1","seq":5,"tokens_in":10,"tokens_out":50,"cost":0.001}"#,
        r#"{"type":"error","session_id":"s_1","seq":6,"code":"RATE_LIMIT","message":"...","retryable":true}"#,
        r#"{"type":"done","session_id":"s_1","seq":7}"#,
    ];
    for json in seeds {
        // An error is written with the Zig seed's `msg` beside `message`.
        let expected = json.replace(r#""message":"...","#, r#""message":"...","msg":"...","#);
        assert_eq!(parse(json).to_json().unwrap(), expected);
    }
}

#[test]
fn errors_carry_message_and_msg_and_either_or_both_decode() {
    for json in [
        r#"{"type":"error","code":"INTERNAL","message":"boom"}"#,
        r#"{"type":"error","code":"INTERNAL","msg":"boom"}"#,
        r#"{"type":"error","code":"INTERNAL","message":"boom","msg":"boom"}"#,
        r#"{"type":"error","code":"INTERNAL","msg":"boom","message":"boom"}"#,
    ] {
        let frame = parse(json);
        let written = frame.to_json().unwrap();
        assert!(
            written.contains(r#""message":"boom","msg":"boom""#),
            "{json} → {written}"
        );
    }
}

#[test]
fn fields_land_in_the_right_places() {
    let frame = parse(
        r#"{"type":"patch","session_id":"s","seq":4,"op":{"Replace":{"range":{"sl":10,"sc":0,"el":12,"ec":0},"text":"x"}},"rev":42}"#,
    );
    let Some(Body::Patch(patch)) = frame.body else {
        panic!("not a patch")
    };
    assert_eq!(patch.rev, 42);
    let Some(PatchKind::Replace(replace)) = patch.op.and_then(|op| op.kind) else {
        panic!("not a replace")
    };
    assert_eq!(replace.range.unwrap().el, 12);
    assert_eq!(replace.text, "x");

    let frame = parse(
        r#"{"type":"error","code":"PROVIDER_TIMEOUT","msg":"slow","phase":"after_first_token"}"#,
    );
    let Some(Body::Error(error)) = frame.body else {
        panic!("not an error")
    };
    assert_eq!(error.code(), ErrorCode::ProviderTimeout);
    assert_eq!(error.message, "slow", "the Zig seed's `msg` is accepted");
    assert_eq!(error.phase(), Phase::AfterFirstToken);
}

#[test]
fn the_protocol_seeds_completion_request() {
    let frame = parse(
        r#"{"type":"completion_request","session_id":"sess_abc123","provider":"openai","model":"gpt-4",
            "messages":[{"role":"user","content":"Hello AI!"}],"stream":true,"max_tokens":1000,"temperature":0.7}"#,
    );
    assert_eq!(frame.session_id, "sess_abc123");
    let Some(Body::CompletionRequest(req)) = frame.body else {
        panic!("not a request")
    };
    assert_eq!(
        (req.provider.as_str(), req.model.as_str()),
        ("openai", "gpt-4")
    );
    assert_eq!(req.max_tokens, Some(1000));
    assert_eq!(req.temperature, Some(0.7));
    assert!(req.stream);
    assert_eq!(req.messages[0].role(), gtl_proto::Role::User);
}

#[test]
fn rich_requests_round_trip_as_text() {
    let json = r#"{"type":"completion_request","call_id":3,"session_id":"s","model":"anthropic/claude-sonnet-4-5","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image","data":"iVBORw0KGgo=","media_type":"image/png"},{"type":"image","url":"https://example.com/cat.jpg","detail":"low"}]},{"role":"assistant","tool_calls":[{"id":"call_1","function":{"name":"look","arguments":"{}"}}]},{"role":"tool","content":"a cat","tool_call_id":"call_1"}],"stream":true,"max_tokens":256,"top_p":0.9,"stop":["\n\n"],"tools":[{"type":"function","function":{"name":"look","description":"Looks.","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}],"tool_choice":{"type":"function","function":{"name":"look"}},"providers":["anthropic","openai"],"routing":{"intent":"vision","budget":0.05,"latency":"low","prefer_local":true},"metadata":{"team":"a","user":"u1"},"pipe":true}"#;
    assert_eq!(parse(json).to_json().unwrap(), json);
    for choice in ["\"auto\"", "\"none\"", "\"required\""] {
        let json = format!(r#"{{"type":"completion_request","model":"m","tool_choice":{choice}}}"#);
        assert_eq!(parse(&json).to_json().unwrap(), json);
    }
}

#[test]
fn control_frames_round_trip_as_text() {
    let frames = [
        r#"{"type":"hello","versions":["1.0"],"encodings":["json","protobuf"],"features":["resume"],"token":"eyJ","client":"gtl/0.1"}"#,
        r#"{"type":"welcome","version":"1.0","encoding":"protobuf","server":"gtl-server/0.1","max_frame_bytes":8388608}"#,
        r#"{"type":"accepted","call_id":1,"session_id":"s","resume_token":"rt"}"#,
        r#"{"type":"resume","session_id":"s","after_seq":17,"resume_token":"rt"}"#,
        r#"{"type":"ack","session_id":"s","seq":17}"#,
        r#"{"type":"cancel","call_id":1,"reason":"user pressed stop"}"#,
        r#"{"type":"ping","nonce":9}"#,
        r#"{"type":"pong","nonce":9}"#,
        r#"{"type":"models_request"}"#,
        r#"{"type":"input","call_id":1,"messages":[{"role":"tool","content":"42","tool_call_id":"c"}],"end":true}"#,
        r#"{"type":"provider_info","provider":"openai","models":[{"name":"gpt-4","context_window":128000,"max_tokens":4096,"supports_streaming":true,"supports_functions":true,"supports_vision":true,"cost_per_1k_input":0.01,"cost_per_1k_output":0.03}]}"#,
    ];
    for json in frames {
        assert_eq!(parse(json).to_json().unwrap(), json);
    }
}

#[test]
fn bad_frames_are_typed_errors() {
    let bad = [
        ("{}", "missing field `type`"),
        (r#"{"type":"teleport"}"#, "unknown frame type `teleport`"),
        (r#"{"type":"token","seq":-1}"#, "invalid value"),
        (
            r#"{"type":"completion_request","messages":[{"role":"robot"}]}"#,
            "unknown role",
        ),
        (
            r#"{"type":"completion_request","messages":[{"role":"user","content":[{"type":"image","data":"%%%"}]}]}"#,
            "not base64",
        ),
        (r#"{"type":"token","text":"#, "EOF"),
        ("[1,2]", "invalid type"),
    ];
    for (json, expected) in bad {
        let err = Frame::from_json(json.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(expected), "{json}: {err}");
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let frame = parse(r#"{"type":"token","text":"a","from_the_future":{"x":[1]}}"#);
    assert_eq!(frame.frame_type(), Some(FrameType::Token));
}

/// A frame whose JSON form would need a non-finite double.
fn non_finite_frames(value: f64) -> Vec<Frame> {
    use gtl_proto::{CompletionRequest, ModelInfo, ProviderInfo, Routing, Usage};
    let request = |f: &dyn Fn(&mut CompletionRequest)| {
        let mut req = CompletionRequest {
            model: "m".into(),
            ..CompletionRequest::default()
        };
        f(&mut req);
        Frame::control(1, Body::CompletionRequest(Box::new(req)))
    };
    let model = |input: f64, output: f64| {
        Frame::control(
            1,
            Body::ProviderInfo(ProviderInfo {
                provider: "p".into(),
                models: vec![
                    ModelInfo::default(),
                    ModelInfo {
                        name: "m".into(),
                        cost_per_1k_input: input,
                        cost_per_1k_output: output,
                        ..ModelInfo::default()
                    },
                ],
            }),
        )
    };
    vec![
        Frame::event(
            "s",
            5,
            Body::Usage(Usage {
                tokens_in: 1,
                tokens_out: 2,
                cost: value,
                cached_tokens: 0,
            }),
        ),
        request(&|r| r.temperature = Some(value)),
        request(&|r| r.top_p = Some(value)),
        request(&|r| {
            r.routing = Some(Routing {
                budget: Some(value),
                ..Routing::default()
            });
        }),
        model(value, 0.0),
        model(0.0, value),
    ]
}

#[test]
fn non_finite_doubles_have_no_json_form() {
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for frame in non_finite_frames(value) {
            let err = frame
                .to_json()
                .expect_err(&format!("{value} has no JSON form: {frame:?}"));
            assert!(err.to_string().contains("finite"), "{err}");
            let mut out = Vec::new();
            assert!(frame.as_ref().write_json(&mut out).is_err());
        }
    }
    // The same frames with finite values print and parse back.
    for frame in non_finite_frames(0.25) {
        let json = frame.to_json().unwrap();
        assert_eq!(parse(&json), frame, "{json}");
    }
}

#[test]
fn an_image_with_no_source_is_dropped_like_an_empty_part() {
    use gtl_proto::types::{Content, Part};
    use gtl_proto::{CompletionRequest, ContentPart, ContentParts, Image, Message};
    let part = |part| ContentPart { part: Some(part) };
    let frame = Frame::control(
        1,
        Body::CompletionRequest(Box::new(CompletionRequest {
            model: "m".into(),
            messages: vec![Message {
                role: 2,
                content: Some(Content::Parts(ContentParts {
                    parts: vec![
                        part(Part::Text("a".into())),
                        part(Part::Image(Image {
                            source: None,
                            media_type: "image/png".into(),
                            detail: "low".into(),
                        })),
                        ContentPart { part: None },
                    ],
                })),
                ..Message::default()
            }],
            ..CompletionRequest::default()
        })),
    );
    let json = frame.to_json().unwrap();
    assert_eq!(
        json,
        r#"{"type":"completion_request","call_id":1,"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}"#
    );
    assert_eq!(parse(&json).to_json().unwrap(), json);
}

#[test]
fn an_empty_patch_op_is_omitted() {
    use gtl_proto::{Patch, PatchOp};
    let frame = Frame::event(
        "s",
        4,
        Body::Patch(Patch {
            op: Some(PatchOp { kind: None }),
            rev: 42,
        }),
    );
    let json = frame.to_json().unwrap();
    assert_eq!(
        json,
        r#"{"type":"patch","session_id":"s","seq":4,"rev":42}"#
    );
    assert_eq!(parse(&json).to_json().unwrap(), json, "not a fixed point");
}

#[test]
fn an_unknown_error_code_reads_as_unspecified_not_as_a_bad_frame() {
    let frame = parse(r#"{"type":"error","code":"QUOTA_EXPLODED","message":"from 1.1"}"#);
    let Some(Body::Error(error)) = frame.body else {
        panic!("{frame:?}")
    };
    assert_eq!(error.code, 0);
    assert_eq!(error.message, "from 1.1");
}

#[test]
fn seed_style_images_become_image_parts_after_the_text() {
    use gtl_proto::types::{Content, Part, Source};
    // A 1×1 PNG's first bytes, in base64; and a URL.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAE=";
    let json = format!(
        r#"{{"type":"completion_request","model":"m","messages":[{{"role":"user","content":"What's in this image?","images":["{png}","https://example.invalid/cat.jpg"]}}]}}"#
    );
    let frame = parse(&json);
    let Some(Body::CompletionRequest(request)) = frame.body else {
        panic!("{frame:?}")
    };
    let Some(Content::Parts(parts)) = &request.messages[0].content else {
        panic!("{:?}", request.messages[0])
    };
    let parts: Vec<_> = parts
        .parts
        .iter()
        .map(|p| p.part.clone().unwrap())
        .collect();
    assert!(matches!(&parts[0], Part::Text(t) if t == "What's in this image?"));
    let Part::Image(image) = &parts[1] else {
        panic!("{parts:?}")
    };
    assert_eq!(image.media_type, "image/png");
    assert!(matches!(&image.source, Some(Source::Data(bytes)) if bytes.starts_with(b"\x89PNG")));
    assert!(
        matches!(&parts[2], Part::Image(i) if matches!(&i.source, Some(Source::Url(u)) if u.ends_with("cat.jpg")))
    );
    // Written back, the images are parts.
    let again = frame_json(&Frame::control(0, Body::CompletionRequest(request)));
    assert!(!again.contains("\"images\""), "{again}");
    assert!(parse(&again).body.is_some());
    let bad = Frame::from_json(
        br#"{"type":"completion_request","messages":[{"role":"user","images":["%%%"]}]}"#,
    )
    .unwrap_err();
    assert!(bad.to_string().contains("not base64"), "{bad}");
}

fn frame_json(frame: &Frame) -> String {
    frame.to_json().unwrap()
}
