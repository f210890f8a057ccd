"""GPU check for speech-to-text: both backends on CUDA, time and peak GPU memory. At most ~5 minutes.

    python eval/gpu_check_asr.py [--budget 280]

Transcribes the committed clips (clean.mp4, noisy.mp4, lecture.m4a) with the bundled Whisper base:

  faster-whisper float16, faster-whisper int8_float16, openai-whisper float16 (converted checkpoint);
  openai-whisper has no int8 path, so its int8_float16 row says so instead of running.

Peak memory: NVML samples the device's used memory every 20 ms while a configuration loads and runs
(CTranslate2 keeps its own allocator, so torch counters would miss it); the figure is the peak
minus the memory in use before the model was loaded. torch's max_memory_allocated is added for
openai-whisper. Results: eval/results/gpu_check_asr.md (+ .json). Without CUDA it says so and
exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))
from common import PeakSampler  # noqa: E402
MEDIA = ROOT / "tests" / "fixtures" / "media"
CLIPS = ["clean.mp4", "noisy.mp4", "lecture.m4a"]
CONFIGS = [("faster-whisper", "float16"), ("faster-whisper", "int8_float16"),
           ("openai-whisper", "float16"), ("openai-whisper", "int8_float16")]


class PeakMemory(PeakSampler):
    """Peak used memory of GPU 0 (bytes) above the level when started, sampled by NVML."""

    def __init__(self, interval: float = 0.02):
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        super().__init__(self.used, interval)

    def used(self) -> int:
        return int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def __enter__(self):
        self.base = self.used()
        return super().__enter__()

    @property
    def delta(self) -> int:
        return self.peak - self.base


def cuda_available() -> tuple[bool, str]:
    try:
        import ctranslate2

        n_ct2 = ctranslate2.get_cuda_device_count()
    except Exception as exc:  # a CTranslate2 built without CUDA
        n_ct2 = 0
        why = str(exc)
    else:
        why = ""
    import torch

    if n_ct2 == 0 or not torch.cuda.is_available():
        return False, f"CTranslate2 sees {n_ct2} CUDA device(s), torch.cuda.is_available() = {torch.cuda.is_available()} {why}".strip()
    return True, torch.cuda.get_device_name(0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=280.0, help="Seconds; configurations left when it runs out are skipped.")
    args = ap.parse_args()
    ok, device = cuda_available()
    if not ok:
        print(f"no CUDA device: GPU check not run ({device})", file=sys.stderr)
        return 2

    import torch

    from ingest.asr import DecodeOptions, ModelOptions, load_backend
    from ingest.asr.runner import transcribe_file
    from syllabus_common.models import enforce_offline

    from asr_eval import score  # WER/CER after EnglishTextNormalizer

    enforce_offline(True)
    deadline = time.monotonic() + args.budget
    rows = []
    for backend_name, compute_type in CONFIGS:
        if backend_name == "openai-whisper" and compute_type.startswith("int8"):
            rows.append({"backend": backend_name, "compute_type": compute_type, "status": "not supported (no int8 path)"})
            continue
        if time.monotonic() > deadline:
            rows.append({"backend": backend_name, "compute_type": compute_type, "status": "skipped (time budget)"})
            continue
        torch.cuda.reset_peak_memory_stats()
        with PeakMemory() as peak:
            t0 = time.perf_counter()
            engine = load_backend(backend_name, ModelOptions(model="base", device="cuda", compute_type=compute_type))
            load_s = time.perf_counter() - t0
            for clip in CLIPS:
                started = time.perf_counter()
                t = transcribe_file(MEDIA / clip, engine, DecodeOptions(language="en"))
                wall = time.perf_counter() - started
                reference = (MEDIA / (clip.split(".")[0] + ".txt")).read_text(encoding="utf-8")
                rows.append({"backend": backend_name, "compute_type": engine.compute_type, "clip": clip,
                             "status": "ok", "load_seconds": round(load_s, 2), "audio_seconds": round(t.duration, 2),
                             "seconds": round(wall, 3), "rtf": round(t.duration / wall, 1), "wer": round(score(reference, t.text)[0], 4)})
        for r in rows:
            if r.get("backend") == backend_name and r.get("compute_type") == engine.compute_type and r["status"] == "ok":
                r["peak_gpu_mib"] = round(peak.delta / 2**20)
                if backend_name == "openai-whisper":
                    r["torch_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        del engine
        torch.cuda.empty_cache()

    from common import RESULTS, machine

    lines = ["# GPU check: speech-to-text", "", f"Machine: {machine()}. GPU: {device}. Model: bundled Whisper base.", "",
             "| backend | precision | clip | × real time | seconds | load s | peak GPU MiB | WER | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['compute_type']} | {r.get('clip', '—')} | {r.get('rtf', '—')} | "
                     f"{r.get('seconds', '—')} | {r.get('load_seconds', '—')} | {r.get('peak_gpu_mib', '—')} | "
                     f"{r['wer']:.1%} | {r['status']} |" if r["status"] == "ok" else
                     f"| {r['backend']} | {r['compute_type']} | — | — | — | — | — | — | {r['status']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gpu_check_asr.md").write_text(text, encoding="utf-8")
    (RESULTS / "gpu_check_asr.json").write_text(json.dumps({"machine": machine(), "gpu": device, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
