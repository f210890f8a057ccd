"""Planner benchmarks for `make bench`: estimator throughput, planning latency and the dry-run cost.

``run()`` returns rows in eval/bench.py's shape (stage, ours, baseline, unit, ratio, note). The
dry run is the expensive one (FakeTensorMode traces a real step); the analytic estimate it checks
runs thousands of times per second, and the dry run's cost is reported against it in the same run.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _row(stage: str, ours, unit: str, baseline=None, ratio=None, note: str = "") -> dict:
    return {"stage": stage, "ours": ours, "baseline": baseline, "unit": unit, "ratio": ratio, "note": note}


def run() -> list[dict]:
    from pipeline.planner.catalog import get_model
    from pipeline.planner.estimator import Settings, estimate
    from pipeline.planner.hardware import what_if_card
    from pipeline.planner.measure import dry_run
    from pipeline.planner.plan import make_plan

    machine = _machine()
    rows = []
    arch = get_model("llama-3.1-8b")
    settings = [Settings(mode=m, precision=p, seq=4096) for m, p in
                (("inference", "bf16"), ("inference", "nf4"), ("full", "bf16"), ("lora", "bf16"), ("qlora", "nf4"))]
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        for st in settings:
            estimate(arch, st)
            n += 1
    per_estimate = (time.perf_counter() - t0) / n
    rows.append(_row("planner.estimate (llama-3.1-8b, 5 modes)", round(1 / per_estimate), "estimates/s", note=machine))
    t0 = time.perf_counter()
    plan = make_plan(what_if_card("RTX 4090"), context=8192, allow_download=True)
    rows.append(_row("planner.make_plan (RTX 4090, all candidates)", round(time.perf_counter() - t0, 3), "s",
                     note=f"chose {plan.stages['llm'].choice.label() if plan.stages['llm'].choice else 'none'}"))
    one_b = get_model("llama-3.2-1b")
    st = Settings(mode="full", seq=512, overhead=False)
    t0 = time.perf_counter()
    m = dry_run(one_b, st)
    secs = time.perf_counter() - t0
    est = estimate(one_b, st)
    rows.append(_row("planner.dry_run vs analytic estimate (llama-3.2-1b full AdamW step, 512 tokens)", round(secs, 2),
                     "s", baseline=per_estimate, ratio=secs / per_estimate,
                     note=f"the dry run costs {secs / per_estimate:,.0f} analytic estimates; the estimate is off by "
                          f"{(est.tensor_bytes - m.peak_bytes) / m.peak_bytes:+.1%}; {machine}"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['stage']}: {row['ours']} {row['unit']}  ({row['note']})")
