"""`syllabus serve` under load, over loopback: throughput and latency with clients that abandon their
streams or send garbage, and whether the server is still itself afterwards.

    python eval/bench_serve.py            # the soak: 60 mixed requests, then 100 abandoned streams
    python eval/bench_serve.py --quick    # what `make bench` runs (24 mixed, 20 abandoned)

The server is the real app (pipeline.llm.server) over the bundled SmolLM2-135M in this process,
on 127.0.0.1 only. Baseline: the same well-formed request sent alone to an idle server, in the same
run. Results: eval/results/serve_soak.md (full run) and the rows of `make bench`.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_llm import _config, row  # noqa: E402
from common import RESULTS, machine  # noqa: E402

MODEL = "SmolLM2-135M-Instruct"
MAX_TOKENS = 24
QUESTIONS = ["Name three colours.", "What is a GPU?", "Say hello in French.", "What is 2 plus 2?"]


def _body(i: int, stream: bool = False) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
            "max_tokens": MAX_TOKENS, "stream": stream}


def _start(llm):
    import uvicorn

    from pipeline.llm import GenerationOptions
    from pipeline.llm.server import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(llm, GenerationOptions(max_new_tokens=MAX_TOKENS)),
                                           host="127.0.0.1", port=0, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, server.servers[0].sockets[0].getsockname()[1]


def _abandon(port: int, rng: random.Random) -> None:
    payload = json.dumps(_body(rng.randrange(4), stream=True) | {"max_tokens": 64}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        want, got = rng.randint(150, 900), b""
        while len(got) < want and (data := sock.recv(want - len(got))):
            got += data


def _client(port: int, i: int, rng: random.Random, latencies: list[float], outcomes: list[str]) -> None:
    import httpx

    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    kind = ("abandon", "plain", "stream", "malformed", "plain", "abandon")[i % 6]
    started = time.perf_counter()
    if kind == "abandon":
        _abandon(port, rng)
        outcomes.append("abandoned")
        return
    if kind == "malformed":
        r = httpx.post(url, content=b'{"model": 1, "messages": [', headers={"Content-Type": "application/json"}, timeout=120)
        outcomes.append("refused" if r.status_code == 422 and "error" in r.json() else f"bad {r.status_code}")
        return
    if kind == "stream":
        with httpx.stream("POST", url, json=_body(i, stream=True), timeout=300) as r:
            ok = r.status_code == 200 and [line for line in r.iter_lines() if line][-1] == "data: [DONE]"
    else:
        r = httpx.post(url, json=_body(i), timeout=300)
        ok = r.status_code == 200 and bool(r.json()["choices"][0]["message"]["content"])
    latencies.append(time.perf_counter() - started)
    outcomes.append("answered" if ok else "failed")


def _idle_latency(port: int, n: int = 5) -> float:
    import httpx

    times = []
    for i in range(n):
        t = time.perf_counter()
        httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=_body(i), timeout=120).raise_for_status()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def soak(requests: int, abandons: int, concurrency: int = 6, seed: int = 7) -> dict:
    import psutil

    from pipeline.llm import LoadContext, load_llm
    from syllabus_common.models import user_cache_dir

    cfg = _config()
    llm = load_llm(cfg.llm.model_copy(update={"context": 2048}), LoadContext(cache_dirs=(user_cache_dir(),)))
    server, port = _start(llm)
    rng = random.Random(seed)
    _idle_latency(port, 2)  # warm
    idle = _idle_latency(port)
    rss_before = psutil.Process().memory_info().rss
    latencies: list[float] = []
    outcomes: list[str] = []
    started = time.perf_counter()
    for wave in range(0, requests, concurrency):
        threads = [threading.Thread(target=_client, args=(port, i, rng, latencies, outcomes))
                   for i in range(wave, min(wave + concurrency, requests))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.perf_counter() - started
    for _ in range(abandons):
        _abandon(port, rng)
    after = _idle_latency(port, 3)
    rss_after = psutil.Process().memory_info().rss
    server.should_exit = True
    ordered = sorted(latencies)
    return {
        "requests": requests, "abandoned_after": abandons, "concurrency": concurrency,
        "outcomes": {k: outcomes.count(k) for k in sorted(set(outcomes))},
        "answered_per_s": outcomes.count("answered") / wall, "wall_s": wall,
        "p50_s": statistics.median(ordered), "p95_s": ordered[int(0.95 * (len(ordered) - 1))],
        "idle_s": idle, "fresh_after_abandons_s": after,
        "rss_growth_mib": (rss_after - rss_before) / 2**20,
    }


def rows_from(result: dict) -> list[dict]:
    outcome = ", ".join(f"{k} {v}" for k, v in result["outcomes"].items())
    return [
        row("serve under load: answered requests/s (6 clients, 1/3 abandon, some malformed)",
            result["answered_per_s"], 1 / result["idle_s"], "req/s",
            note=f"baseline: one client on an idle server; {outcome}; {MAX_TOKENS} tokens max"),
        row("serve under load: p50 / p95 latency of well-formed requests",
            result["p50_s"], result["idle_s"], "s", note=f"p95 {result['p95_s']:.2f} s; baseline: idle latency"),
        row(f"serve after {result['abandoned_after']} abandoned streams: fresh request latency",
            result["fresh_after_abandons_s"], result["idle_s"], "s",
            note=f"RSS growth {result['rss_growth_mib']:.0f} MiB over the soak"),
    ]


def run(quick: bool = False) -> list[dict]:
    return rows_from(soak(24, 20) if quick else soak(60, 100))


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    result = soak(24, 20) if quick else soak(60, 100)
    lines = [f"# serve soak\n\nMachine: {machine()}. Model: {MODEL}, {MAX_TOKENS} new tokens max, "
             f"{result['requests']} requests by {result['concurrency']} concurrent clients, then "
             f"{result['abandoned_after']} abandoned streams.\n", "```", json.dumps(result, indent=2), "```"]
    print("\n".join(lines))
    if not quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "serve_soak.md").write_text("\n".join(lines) + "\n")
