#!/bin/sh
# Seeds corpus/<target>/ of the SSE parser and provider targets from the
# recorded provider fixtures. Re-running it is harmless (same file names).
#
# Each fixture body becomes two inputs in the `chunks` layout: the body in
# one chunk (header 00 ff), and the body in chunks of 7, 1 and 32 bytes,
# cycled (header 02 06 00 1f). sse_parser inputs get a line-limit byte
# first: ff (1024 bytes) for the whole body, 10 (68 bytes, so long lines
# fail) for the cut one.
set -eu
cd "$(dirname "$0")"

recorded=../crates/gtl-test/data/providers/fixtures
handmade=../crates/gtl-providers/tests/fixtures

# seed <target> <prefix for the whole body> <prefix for the cut body> <files…>
# Prefixes are printf formats (octal escapes).
seed() {
    target=$1 whole=$2 cut=$3
    shift 3
    mkdir -p "corpus/$target"
    for file in "$@"; do
        [ -f "$file" ] || continue
        name=$(printf '%s' "$file" | sed 's|^\.\./crates/||; s|/|_|g')
        { printf "$whole"; cat "$file"; } >"corpus/$target/seed-whole-$name"
        { printf "$cut"; cat "$file"; } >"corpus/$target/seed-cut-$name"
    done
}

whole='\000\377'
cut='\002\006\000\037'

for provider in openai anthropic gemini ollama bedrock; do
    seed "provider_$provider" "$whole" "$cut" \
        "$recorded/$provider"/*.* "$handmade/$provider"/*.sse \
        "$handmade/$provider"/*.json "$handmade/$provider"/*.ndjson \
        "$handmade/$provider"/*.bin
done

seed sse_parser "\\377$whole" "\\020$cut" \
    "$recorded"/*/*.sse "$handmade"/*/*.sse

# The dialect request targets take a body as it is: a few requests.
mkdir -p corpus/compat_openai corpus/compat_anthropic
printf '%s' '{"model":"m","messages":[{"role":"user","content":"hi"}]}' \
    >corpus/compat_openai/seed-minimal.json
printf '%s' '{"model":"openai/gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":64,"temperature":0.5,"stop":["END"],"messages":[{"role":"developer","content":"Be brief."},{"role":"user","name":"ada","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"look","arguments":"{\"q\":1}"}}]},{"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"a cat"}]}],"tools":[{"type":"function","function":{"name":"look","parameters":{"type":"object"}}}],"tool_choice":"auto","metadata":{"k":"v"},"user":"u"}' \
    >corpus/compat_openai/seed-full.json
printf '%s' '{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}' \
    >corpus/compat_anthropic/seed-minimal.json
printf '%s' '{"model":"anthropic/claude","max_tokens":64,"stream":true,"system":[{"type":"text","text":"Be brief."}],"stop_sequences":["END"],"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"tool_use","id":"toolu_1","name":"look","input":{"q":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"a cat"},{"type":"text","text":"Thanks"}]}],"tools":[{"name":"look","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"},"metadata":{"user_id":"u"}}' \
    >corpus/compat_anthropic/seed-full.json

for target in sse_parser provider_openai provider_anthropic provider_gemini \
    provider_ollama provider_bedrock compat_openai compat_anthropic; do
    echo "corpus/$target: $(ls "corpus/$target" | wc -l) files"
done
