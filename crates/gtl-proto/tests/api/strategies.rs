//! proptest strategies for every frame type, limited to values that have a
//! JSON form (see the canonical form in the crate docs).

use std::collections::BTreeMap;

use gtl_proto::types::{Choice, Content, Part, PatchKind, Source};
use gtl_proto::*;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 _.,-]{0,12}",
        1 => any::<String>(),
        1 => Just("line\nbreak \"quoted\" \\ tab\t é 🦀 \u{0}".to_owned()),
    ]
}

/// Finite doubles. A negative zero is left out: proto3 does not encode a
/// zero double, so its sign does not survive (docs/protocol.md says so).
fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(0.7),
        -1e9..1e9f64,
        any::<f64>().prop_filter("finite", |f| f.is_finite())
    ]
    .prop_map(|f| if f == 0.0 { 0.0 } else { f })
}

fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.to_owned()),
        text().prop_map(
            |s| serde_json::to_string(&serde_json::json!({ "x": s, "n": [1, 2.5] })).unwrap()
        ),
    ]
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..3)
}

fn map() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(text(), text(), 0..3)
}

fn range() -> impl Strategy<Value = Range> {
    (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(sl, sc, el, ec)| Range {
        sl,
        sc,
        el,
        ec,
    })
}

fn function_call() -> impl Strategy<Value = FunctionCall> {
    (text(), json_text()).prop_map(|(name, arguments)| FunctionCall { name, arguments })
}

fn tool_call() -> impl Strategy<Value = ToolCall> {
    (text(), option::of(function_call())).prop_map(|(id, function)| ToolCall { id, function })
}

fn patch_kind() -> impl Strategy<Value = PatchKind> {
    let r = || option::of(range());
    prop_oneof![
        (r(), text()).prop_map(|(range, text)| PatchKind::Replace(Replace { range, text })),
        (r(), text()).prop_map(|(range, text)| PatchKind::Insert(Insert { range, text })),
        r().prop_map(|range| PatchKind::Delete(Delete { range })),
    ]
}

fn model_info() -> impl Strategy<Value = ModelInfo> {
    (
        text(),
        any::<u32>(),
        any::<u32>(),
        any::<[bool; 3]>(),
        finite(),
        finite(),
    )
        .prop_map(
            |(name, context_window, max_tokens, [s, f, v], cin, cout)| ModelInfo {
                name,
                context_window,
                max_tokens,
                supports_streaming: s,
                supports_functions: f,
                supports_vision: v,
                cost_per_1k_input: cin,
                cost_per_1k_output: cout,
                health: String::new(),
            },
        )
}

fn part() -> impl Strategy<Value = ContentPart> {
    let source = prop_oneof![
        vec(any::<u8>(), 0..16).prop_map(Source::Data),
        text().prop_map(Source::Url),
    ];
    prop_oneof![
        text().prop_map(Part::Text),
        (source, text(), text()).prop_map(|(source, media_type, detail)| Part::Image(Image {
            source: Some(source),
            media_type,
            detail,
        })),
    ]
    .prop_map(|part| ContentPart { part: Some(part) })
}

fn message() -> impl Strategy<Value = Message> {
    let content = option::of(prop_oneof![
        text().prop_map(Content::Text),
        vec(part(), 0..3).prop_map(|parts| Content::Parts(ContentParts { parts })),
    ]);
    (0..5i32, content, text(), vec(tool_call(), 0..2), text()).prop_map(
        |(role, content, tool_call_id, tool_calls, name)| Message {
            role,
            content,
            tool_call_id,
            tool_calls,
            name,
        },
    )
}

fn tool() -> impl Strategy<Value = Tool> {
    option::of(
        (text(), text(), json_text()).prop_map(|(name, description, parameters)| FunctionDef {
            name,
            description,
            parameters,
        }),
    )
    .prop_map(|function| Tool { function })
}

fn tool_choice() -> impl Strategy<Value = ToolChoice> {
    prop_oneof![
        (1..4i32).prop_map(Choice::Mode),
        text().prop_map(Choice::Function)
    ]
    .prop_map(|choice| ToolChoice {
        choice: Some(choice),
    })
}

