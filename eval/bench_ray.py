"""Ingest of a folder of short lectures, local against `--ray` on this machine, and what it predicts
for a cluster.

    python eval/bench_ray.py [--lectures N]        (also part of `make bench` through run())

Lectures: N distinct recordings synthesized with espeak-ng from rotations of the lecture text in
tests/fixtures/make_media.py (about 25 s each); without espeak-ng, the committed fixture clips. Both
runs are whole `syllabus ingest DIR --json` commands in fresh processes into fresh KBs (model loads,
and for --ray the start of a local Ray instance, included), with asr.model tiny.en and slides off.
The per-worker throughput is the seconds of audio a worker finished per second of its own work
(``work_seconds`` of each outcome: decode, transcribe, chunk and embed), and pages per second for
document workers (the sample PDF, ingested by a Ray worker).

Scaling simulation for 100 h of audio on 1, 4 and 16 GPU workers, with its assumptions written into
the results: 100 recordings of one hour; one file per worker at a time, so a worker count that does
not divide the files leaves a last partial round; a GPU worker transcribes at the rate faster-whisper
reports for large-v3 fp16, beam 5 (13 min of audio in 52 s on an RTX 2080 Ti, 15× real time:
SYSTRAN/faster-whisper issue #1030), which our CPU figure cannot stand in for; the fixed cost (Ray
start, model loads, the driver's commits and the index build) is the one measured here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, SAMPLE_PDF, WORK, machine  # noqa: E402

GPU_RATE = 780 / 52  # s of audio per s: faster-whisper large-v3 fp16 beam 5, RTX 2080 Ti (SYSTRAN/faster-whisper#1030)
GPU_SOURCE = "faster-whisper large-v3 fp16 beam 5 on an RTX 2080 Ti: 13 min in 52 s (SYSTRAN/faster-whisper#1030)"
SIM_HOURS, SIM_FILE_HOURS, SIM_WORKERS = 100, 1.0, (1, 4, 16)


def lectures(folder: Path, n: int) -> list[Path]:
    """``n`` distinct short lectures in ``folder`` (synthesized when espeak-ng and sox are here)."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("espeak-ng") and shutil.which("sox"):
        sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
        import make_media

        sentences = [s.strip() + "." for s in make_media.LECTURE_TEXT.split(".") if s.strip()]
        out = []
        for i in range(n):
            text = " ".join(sentences[(i + j) % len(sentences)] for j in range(4))
            wav, target = folder / f"lecture{i:02d}.wav", folder / f"lecture{i:02d}.m4a"
            make_media.synthesize(text, wav)
            make_media.mux(make_media.read_wav(wav), target, video=False)
            wav.unlink()
            out.append(target)
        return out
    media = ROOT / "tests" / "fixtures" / "media"
    clips = [media / name for name in ("clean.m4a", "noisy.m4a", "lecture.m4a", "clean.mp4", "noisy.mp4")][:n]
    for c in clips:
        shutil.copy(c, folder / c.name)
    return [folder / c.name for c in clips]


def ingest(kb: Path, inputs: list[Path], config: Path, ray: bool) -> tuple[float, list[dict]]:
    shutil.rmtree(kb, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline", "--config", str(config), "--kb", str(kb), "ingest",
           *map(str, inputs), "--json"] + (["--ray"] if ray else [])
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])} failed: {done.stderr[-600:]}")
    return wall, json.loads(done.stdout)["outcomes"]


def simulate(fixed_s: float) -> list[dict]:
    files = math.ceil(SIM_HOURS / SIM_FILE_HOURS)
    per_file = SIM_FILE_HOURS * 3600 / GPU_RATE
    rows = []
    for n in SIM_WORKERS:
        rounds = math.ceil(files / n)
        rows.append({"workers": n, "hours": round((rounds * per_file + fixed_s) / 3600, 3),
                     "ideal_hours": round(SIM_HOURS * 3600 / GPU_RATE / n / 3600, 3), "rounds": rounds})
    return rows


