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

for target in sse_parser provider_openai provider_anthropic provider_gemini \
    provider_ollama provider_bedrock; do
    echo "corpus/$target: $(ls "corpus/$target" | wc -l) files"
done
