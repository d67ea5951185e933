"""The official `openai` package, unmodified, against GTL's /v1 routes.

Run by sdk.rs with GTL_BASE_URL (the gateway's HTTP port) and
GTL_EXPECTED (what GTL's own adapters read from each recorded provider
stream). Prints one line per check; any failure raises.
"""

import json
import os

import openai

BASE = os.environ["GTL_BASE_URL"]
EXPECTED = json.loads(os.environ["GTL_EXPECTED"])
# The key is the gateway's local token, from the environment, as a user
# sets it: export OPENAI_API_KEY=$(gtl token show).
client = openai.OpenAI(base_url=BASE + "/v1", max_retries=0)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather somewhere.",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    }
]


def check(name, ok, detail=""):
    if not ok:
        raise AssertionError(f"{name}: {detail}")
    print("ok", name)


# A provider key left in the environment is not a credential here: refused
# (401, saying where the token comes from), never forwarded.
try:
    openai.OpenAI(base_url=BASE + "/v1", api_key="sk-a-provider-key", max_retries=0).models.list()
    check("a provider key is refused", False, "it was accepted")
except openai.AuthenticationError as error:
    check("a provider key is refused", "gtl token show" in str(error), str(error))


def user(text):
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def streamed(**kwargs):
    """Text, tool calls (assembled by index), finish reason and usage of a stream."""
    text, calls, finish, usage = "", {}, None, None
    for chunk in client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return text, [calls[i] for i in sorted(calls)], finish, usage


# Plain and streamed text, with usage.
raw = client.chat.completions.with_raw_response.create(model="echo", messages=user("hello there"))
check("session header", raw.headers.get("gtl-session-id"), raw.headers)
answer = raw.parse()
check("text", answer.choices[0].message.content == "hello there", answer)
check("finish", answer.choices[0].finish_reason == "stop", answer)
check("usage", (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 2), answer.usage)
check("id", answer.id.startswith("chatcmpl-") and answer.object == "chat.completion", answer)

text, _, finish, usage = streamed(model="echo", messages=user("one two three"))
check("stream text", text == "one two three", text)
check("stream finish", finish == "stop", finish)
check("stream usage", usage is not None and usage.total_tokens == 8, usage)

# max_tokens cuts the answer, as `length`.
answer = client.chat.completions.create(
    model="echo", messages=user("a b c d e"), max_completion_tokens=2
)
check("length", answer.choices[0].finish_reason == "length", answer)

# Tools: a call, streamed with its index, then its result sent back.
answer = client.chat.completions.create(
    model="echo:tool_call=get_weather", messages=user("in Paris"), tools=TOOLS, tool_choice="auto"
)
call = answer.choices[0].message.tool_calls[0]
check("tool call", call.function.name == "get_weather", call)
check("tool arguments", json.loads(call.function.arguments) == {"text": "in Paris"}, call)
check("tool finish", answer.choices[0].finish_reason == "tool_calls", answer)
_, calls, finish, _ = streamed(model="echo:tool_call=get_weather", messages=user("in Rome"), tools=TOOLS)
check("stream tool call", [c["name"] for c in calls] == ["get_weather"], calls)
check("stream tool arguments", json.loads(calls[0]["arguments"]) == {"text": "in Rome"}, calls)
check("stream tool finish", finish == "tool_calls", finish)
followup = user("in Paris") + [
    {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
    {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
]
answer = client.chat.completions.create(
    model="echo:tool_call=get_weather", messages=followup, tools=TOOLS
)
check("tool result answered", answer.choices[0].message.content == "sunny, 21 C", answer)

# Image parts (URL and data URI) are accepted; echo answers the text.
parts = [
    {"type": "text", "text": "describe this"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
]
answer = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": parts}])
check("image parts", answer.choices[0].message.content == "describe this", answer)

# Models: every routable name and alias.
ids = [model.id for model in client.models.list()]
for name in ["echo/echo", "anthropic/claude-sonnet-4-5", "smart"]:
    check(f"listed {name}", name in ids, ids)
check("retrieve alias", client.models.retrieve("smart").id == "smart")

# Errors, as the SDK's own exception types.
def status_of(**kwargs):
    try:
        client.chat.completions.create(**kwargs)
    except openai.APIStatusError as error:
        return error
    raise AssertionError(f"no error for {kwargs}")


error = status_of(model="nope/nothing", messages=user("hi"))
check("unknown model", isinstance(error, openai.NotFoundError) and error.code == "model_not_found", error)
error = status_of(model="echo", messages=user("hi"), n=2)
check("n refused", isinstance(error, openai.BadRequestError) and error.param == "n", error)
error = status_of(model="echo:error=RATE_LIMIT,retry_after_ms=1500", messages=user("hi"))
check("rate limit", isinstance(error, openai.RateLimitError), error)
check("retry-after", error.response.headers.get("retry-after") == "2", error.response.headers)
try:
    streamed(model="echo:error=PROVIDER_ERROR,error_after=1", messages=user("one two three"))
    raise AssertionError("no in-stream error")
except openai.APIError as error:
    check("in-stream error", "error" in str(error).lower() or error.body, error)

# Either dialect to any provider: the recorded streams through GTL.
for model, want in EXPECTED.items():
    answer = client.chat.completions.create(model=model, messages=user("hi"))
    message = answer.choices[0].message
    check(f"{model} text", (message.content or "") == want["text"], message)
    got_calls = [
        {"id": c.id, "name": c.function.name, "arguments": json.loads(c.function.arguments)}
        for c in message.tool_calls or []
    ]
    check(f"{model} tool calls", got_calls == want["tool_calls"], got_calls)
    check(f"{model} usage", answer.usage.prompt_tokens == want["tokens_in"], answer.usage)
    check(f"{model} output usage", answer.usage.completion_tokens == want["tokens_out"], answer.usage)
    cached = answer.usage.prompt_tokens_details.cached_tokens if answer.usage.prompt_tokens_details else 0
    check(f"{model} cached usage", (cached or 0) == want["cached"], answer.usage)
    text, calls, finish, usage = streamed(model=model, messages=user("hi"))
    check(f"{model} stream text", text == want["text"], text)
    calls = [{"id": c["id"], "name": c["name"], "arguments": json.loads(c["arguments"])} for c in calls]
    check(f"{model} stream tool calls", calls == want["tool_calls"], calls)
    check(f"{model} stream usage", usage.prompt_tokens == want["tokens_in"], usage)
    check(f"{model} stream finish", finish == answer.choices[0].finish_reason, finish)