def measure(n: int) -> dict:
    import yaml

    work = WORK / "bench-ray"
    shutil.rmtree(work, ignore_errors=True)
    folder = work / "lectures"
    inputs = lectures(folder, n)
    config = work / "config.yaml"
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["asr"]["model"], data["slides"]["enabled"] = "tiny.en", False
    config.write_text(yaml.safe_dump(data))
    local_wall, local_out = ingest(work / "kb-local", [folder], config, ray=False)
    ray_wall, ray_out = ingest(work / "kb-ray", [folder], config, ray=True)
    _, doc_out = ingest(work / "kb-ray-pdf", [SAMPLE_PDF], config, ray=True)
    audio = sum(o["seconds"] or 0 for o in ray_out)
    speech_rate = audio / sum(o["work_seconds"] for o in ray_out)
    local_rate = audio / sum(o["work_seconds"] for o in local_out)
    pages_rate = sum(o["pages"] for o in doc_out) / sum(o["work_seconds"] for o in doc_out)
    workers = min(os.cpu_count() or 1, len(inputs))
    fixed = max(0.0, ray_wall - sum(o["work_seconds"] for o in ray_out) / workers)
    return {
        "machine": machine(), "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "lectures": len(inputs), "audio_seconds": round(audio, 1), "workers": workers,
        "local_seconds": round(local_wall, 2), "ray_seconds": round(ray_wall, 2),
        "local_over_ray": round(local_wall / ray_wall, 3),
        "same_chunks": [o["chunks"] for o in local_out] == [o["chunks"] for o in ray_out],
        "fixed_seconds": round(fixed, 1),
        "per_worker": {
            "speech": {"rate": round(speech_rate, 2), "source": f"measured here: tiny.en int8 on a Ray worker ({machine()})"},
            "speech_local": {"rate": round(local_rate, 2), "source": "measured here: the same files in the local ingest"},
            "documents": {"rate": round(pages_rate, 1), "source": f"measured here: {SAMPLE_PDF.name} on a Ray worker"},
            "speech_gpu": {"rate": round(GPU_RATE, 1), "source": GPU_SOURCE},
        },
        "simulation": {"rows": simulate(fixed), "assumptions": [
            f"{SIM_HOURS} h of audio as {math.ceil(SIM_HOURS / SIM_FILE_HOURS)} recordings of {SIM_FILE_HOURS:g} h",
            "one file per worker at a time: a last partial round when workers do not divide the files",
            f"GPU worker speed {GPU_RATE:.1f}x real time: {GPU_SOURCE}",
            f"fixed cost {fixed:.0f} s (Ray start, model loads, the driver's commits, index build), as measured here",
            "the driver's commit of one file (one SQLite transaction) overlaps the workers' next files",
        ]},
    }


def rows_from(r: dict) -> list[dict]:
    from bench import row

    note = f"{r['lectures']} lectures, {r['audio_seconds']:.0f} s audio, {r['workers']} workers; load {r['load']} (shared machine)"
    rows = [row("ingest of a folder of lectures, --ray (local instance) vs local; whole commands", r["ray_seconds"],
                r["local_seconds"], "s", note=note + f"; same chunks: {r['same_chunks']}"),
            row("speech worker throughput (tiny.en, transcribe+chunk+embed) on Ray vs in the local ingest",
                r["per_worker"]["speech"]["rate"], r["per_worker"]["speech_local"]["rate"], "s audio/s"),
            row("document worker throughput on Ray", r["per_worker"]["documents"]["rate"], None, "pages/s",
                note=r["per_worker"]["documents"]["source"])]
    for s in r["simulation"]["rows"]:
        rows.append(row(f"simulated: {SIM_HOURS} h of audio on {s['workers']} GPU workers", s["hours"], s["ideal_hours"],
                        "h", note=f"vs ideal linear; {s['rounds']} rounds; assumptions in bench_ray.json"))
    return rows


def run(quick: bool = False) -> list[dict]:
    """Rows for eval/bench.py; writes eval/results/bench_ray.json (read by `syllabus plan --cluster`)."""
    results = measure(4 if quick else 8)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_ray.json").write_text(json.dumps(results, indent=2) + "\n")
    return rows_from(results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lectures", type=int, default=8)
    args = ap.parse_args()
    results = measure(args.lectures)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_ray.json").write_text(json.dumps(results, indent=2) + "\n")
    from bench import write_results

    write_results(rows_from(results), f"Machine: {results['machine']}, load average {results['load']} (shared with other "
                  "jobs). Baseline: the local ingest of the same folder, measured in the same run.", "bench-ray.md")


if __name__ == "__main__":
    main()
