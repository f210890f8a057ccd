"""Speech-to-text accuracy: WER and CER per clip and per backend, written to eval/results/asr_eval.md.

    python eval/asr_eval.py [--engines fw-base,fw-tiny.en,ow-base] [--clips clean.mp4,lecture.m4a]

Clips are the committed fixtures (tests/fixtures/media: espeak-ng speech from known text, one clean,
one with white noise mixed in by sox, in mp4 with a video track and in m4a, and a 63 s lecture).
Both sides are normalised with openai-whisper's EnglishTextNormalizer before jiwer scores them, so
"4 GB" and "four gigabytes" count as equal. Engines use the shipped config.yaml decoding settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))
MEDIA = ROOT / "tests" / "fixtures" / "media"
CLIPS = ["clean.mp4", "clean.m4a", "noisy.mp4", "noisy.m4a", "lecture.m4a"]
# name → (backend, model, compute type)
ENGINES = {
    "fw-base": ("faster-whisper", "base", "auto"),
    "fw-tiny.en": ("faster-whisper", "tiny.en", "auto"),
    "ow-base": ("openai-whisper", "base", "float32"),
}


def score(reference: str, hypothesis: str) -> tuple[float, float]:
    """(WER, CER) after EnglishTextNormalizer on both sides."""
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    ref, hyp = norm(reference), norm(hypothesis)
    return jiwer.wer(ref, hyp), jiwer.cer(ref, hyp)


def evaluate(engines: list[str], clips: list[str]) -> list[dict]:
    from ingest.asr import load_backend, options_from_config
    from ingest.asr.runner import transcribe_file
    from pipeline.config import load_config
    from syllabus_common.models import enforce_offline

    enforce_offline(True)
    cfg = load_config(ROOT / "config.yaml")
    rows = []
    for name in engines:
        backend_name, model, compute_type = ENGINES[name]
        _, model_options, decode = options_from_config(cfg.asr, model=model, compute_type=compute_type)
        backend = load_backend(backend_name, replace(model_options, device="cpu"))
        for clip in clips:
            reference = (MEDIA / (clip.split(".")[0] + ".txt")).read_text(encoding="utf-8")
            started = time.perf_counter()
            t = transcribe_file(MEDIA / clip, backend, decode)
            wall = time.perf_counter() - started
            wer, cer = score(reference, t.text)
            rows.append({"clip": clip, "engine": name, "backend": backend.name, "model": backend.model_name,
                         "compute_type": backend.compute_type, "beam_size": decode.beam_size,
                         "vad": decode.vad and backend.supports_vad, "audio_seconds": round(t.duration, 2),
                         "wall_seconds": round(wall, 2), "rtf": round(t.duration / wall, 2), "language": t.language,
                         "wer": round(wer, 4), "cer": round(cer, 4), "text": t.text})
            print(f"{clip:12s} {name:11s} WER {wer:6.1%}  CER {cer:6.1%}  {t.duration / wall:5.1f}× real time", flush=True)
        del backend
    return rows


def write_report(rows: list[dict]) -> Path:
    from common import RESULTS, machine

    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Speech-to-text accuracy", "",
        f"Machine: {machine()}. Decoding: config.yaml defaults (beam {rows[0]['beam_size'] if rows else '?'}, "
        "VAD where the backend has it). Scores after openai-whisper's EnglishTextNormalizer, jiwer. "
        "Real-time factor is wall-clock on a possibly shared machine (eval/bench_asr.py also records CPU time).", "",
        "| clip | engine | backend · model · precision | WER | CER | × real time | language |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['engine']} | {r['backend']} · {r['model']} · {r['compute_type']} | "
                     f"{r['wer']:.1%} | {r['cer']:.1%} | {r['rtf']:.1f} | {r['language']} |")
    out = RESULTS / "asr_eval.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2, ensure_ascii=False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"Comma-separated: {', '.join(ENGINES)}.")
    ap.add_argument("--clips", default=",".join(CLIPS), help=f"Comma-separated: {', '.join(CLIPS)}.")
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        sys.exit(f"unknown engine(s) {', '.join(unknown)}; valid: {', '.join(ENGINES)}")
    out = write_report(evaluate(engines, [c for c in args.clips.split(",") if c]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
