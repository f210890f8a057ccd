"""`serve` (OpenAI-compatible API over the local model) and the `openai` backend, for real, over loopback."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from test_llm_support import TEST_MAX_NEW, llm_config, shared_llm

from pipeline.llm import GenerationOptions, LoadContext, load_llm
from pipeline.llm.remote import LLMUnavailable

MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def base_url():
    from test_serve_hardening import serving

    with serving(shared_llm()) as root:
        yield f"{root}/v1"


def remote(base_url: str, **kw):
    cfg = llm_config(backend="openai", base_url=base_url, model="SmolLM2-135M-Instruct", retries=0, timeout=60, **kw)
    return load_llm(cfg.llm, LoadContext())


def test_openai_backend_round_trip_streaming_and_not(base_url):
    local = shared_llm()
    llm = remote(base_url)
    assert llm.backend == "openai" and llm.context_length == local.context_length  # from /v1/models max_model_len
    options = GenerationOptions(max_new_tokens=TEST_MAX_NEW)
    whole = llm.generate(MESSAGES, options)
    assert whole.text.strip()
    assert whole.text == local.generate(MESSAGES, options).text  # greedy: the server runs the same model
    stream = llm.stream(MESSAGES, options)
    deltas = list(stream)
    assert len(deltas) >= 2 and "".join(deltas) == whole.text
    assert stream.stats.prompt_tokens == local.count_chat_tokens(MESSAGES)  # usage from the last chunk
    assert 1 <= stream.stats.completion_tokens <= TEST_MAX_NEW
    assert stream.stats.first_token_s is not None and stream.stats.first_token_s < stream.stats.seconds


def test_token_counts_come_from_the_served_tokenizer(base_url):
    local, llm = shared_llm(), remote(base_url)
    for text in ("Hello world", "LoRA fine-tuning of a 7B model needs 16-24 GB.", "模型需要多少記憶體？"):
        assert llm.count_tokens(text) == local.count_tokens(text)
    assert llm.count_chat_tokens(MESSAGES) == local.count_chat_tokens(MESSAGES)


def test_http_api_shapes(base_url):
    root = base_url
    models = httpx.get(f"{root}/models").json()
    assert models["data"][0]["id"] == "SmolLM2-135M-Instruct" and models["data"][0]["max_model_len"] == 2048
    body = {"model": "SmolLM2-135M-Instruct", "messages": MESSAGES, "max_tokens": 6, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{root}/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] <= 6
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    missing = httpx.post(f"{root}/chat/completions", json=dict(body, model="gpt-9", stream=False), timeout=30)
    assert missing.status_code == 404 and "gpt-9" in missing.json()["error"]["message"]
    too_long = httpx.post(f"{root}/chat/completions", timeout=60, json={
        "model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "word " * 3000}]})
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_is_one_clear_error():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(LLMUnavailable) as err:
        load_llm(llm_config(backend="openai", base_url=url, retries=1, timeout=5).llm, LoadContext())
    message = str(err.value)
    assert f"cannot reach the LLM server at {url}" in message and "2 attempts" in message and "syllabus serve" in message
    assert time.monotonic() - started < 20


def test_server_that_never_answers_times_out_clearly():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (backlog) but never replies
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    try:
        with pytest.raises(LLMUnavailable, match=r"did not answer within 1 s"):
            load_llm(llm_config(backend="openai", base_url=url, retries=0, timeout=1).llm, LoadContext())
    finally:
        listener.close()


def test_wrong_model_name_lists_what_the_server_has(base_url):
    with pytest.raises(LLMUnavailable, match="does not serve 'llama-70b'.*SmolLM2-135M-Instruct"):
        load_llm(llm_config(backend="openai", base_url=base_url, model="llama-70b").llm, LoadContext())
