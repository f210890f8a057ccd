"""Speech-to-text speed and accuracy against two baselines measured in the same run.

    python eval/bench_asr.py [--repeats N]        (also part of `make bench` through run())

Audio: tests/fixtures/media/lecture.m4a, a 62.7 s lecture synthesized with espeak-ng from
lecture.txt. Three engines on the same weights (the bundled Whisper base):

  ours                   faster-whisper int8, beam 3, Silero VAD, repetition guards, encoder on every
                         core and decoder on one thread — the shipped config.yaml defaults, through
                         the whole product path (PyAV decode, blocks)
  faster-whisper default WhisperModel(compute_type="default") + transcribe() with its own defaults
                         (beam 5, no VAD); decoded audio handed in
  openai-whisper fp32    the reference PyTorch model on the checkpoint converted from the same
                         CTranslate2 weights, same decoding options as ours (it has no VAD); audio
                         handed in

Speed is the real-time factor (audio seconds per wall second; higher is faster), best of the
repeats (one by default: the openai-whisper baseline alone takes minutes on 2 cores). The CPU time
of the process (all threads) is recorded next to it: it shows how much of the machine each engine
keeps busy (ours decodes on one thread and leaves the other core free for the rest of the work),
and on a shared machine it tells a slow neighbour from a slow engine. WER uses jiwer after
openai-whisper's EnglishTextNormalizer on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))
MEDIA = ROOT / "tests" / "fixtures" / "media"
CLIP = MEDIA / "lecture.m4a"


def _wer(ref: str, hyp: str) -> float:
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    return jiwer.wer(norm(ref), norm(hyp))


def _best(fn, repeats: int) -> tuple[float, float, str]:
    """(fastest wall seconds, CPU seconds of that run (all threads), its text)."""
    best = None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        text = fn()
        dt, dc = time.perf_counter() - t, time.process_time() - c
        if best is None or dt < best[0]:
            best = (dt, dc, text)
    return best


def _entry(label: str, seconds: float, wall: float, cpu: float, text: str, reference: str) -> dict:
    cores = os.cpu_count() or 1
    return {"label": label, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "rtf": seconds / wall,
            "cores_busy": round(cpu / wall, 2), "cores": cores, "wer": _wer(reference, text), "text": text}


def measure(repeats: int = 1, openai: bool = True) -> dict:
    """Real-time factor and WER of each engine on the lecture clip."""
    import numpy as np

    from ingest.asr import DecodeOptions, ModelOptions, load_backend, options_from_config
    from ingest.asr.runner import transcribe_file
    from ingest.asr.weights import assemble_base
    from ingest.media import load_audio
    from pipeline.config import load_config
    from syllabus_common.models import enforce_offline

    enforce_offline(True)
    cfg = load_config(ROOT / "config.yaml")
    _, model_options, shipped = options_from_config(cfg.asr)  # the defaults users get
    model_options.device = "cpu"
    reference = (MEDIA / "lecture.txt").read_text(encoding="utf-8")
    audio = load_audio(CLIP)
    seconds = len(audio) / 16_000
    warm = audio[: 16_000 * 3]
    results = {"clip": CLIP.name, "audio_seconds": round(seconds, 2), "repeats": repeats}

    # ours: the shipped defaults through the product path
    ours = load_backend("faster-whisper", model_options)
    list(ours.transcribe(warm, DecodeOptions(language="en"))[0])
    dt, dc, text = _best(lambda: transcribe_file(CLIP, ours, shipped).text, repeats)
    enc, dec = ours.threads
    label = (f"faster-whisper base {ours.compute_type}, beam {shipped.beam_size}, VAD {'on' if shipped.vad else 'off'}, "
             f"encoder {enc} / decoder {dec} threads (ours)")
    results["ours"] = _entry(label, seconds, dt, dc, text, reference)
    del ours

    # faster-whisper with its own defaults on the same weights
    from faster_whisper import WhisperModel

    model = WhisperModel(str(assemble_base()), device="cpu", compute_type="default")
    list(model.transcribe(warm, language="en")[0])
    dt, dc, text = _best(lambda: " ".join(s.text for s in model.transcribe(audio)[0]), repeats)
    results["fw_default"] = _entry("faster-whisper base, library defaults (beam 5, no VAD, float32 on CPU)",
                                   seconds, dt, dc, text, reference)
    del model

    if not openai:
        return results
    # openai-whisper fp32 on the converted checkpoint (same weights), same decoding options as ours
    ow = load_backend("openai-whisper", ModelOptions(model="base", device="cpu", compute_type="float32"))
    list(ow.transcribe(warm, DecodeOptions(language="en", vad=False))[0])
    opts = replace(shipped, vad=False)
    dt, dc, text = _best(lambda: " ".join(s.text for s in ow.transcribe(np.asarray(audio), opts)[0]), repeats)
    results["openai_fp32"] = _entry(f"openai-whisper base fp32 (converted checkpoint), beam {opts.beam_size}",
                                    seconds, dt, dc, text, reference)
    return results


def rows_from(results: dict) -> list[dict]:
    ours, fw, ow = results["ours"], results["fw_default"], results.get("openai_fp32")
    clip = f"{results['clip']} ({results['audio_seconds']:.0f} s)"

    def row(stage, a, b, unit, note, ratio=None):
        return {"stage": stage, "ours": round(a, 3), "baseline": round(b, 3), "unit": unit,
                "ratio": ratio if ratio is not None else (a / b if b else None), "note": note}

    def cpu(e):
        return f"{e['cpu_seconds']:.1f} CPU s"

    rows = [
        row(f"ASR speed: {ours['label']} vs faster-whisper defaults", ours["rtf"], fw["rtf"],
            "× real time", f"{clip}; CPU time {cpu(ours)} vs {cpu(fw)}; WER {ours['wer']:.1%} vs {fw['wer']:.1%}; "
            "target ≥ 10× real time, WER no worse"),
        row("ASR WER: ours vs faster-whisper defaults", 100 * ours["wer"], 100 * fw["wer"], "% WER", clip, ratio=None),
    ]
    if ow is None:
        rows.append({"stage": "ASR speed: faster-whisper int8 vs openai-whisper fp32", "ours": None, "baseline": None,
                     "unit": "× real time", "ratio": None, "note": "skipped with --quick (minutes on 2 cores)"})
        return rows
    rows += [
        row("ASR speed: faster-whisper int8 vs openai-whisper fp32, same weights", ours["rtf"], ow["rtf"],
            "× real time", f"{clip}; CPU time {cpu(ours)} vs {cpu(ow)}; WER {ours['wer']:.1%} vs {ow['wer']:.1%}; "
            "target ≥ 3× faster, WER within 1 point"),
        row("ASR WER: ours vs openai-whisper fp32", 100 * ours["wer"], 100 * ow["wer"], "% WER", clip, ratio=None),
    ]
    return rows


def run(quick: bool = False) -> list[dict]:
    """Rows for eval/bench.py: ratios against baselines measured in this run."""
    results = measure(repeats=1, openai=not quick)  # openai-whisper alone takes minutes on 2 cores
    from common import RESULTS, machine

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_asr.json").write_text(json.dumps({"machine": machine(), **results}, indent=2))
    return rows_from(results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1, help="Runs per engine; the fastest counts.")
    args = ap.parse_args()
    from common import RESULTS, machine

    results = measure(repeats=args.repeats)
    (RESULTS / "bench_asr.json").write_text(json.dumps({"machine": machine(), **results}, indent=2))
    rows = rows_from(results)
    print(f"Machine: {machine()}")
    print("| stage | ours | baseline | unit | ours / baseline | notes |\n|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['ratio']:.2f}×" if isinstance(r["ratio"], (int, float)) else "—"
        ours, base = (f"{r[k]:.2f}" if isinstance(r[k], (int, float)) else "—" for k in ("ours", "baseline"))
        print(f"| {r['stage']} | {ours} | {base} | {r['unit']} | {ratio} | {r['note']} |")


if __name__ == "__main__":
    main()
