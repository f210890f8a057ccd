"""`serve` under clients that walk away, crowd in or send garbage; SIGTERM and a busy port.

The real bundled model serves the abandoned-stream and soak tests. Queue logic (time-outs, a full
queue) uses a slow fake model registered through the real registry, since it needs generations of
a known length.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from test_llm_support import ROOT, TEST_MAX_NEW, FakeLLM, cache_env, shared_llm

from pipeline.llm import GenerationOptions
from pipeline.llm.server import ServeLimits, create_app

MODEL = "SmolLM2-135M-Instruct"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Name three colours."}], "max_tokens": 16}


@contextmanager
def serving(llm, limits: ServeLimits | None = None, max_new: int = TEST_MAX_NEW):
    import uvicorn

    app = create_app(llm, GenerationOptions(max_new_tokens=max_new), limits)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def abandon_stream(root: str, after_bytes: int) -> None:
    """Read a few bytes of a streamed answer, then drop the connection (curl ... | head -c N)."""
    host, port = root.removeprefix("http://").split(":")
    payload = json.dumps(dict(BODY, stream=True, max_tokens=64)).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        got = b""
        while len(got) < after_bytes:
            data = sock.recv(after_bytes - len(got))
            if not data:
                break
            got += data
    assert got.startswith(b"HTTP/1.1 200"), got[:80]


def test_abandoned_streams_do_not_hang_the_next_request():
    with serving(shared_llm()) as root:
        started = time.monotonic()
        normal = httpx.post(f"{root}/v1/chat/completions", json=BODY, timeout=60)
        normal_s = time.monotonic() - started
        assert normal.status_code == 200
        for i in range(10):
            abandon_stream(root, after_bytes=200 + 37 * i)
        started = time.monotonic()
        fresh = httpx.post(f"{root}/v1/chat/completions", json=BODY, timeout=60)
        assert fresh.status_code == 200 and fresh.json()["choices"][0]["message"]["content"] == normal.json()["choices"][0]["message"]["content"]
        # The abandoned generations were cancelled at their next token, not run to their end.
        assert time.monotonic() - started < normal_s * 3 + 2.0


def test_every_error_has_the_openai_shape():
    with serving(FakeLLM(name=MODEL)) as root:
        cases = [
            httpx.post(f"{root}/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}),
            httpx.post(f"{root}/v1/chat/completions", json={"model": MODEL}),  # no messages
            httpx.post(f"{root}/v1/chat/completions", json=dict(BODY, max_tokens=0)),
            httpx.post(f"{root}/v1/chat/completions", json=dict(BODY, model="gpt-9")),
            httpx.get(f"{root}/v1/nothing-here"),
            httpx.get(f"{root}/v1/chat/completions"),  # wrong method
            httpx.post(f"{root}/tokenize", json={}),
        ]
        assert [r.status_code for r in cases] == [422, 422, 422, 404, 404, 405, 400]
        for r in cases:
            error = r.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["message"] and error["type"], r.text
        assert cases[0].json()["error"]["code"] == "invalid_json"
        assert cases[1].json()["error"]["param"] == "messages"


class SlowLLM(FakeLLM):
    """A fake whose tokens take ``delay`` seconds each: a generation of known length."""

    def __init__(self, delay: float, **kw):
        super().__init__(name=MODEL, reply=lambda m: " ".join(["word"] * 200), **kw)
        self.delay = delay
        self.active = 0
        self.most_active = 0

    def stream(self, messages, options):
        inner = super().stream(messages, options)
        llm = self

        def slow():
            llm.active += 1
            llm.most_active = max(llm.most_active, llm.active)
            try:
                for delta in inner:
                    time.sleep(llm.delay)
                    yield delta
            finally:
                llm.active -= 1

        from pipeline.llm.base import TextStream

        return TextStream(slow(), inner.stats)


def test_full_queue_is_429_and_a_long_wait_is_503_both_with_retry_after():
    llm = SlowLLM(delay=0.05)
    limits = ServeLimits(max_queue=1, queue_timeout=0.6, request_timeout=30)
    with serving(llm, limits, max_new=40) as root:  # each generation: 40 x 0.05 = 2 s
        results: dict[str, httpx.Response] = {}

        def call(name):
            results[name] = httpx.post(f"{root}/v1/chat/completions", json=dict(BODY, max_tokens=40), timeout=30)

        first = threading.Thread(target=call, args=("running",))
        first.start()
        time.sleep(0.3)
        second = threading.Thread(target=call, args=("waiting",))
        second.start()
        time.sleep(0.1)
        call("refused")
        first.join(), second.join()
        assert results["running"].status_code == 200
        assert results["refused"].status_code == 429 and int(results["refused"].headers["Retry-After"]) >= 1
        assert results["refused"].json()["error"]["code"] == "queue_full"
        assert results["waiting"].status_code == 503 and int(results["waiting"].headers["Retry-After"]) >= 1
        assert llm.most_active == 1  # never two generations at once


def test_health_answers_while_a_generation_runs_and_time_limit_stops_it():
    llm = SlowLLM(delay=0.1)
    with serving(llm, ServeLimits(request_timeout=1.0), max_new=100) as root:
        done: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: done.append(
            httpx.post(f"{root}/v1/chat/completions", json=dict(BODY, max_tokens=100), timeout=30)))
        started = time.monotonic()
        worker.start()
        time.sleep(0.4)
        health = httpx.get(f"{root}/health", timeout=2)
        assert health.status_code == 200 and health.json()["busy"] is True
        worker.join()
        assert done[0].status_code == 504 and done[0].json()["error"]["code"] == "request_timeout"
        assert time.monotonic() - started < 5  # not the 10 s the whole answer would take


def test_soak_abandons_malformed_bodies_and_answers_for_everyone_else():
    """18 clients, 6 at a time: a third abandon their streams at random points, a few send
    malformed bodies. Every well-formed request is answered, and a fresh one is answered in its
    normal time afterwards."""
    import psutil

    rng = random.Random(7)
    process = psutil.Process()
    with serving(shared_llm()) as root:
        httpx.post(f"{root}/v1/chat/completions", json=BODY, timeout=60)  # warm
        rss_before = process.memory_info().rss
        started = time.monotonic()
        httpx.post(f"{root}/v1/chat/completions", json=BODY, timeout=60)
        normal_s = time.monotonic() - started
        outcomes: list[str] = []

        def client(i: int) -> None:
            kind = ("abandon", "malformed", "stream", "plain", "abandon", "plain")[i % 6]
            if kind == "abandon":
                abandon_stream(root, after_bytes=rng.randint(150, 900))
                outcomes.append("abandoned")
            elif kind == "malformed":
                r = httpx.post(f"{root}/v1/chat/completions", content=b'{"model": 1, "messages": [}', timeout=60,
                               headers={"Content-Type": "application/json"})
                outcomes.append("refused" if r.status_code == 422 else f"bad {r.status_code}")
            elif kind == "stream":
                with httpx.stream("POST", f"{root}/v1/chat/completions", json=dict(BODY, stream=True), timeout=120) as r:
                    lines = [line for line in r.iter_lines() if line.startswith("data: ")]
                outcomes.append("answered" if r.status_code == 200 and lines[-1] == "data: [DONE]" else f"bad {r.status_code}")
            else:
                r = httpx.post(f"{root}/v1/chat/completions", json=BODY, timeout=120)
                outcomes.append("answered" if r.status_code == 200 and r.json()["choices"][0]["message"]["content"] else f"bad {r.status_code}")

        for wave in range(3):
            threads = [threading.Thread(target=client, args=(wave * 6 + i,)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=180)
        assert sorted(set(outcomes)) == ["abandoned", "answered", "refused"], outcomes
        assert outcomes.count("answered") == 9 and outcomes.count("abandoned") == 6
        started = time.monotonic()
        assert httpx.post(f"{root}/v1/chat/completions", json=BODY, timeout=60).status_code == 200
        assert time.monotonic() - started < normal_s * 3 + 2.0
        assert process.memory_info().rss - rss_before < 300 * 2**20


def _serve_process(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, **cache_env(tmp_path / "cache"))
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--kb", str(tmp_path / "kb"), "serve", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_busy_port_is_one_line_exit_3_before_claiming_to_serve(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        proc = _serve_process(tmp_path, "--port", str(port))
        out, err = proc.communicate(timeout=120)
    finally:
        holder.close()
    assert proc.returncode == 3
    assert err.strip().count("\n") == 0 and f"port {port}" in err and "in use" in err
    assert "serving" not in out + err


def test_sigterm_during_generation_exits_within_5_s(tmp_path):
    port = _free_port()
    proc = _serve_process(tmp_path, "--port", str(port))
    try:
        root = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        events: list[str] = []

        def read_stream():
            try:
                with httpx.stream("POST", f"{root}/v1/chat/completions", timeout=60,
                                  json=dict(BODY, stream=True, max_tokens=2000,
                                            messages=[{"role": "user", "content": "Write a very long story about a river."}])) as r:
                    events.extend(line for line in r.iter_lines() if line.startswith("data: "))
            except httpx.HTTPError as exc:
                events.append(f"closed: {type(exc).__name__}")

        reader = threading.Thread(target=read_stream)
        reader.start()
        time.sleep(1.5)  # generating by now
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.monotonic() - started <= 5.0
        reader.join(timeout=10)
        assert events and (events[-1] == "data: [DONE]" or events[-1].startswith("closed")), events[-3:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
