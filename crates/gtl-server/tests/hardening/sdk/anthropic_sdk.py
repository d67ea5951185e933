"""The official `anthropic` package, unmodified, against GTL's /v1 routes.

Run by sdk.rs with GTL_BASE_URL (the gateway's HTTP port) and
GTL_EXPECTED (what GTL's own adapters read from each recorded provider
stream). Prints one line per check; any failure raises.
"""

import json
import os

import anthropic

BASE = os.environ["GTL_BASE_URL"]
EXPECTED = json.loads(os.environ["GTL_EXPECTED"])
# The key is the gateway's local token, from the environment, as a user
# sets it: export ANTHROPIC_API_KEY=$(gtl token show).
client = anthropic.Anthropic(base_url=BASE, max_retries=0)

TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather somewhere.",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    }
]


def check(name, ok, detail=""):
    if not ok:
        raise AssertionError(f"{name}: {detail}")
    print("ok", name)


# A provider key left in the environment is not a credential here: refused
# (401, saying where the token comes from), never forwarded.
try:
    anthropic.Anthropic(base_url=BASE, api_key="sk-ant-a-provider-key", max_retries=0).models.list()
    check("a provider key is refused", False, "it was accepted")
except anthropic.AuthenticationError as error:
    check("a provider key is refused", "gtl token show" in str(error), str(error))


def user(text):
    return [{"role": "user", "content": text}]


def text_of(message):
    return "".join(block.text for block in message.content if block.type == "text")


def tool_uses(message):
    return [
        {"id": block.id, "name": block.name, "arguments": block.input}
        for block in message.content
        if block.type == "tool_use"
    ]


# Plain and streamed text, with usage.
raw = client.messages.with_raw_response.create(
    model="echo", max_tokens=64, system="be brief", messages=user("hello there")
)
check("session header", raw.headers.get("gtl-session-id"), raw.headers)
message = raw.parse()
check("text", text_of(message) == "hello there", message)
check("stop reason", message.stop_reason == "end_turn", message)
check("usage", (message.usage.input_tokens, message.usage.output_tokens) == (4, 2), message.usage)
check("id", message.id.startswith("msg_") and message.role == "assistant", message)

with client.messages.stream(
    model="echo", max_tokens=64, system=[{"type": "text", "text": "be brief"}], messages=user("one two three")
) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
check("stream text", text == "one two three", text)
check("stream stop reason", final.stop_reason == "end_turn", final)
check("stream usage", final.usage.output_tokens == 3 and final.usage.input_tokens == 5, final.usage)

# max_tokens cuts the answer, as `max_tokens`.
message = client.messages.create(model="echo", max_tokens=2, messages=user("a b c d e"))
check("max_tokens", message.stop_reason == "max_tokens", message)

# stop_sequences are accepted.
message = client.messages.create(model="echo", max_tokens=64, stop_sequences=["END"], messages=user("hi"))
check("stop sequences", text_of(message) == "hi", message)

# Tools: a tool_use block, streamed as input_json_delta, then its result.
message = client.messages.create(
    model="echo:tool_call=get_weather", max_tokens=64, tools=TOOLS, messages=user("in Paris")
)
uses = tool_uses(message)
check("tool use", [u["name"] for u in uses] == ["get_weather"], message)
check("tool input", uses[0]["arguments"] == {"text": "in Paris"}, uses)
check("tool stop reason", message.stop_reason == "tool_use", message)
with client.messages.stream(
    model="echo:tool_call=get_weather", max_tokens=64, tools=TOOLS, messages=user("in Rome")
) as stream:
    final = stream.get_final_message()
check("stream tool input", tool_uses(final)[0]["arguments"] == {"text": "in Rome"}, final)
followup = user("in Paris") + [
    {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in message.content]},
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": uses[0]["id"], "content": "sunny, 21 C"}],
    },
]
answer = client.messages.create(
    model="echo:tool_call=get_weather", max_tokens=64, tools=TOOLS, messages=followup
)
check("tool result answered", text_of(answer) == "sunny, 21 C", answer)

# Image blocks are accepted; echo answers the text.
blocks = [
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    {"type": "text", "text": "describe this"},
]
message = client.messages.create(model="echo", max_tokens=64, messages=[{"role": "user", "content": blocks}])
check("image blocks", text_of(message) == "describe this", message)

# Token counting by the routed provider.
count = client.messages.count_tokens(model="echo", system="be brief", messages=user("four words right here"))
check("count tokens", count.input_tokens == 6, count)

# Models, in Anthropic's shape.
ids = [model.id for model in client.models.list()]
for name in ["echo/echo", "openai/gpt-4o", "smart"]:
    check(f"listed {name}", name in ids, ids)
check("retrieve alias", client.models.retrieve("smart").id == "smart")


# Errors, as the SDK's own exception types.
def status_of(**kwargs):
    try:
        client.messages.create(max_tokens=64, **kwargs)
    except anthropic.APIStatusError as error:
        return error
    raise AssertionError(f"no error for {kwargs}")


error = status_of(model="nope/nothing", messages=user("hi"))
check("unknown model", isinstance(error, anthropic.NotFoundError), error)
check("error shape", error.body["type"] == "error" and error.body["error"]["type"] == "not_found_error", error.body)
error = status_of(model="echo", messages=[{"role": "robot", "content": "hi"}])
check("bad role", isinstance(error, anthropic.BadRequestError), error)
error = status_of(model="echo:error=PROVIDER_UNAVAILABLE", messages=user("hi"))
check("overloaded", error.status_code == 529 and error.body["error"]["type"] == "overloaded_error", error)
error = status_of(model="echo:error=RATE_LIMIT,retry_after_ms=1500", messages=user("hi"))
check("rate limit", isinstance(error, anthropic.RateLimitError), error)
try:
    with client.messages.stream(
        model="echo:error=PROVIDER_ERROR,error_after=1", max_tokens=64, messages=user("one two three")
    ) as stream:
        stream.get_final_message()
    raise AssertionError("no in-stream error")
except anthropic.APIStatusError as error:
    check("in-stream error", error.body["error"]["type"] == "api_error", error.body)

# Either dialect to any provider: the recorded streams through GTL.
for model, want in EXPECTED.items():
    message = client.messages.create(model=model, max_tokens=256, messages=user("hi"))
    check(f"{model} text", text_of(message) == want["text"], message)
    check(f"{model} tool uses", tool_uses(message) == want["tool_calls_anthropic"], message)
    usage = message.usage
    check(f"{model} input usage", usage.input_tokens + usage.cache_read_input_tokens == want["tokens_in"], usage)
    check(f"{model} cached usage", usage.cache_read_input_tokens == want["cached"], usage)
    check(f"{model} output usage", usage.output_tokens == want["tokens_out"], usage)
    with client.messages.stream(model=model, max_tokens=256, messages=user("hi")) as stream:
        final = stream.get_final_message()
    check(f"{model} stream text", text_of(final) == want["text"], final)
    check(f"{model} stream tool uses", tool_uses(final) == want["tool_calls_anthropic"], final)
    check(f"{model} stream output usage", final.usage.output_tokens == want["tokens_out"], final.usage)
    check(f"{model} stream stop reason", final.stop_reason == message.stop_reason, final)
