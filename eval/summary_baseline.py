"""The previous summarizer (map-reduce over the chapter text), run from an earlier commit's code.

The summary path of today's code has no map-reduce left, so the baseline is the code of a git ref
(default ``88d3e3c``, the last commit before key-point summaries): its ``pipeline/``, ``ingest/``,
``syllabus_common/``, ``prompts/`` and ``config.yaml`` are exported with ``git archive`` into a
temporary folder and run in a subprocess with that folder first on ``sys.path``. Its model calls are
cached in ``eval/work/summary-cache-baseline`` (a re-run is instant). What comes back is plain
JSON (per unit: title, page range, summary text; the overview; counts), which the current code
scores exactly like its own summary (:mod:`eval.trust_metrics`).

    python eval/summary_baseline.py [--ref REF] [--pdf PATH] [-o OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "eval" / "work"
BASELINE_REF = "88d3e3c"  # main before summaries were built from key points
_PATHS = ("pipeline", "ingest", "syllabus_common", "syllabus_data", "prompts", "config.yaml")

_RUN = r"""
import json, sys, time
from pathlib import Path
from pipeline.config import load_config
from pipeline.summarize import summarize
from syllabus_common.models import enforce_offline

cfg = load_config(Path("config.yaml"))
enforce_offline(cfg.offline)
t0 = time.perf_counter()
book = summarize(Path(sys.argv[1]), cfg, cache_dir=Path(sys.argv[2]))
units = [{"title": u.title, "where": u.where, "pages": u.pages, "summary": u.summary} for u in book.units]
json.dump({"units": units, "overview": book.overview, "coverage": book.coverage_line, "model": book.model,
           "model_calls": book.model_calls, "cache_hits": book.cache_hits,
           "seconds": round(time.perf_counter() - t0, 1)}, open(sys.argv[3], "w"), ensure_ascii=False, indent=1)
"""


def run_baseline(pdf: Path, ref: str = BASELINE_REF, out: Path | None = None) -> dict:
    """The summary of ``pdf`` by the code at ``ref`` (see the module docstring)."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = out or WORK / f"summary-baseline-{ref}.json"
    with tempfile.TemporaryDirectory(prefix="syllabus-baseline-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, *_PATHS], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {"PYTHONPATH": tmp, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin",
               "HOME": str(Path.home()), **{k: v for k, v in os.environ.items() if k.endswith("_NUM_THREADS")}}
        subprocess.run([sys.executable, "-c", _RUN, str(pdf), str(WORK / "summary-cache-baseline"), str(out)],
                       cwd=tmp, env=env, check=True)
    return json.loads(out.read_text(encoding="utf-8"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default=BASELINE_REF)
    ap.add_argument("--pdf", type=Path, default=Path("/usr/share/R/doc/manual/R-intro.pdf"))
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    result = run_baseline(args.pdf, args.ref, args.output)
    print(f"{len(result['units'])} units, {result['model_calls']} model calls, {result['cache_hits']} from cache, "
          f"{result['seconds']} s")


if __name__ == "__main__":
    main()