fn routing() -> impl Strategy<Value = Routing> {
    (text(), option::of(finite()), text(), any::<bool>(), map()).prop_map(
        |(intent, budget, latency, prefer_local, tags)| Routing {
            intent,
            budget,
            latency,
            prefer_local,
            tags,
        },
    )
}

fn request() -> impl Strategy<Value = CompletionRequest> {
    (
        (
            text(),
            text(),
            vec(message(), 0..3),
            any::<bool>(),
            option::of(any::<u32>()),
        ),
        (
            option::of(finite()),
            option::of(finite()),
            strings(),
            vec(tool(), 0..2),
        ),
        (
            option::of(tool_choice()),
            strings(),
            option::of(routing()),
            map(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (provider, model, messages, stream, max_tokens),
                (temperature, top_p, stop, tools),
                (tool_choice, providers, routing, metadata, pipe),
            )| CompletionRequest {
                provider,
                model,
                messages,
                stream,
                max_tokens,
                temperature,
                top_p,
                stop,
                tools,
                tool_choice,
                providers,
                routing,
                metadata,
                pipe,
            },
        )
}

fn encodings() -> impl Strategy<Value = Vec<i32>> {
    vec(0..3i32, 0..3)
}

/// Any body of any frame type.
pub(crate) fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (text(), text(), text(), text()).prop_map(|(state, provider, model, reason)| {
            Body::Status(Status {
                state,
                provider,
                model,
                reason,
            })
        }),
        text().prop_map(|text| Body::Token(Token { text })),
        tool_call().prop_map(Body::ToolCall),
        (option::of(patch_kind()), any::<u64>()).prop_map(|(kind, rev)| Body::Patch(Patch {
            op: kind.map(|kind| PatchOp { kind: Some(kind) }),
            rev,
        })),
        (any::<u64>(), any::<u64>(), finite(), any::<u64>()).prop_map(|(i, o, cost, c)| {
            Body::Usage(Usage {
                tokens_in: i,
                tokens_out: o,
                cost,
                cached_tokens: c,
            })
        }),
        (0..17i32, text(), any::<bool>(), 0..3i32, any::<u64>()).prop_map(
            |(code, message, retryable, phase, retry_after_ms)| Body::Error(Error {
                code,
                message,
                retryable,
                phase,
                retry_after_ms,
            })
        ),
        text().prop_map(|finish_reason| Body::Done(Done { finish_reason })),
        (strings(), encodings(), strings(), text(), text()).prop_map(
            |(versions, encodings, features, token, client)| Body::Hello(Box::new(Hello {
                versions,
                encodings,
                features,
                token,
                client,
            }))
        ),
        request().prop_map(|request| Body::CompletionRequest(Box::new(request))),
        (vec(message(), 0..3), any::<bool>(), text()).prop_map(|(messages, end, resume_token)| {
            Body::Input(Input {
                messages,
                end,
                resume_token,
            })
        }),
        (any::<u64>(), text()).prop_map(|(after_seq, resume_token)| Body::Resume(Resume {
            after_seq,
            resume_token
        })),
        Just(Body::Ack(Ack {})),
        (text(), text()).prop_map(|(reason, resume_token)| Body::Cancel(Cancel {
            reason,
            resume_token
        })),
        any::<u64>().prop_map(|nonce| Body::Ping(Ping { nonce })),
        text().prop_map(|provider| Body::ModelsRequest(ModelsRequest { provider })),
        (text(), 0..3i32, strings(), text(), any::<u64>()).prop_map(
            |(version, encoding, features, server, max_frame_bytes)| Body::Welcome(Box::new(
                Welcome {
                    version,
                    encoding,
                    features,
                    server,
                    max_frame_bytes,
                }
            ))
        ),
        text().prop_map(|resume_token| Body::Accepted(Accepted { resume_token })),
        any::<u64>().prop_map(|nonce| Body::Pong(Pong { nonce })),
        (text(), vec(model_info(), 0..3))
            .prop_map(|(provider, models)| Body::ProviderInfo(ProviderInfo { provider, models })),
    ]
}

/// Any frame with a body.
pub(crate) fn frame() -> impl Strategy<Value = Frame> {
    (any::<u64>(), text(), any::<u64>(), body()).prop_map(|(call_id, session_id, seq, body)| {
        Frame {
            call_id,
            session_id,
            seq,
            body: Some(body),
        }
    })
}
