"""`syllabus vram` (memory estimate, seed rule, dry-run measurement) and `syllabus plan` (what fits here)."""

from __future__ import annotations

from typing import Optional

import typer

DEFAULT_PRECISION = {"inference": "bf16", "full": "bf16", "lora": "bf16", "qlora": "nf4"}
ALL_PRECISIONS = {
    "inference": ("fp32", "bf16", "int8", "nf4", "gptq-int4", "awq-int4", "Q8_0", "Q4_K_M"),
    "full": ("fp32", "bf16"),
    "lora": ("bf16", "fp16"),
    "qlora": ("nf4", "fp4"),
}
WHISPER_PRECISIONS = ("fp32", "fp16", "int8_float16", "int8")


def _estimates(arch, mode: str, precision: Optional[str], base: dict):
    """[(label, Estimate)] for one precision, every precision of a mode (--precision all) or every mode."""
    from pipeline.errors import ConfigError
    from pipeline.planner.catalog import DecoderArch
    from pipeline.planner.estimator import Settings, estimate

    decoder = isinstance(arch, DecoderArch)
    if mode == "all":
        if not decoder:
            raise ConfigError("--mode all compares LLM modes; for Whisper, T5 and encoders give --mode inference, full or lora")
        modes = ["inference", "full", "lora", "qlora"]
        return [(m, estimate(arch, Settings(mode=m, precision=DEFAULT_PRECISION[m], **base))) for m in modes]
    if precision == "all":
        precs = ALL_PRECISIONS[mode] if decoder else WHISPER_PRECISIONS
        if decoder and arch.file_precision and arch.file_precision not in precs:
            precs = (*precs, arch.file_precision)
        return [(p, estimate(arch, Settings(mode=mode, precision=p, **base))) for p in precs]
    default = DEFAULT_PRECISION[mode] if decoder else ("fp16" if mode == "inference" else "bf16")
    if decoder and arch.file_precision and precision is None and mode == "inference":
        default = arch.file_precision  # a GGUF file: its own type
    p = precision or default
    return [(p, estimate(arch, Settings(mode=mode, precision=p, **base)))]


def register(app: typer.Typer) -> None:
    @app.command()
    def vram(
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Catalog name (llama-3.1-8b, qwen2.5-7b, whisper-base, ...) or a path."),
        config: Optional[str] = typer.Option(None, "--config", help="A model's config.json, HF model folder or .gguf file."),
        params: Optional[str] = typer.Option(None, "--params", help="Just a parameter count (7B, 135M): a Llama-shaped stand-in."),
        mode: str = typer.Option("inference", "--mode", help="inference, full, lora, qlora, or all (compare modes)."),
        precision: Optional[str] = typer.Option(None, "--precision", "-p", help="fp32, bf16, fp16, int8, nf4, fp4, gptq-int4, awq-int4, a GGUF type (Q4_K_M...), or all. Default: bf16 (nf4 for qlora)."),
        seq: int = typer.Option(2048, "--context", "--seq", min=1, help="Tokens: the context (inference) or sequence length (training)."),
        batch: int = typer.Option(1, "--batch", "-b", min=1, help="Sequences at once."),
        kv_cache_dtype: Optional[str] = typer.Option(None, "--kv-cache-dtype", help="KV cache dtype: fp16, bf16, fp32, fp8, int8, q8_0, q4_0 (default: compute dtype)."),
        optimizer: str = typer.Option("adamw", "--optimizer", "--optim", help="adamw, adamw8bit, paged_adamw, paged_adamw8bit, sgd (momentum), adafactor."),
        gpus: int = typer.Option(1, "--gpus", min=1, help="Data-parallel GPUs (training): the estimate is per GPU."),
        shard: str = typer.Option("none", "--shard", help="none, ddp, zero1, zero2, zero3 or fsdp (states split among --gpus)."),
        offload: str = typer.Option("none", "--offload", help="none, optimizer or params (to CPU RAM; params needs zero3/fsdp)."),
        grad_accum: int = typer.Option(1, "--grad-accum", min=1, help="Micro-batches per optimizer step (above 1, gradients stay allocated through every backward)."),
        loss: str = typer.Option("full", "--loss", help="full (transformers: fp32 logits over the vocabulary) or chunked (torchtune/LitGPT)."),
        runtime: str = typer.Option("auto", "--runtime", help="Whisper runtime: ctranslate2 (faster-whisper, default), openai or transformers."),
        window_tokens: Optional[int] = typer.Option(None, "--window-tokens", min=1, help="Whisper batches: tokens per 30-s window (default 224, any language; ~133 for English speech)."),
        cuda_context: Optional[int] = typer.Option(None, "--cuda-context", min=0, help="CUDA context in MiB (default: 1024 for PyTorch, 512 for CTranslate2)."),
        target_seq: Optional[int] = typer.Option(None, "--target-seq", min=1, help="Encoder-decoder training: decoder tokens (T5: --seq; Whisper: 448)."),
        grad_ckpt: bool = typer.Option(False, "--grad-ckpt", help="Gradient checkpointing (recompute activations per layer)."),
        attention: str = typer.Option("sdpa", "--attention", help="sdpa or flash (no s² term) or eager (stores attention scores)."),
        lora_rank: int = typer.Option(16, "--lora-rank", "-r", min=1, help="LoRA rank."),
        lora_targets: str = typer.Option("all-linear", "--lora-targets", help="Comma-separated modules (q_proj,v_proj) or all-linear."),
        master_weights: bool = typer.Option(True, "--master-weights/--no-master-weights", help="16-bit full fine-tuning keeps fp32 master weights (mixed precision)."),
        double_quant: Optional[bool] = typer.Option(None, "--double-quant/--no-double-quant", help="bitsandbytes 4-bit double quantization (default: on for qlora)."),
        group_size: int = typer.Option(128, "--group-size", help="GPTQ/AWQ group size (-1: per channel)."),
        beam: int = typer.Option(1, "--beam", min=1, help="Whisper beam size."),
        overhead: bool = typer.Option(True, "--overhead/--no-overhead", help="Add CUDA context and allocator slack."),
        rule: Optional[str] = typer.Option(None, "--rule", help="seed: print the seed article's rule of thumb beside the estimate."),
        measure: bool = typer.Option(False, "--measure", help="Dry run under FakeTensorMode + MemTracker (CPU, no memory) and compare."),
        gpu: Optional[str] = typer.Option(None, "--gpu", help="Check the fit on a catalog card (T4, L4, A10, RTX 3060/3090/4090/5090, A100 40GB/80GB, H100, H200)."),
        vram_size: Optional[str] = typer.Option(None, "--vram", help="Check the fit on this much memory (24GB, 16GiB)."),
        margin: float = typer.Option(0.10, "--margin", min=0.0, max=0.9, help="Safety margin for the fit check (fraction)."),
        plot: Optional[str] = typer.Option(None, "--plot", help="Write stacked bars of the components to this PNG."),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    ) -> None:
        """Estimate GPU memory to run or train a model, component by component.

        Examples:
          syllabus vram --model llama-2-7b --mode inference --precision bf16 --context 4096 --batch 1
          syllabus vram --model qwen2.5-7b --mode qlora --seq 2048 --batch 2 --grad-ckpt
          syllabus vram --params 7B --mode full --precision fp32 --rule seed
          syllabus vram --config path/to/config.json --mode lora --measure
          syllabus vram --model llama-3.1-8b --mode inference --precision all --plot mem.png
          syllabus vram --model whisper-large-v3 --beam 5 --gpu T4
          syllabus vram --model whisper-large-v3 --runtime transformers --batch 8
          syllabus vram --model llama-3.1-70b --mode full --gpus 8 --shard zero3 --offload optimizer
          syllabus vram --model mt5-base --mode lora --seq 512 --target-seq 128
        """
        from pipeline.cli import emit_json, note, out
        from pipeline.errors import ConfigError
        from pipeline.planner import GiB
        from pipeline.planner import report
        from pipeline.planner.readers import resolve_model

        if rule not in (None, "seed"):
            raise ConfigError(f"--rule takes 'seed', not {rule!r}")
        if mode not in ("inference", "full", "lora", "qlora", "all"):
            raise ConfigError(f"--mode must be inference, full, lora, qlora or all, not {mode!r}")
        arch = resolve_model(model, config, params)
        targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
        base = dict(batch=batch, seq=seq, kv_cache_dtype=kv_cache_dtype, optimizer=optimizer, grad_ckpt=grad_ckpt,
                    attention=attention, lora_rank=lora_rank, lora_targets=targets, master_weights=master_weights,
                    double_quant=double_quant, group_size=group_size, beam=beam, overhead=overhead, gpus=gpus,
                    shard=shard, offload=offload, loss=loss, runtime=runtime, cuda_context_mib=cuda_context,
                    window_tokens=window_tokens, grad_accum=grad_accum,
                    target_seq=target_seq)
        pairs = _estimates(arch, mode, precision, base)
        labels, ests = [p[0] for p in pairs], [p[1] for p in pairs]
        result: dict = {"model": arch.name, "params": arch.params(), "estimates": [e.as_dict() for e in ests]}

        device = None
        if gpu or vram_size:
            from pipeline.planner.hardware import detect

            device = detect(gpu, vram_size)[0]
            budget = device.available_bytes * (1 - margin)
            result["device"] = device.as_dict()
            result["fits"] = {label: e.total_bytes <= budget for label, e in pairs}

        seed = differences = None
        if rule == "seed":
            from pipeline.planner.seed import explain, seed_rule

            if params is None and len(ests) != 1:
                note("--rule seed compares one estimate; using the first")
            e0 = ests[0]
            seed = seed_rule(arch.params(), e0.settings["mode"], labels[0] if mode != "all" else e0.precision)
            differences = explain(seed, e0, _settings_obj(e0))
            seed.differences = differences
            result["seed"] = seed.as_dict()

        meas = None
        if measure:
            from pipeline.planner.measure import dry_run

            if len(ests) != 1:
                raise ConfigError("--measure runs one setting: give one --precision and one --mode")
            if not as_json:
                note("dry run under FakeTensorMode: building the model and running the step on fake tensors …")
            from pipeline.planner.estimator import estimate as _estimate
            from pipeline.planner.measure import measured_settings

            st_m = measured_settings(_settings_obj(ests[0]))  # the estimate of what the dry run runs
            meas, same = dry_run(arch, st_m), _estimate(arch, st_m)
            result["measure"] = dict(meas.as_dict(), estimate_tensor_bytes=same.tensor_bytes,
                                     error=(same.tensor_bytes - meas.peak_bytes) / meas.peak_bytes)

        if plot:
            title = f"{arch.name}: {mode}, {seq} tokens × batch {batch}"
            path = report.plot(ests, labels, plot, title, device.available_bytes if device else None)
            result["plot"] = str(path)

        if as_json:
            emit_json(result)
            return
        if len(ests) == 1:
            out.print(report.estimate_table(ests[0]))
        else:
            what = "modes" if mode == "all" else "precisions"
            out.print(report.comparison_table(ests, labels, f"{arch.name} · {what} · {seq} tokens × batch {batch}"))
        for n in dict.fromkeys(n for e in ests for n in e.notes):
            note(f"note: {n}")
        if device is not None:
            for label, e in pairs:
                verdict = "fits" if result["fits"][label] else "does NOT fit"
                out.print(f"{label}: {e.total_gib:.1f} GiB on {device.name} ({device.available_bytes / GiB:.1f} GiB, "
                          f"{margin:.0%} margin → {device.available_bytes * (1 - margin) / GiB:.1f} GiB): {verdict}",
                          highlight=False)
        if seed is not None:
            out.print(report.seed_table(seed, ests[0], differences))
        if meas is not None:
            out.print(report.measure_table(same, meas))
            for n in meas.notes:
                note(f"note: {n}")
        if plot:
            note(f"plot written to {result['plot']}")

    @app.command()
    def plan(
        gpu: Optional[str] = typer.Option(None, "--gpu", help="Plan for a catalog card instead of this machine (T4, RTX 4090, A100 80GB, ...)."),
        vram_size: Optional[str] = typer.Option(None, "--vram", help="Plan for this much GPU memory (24GB, 16GiB)."),
        context: int = typer.Option(4096, "--context", min=256, help="Tokens the LLM must hold."),
        margin: float = typer.Option(0.10, "--margin", min=0.0, max=0.9, help="Fraction of memory kept free."),
        allow_download: bool = typer.Option(False, "--allow-download", help="Also choose models whose weights are not on this machine."),
        finetune: Optional[str] = typer.Option(None, "--finetune", help="Plan fine-tuning this model (catalog name or config path) instead."),
        gpus: Optional[str] = typer.Option(None, "--gpus", help="With --finetune: GPUs, as 4x80GB or a count of the card found / given."),
        seq: Optional[int] = typer.Option(None, "--seq", min=1, help="With --finetune: training sequence length (default 2048 or the model's)."),
        plot: Optional[str] = typer.Option(None, "--plot", help="With --finetune: stacked bars of the best setups to this PNG."),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    ) -> None:
        """Pick the speech model, embedder and LLM (with precision) that fit this machine, and say why.

        Examples:
          syllabus plan
          syllabus plan --gpu "RTX 4090" --context 8192 --json
          syllabus plan --vram 12GB --allow-download
          syllabus plan --finetune llama-3.1-8b --vram 24GB
          syllabus plan --finetune llama-3.1-70b --gpus 4x80GB --json
        """
        from pipeline.cli import emit_json, out

        if finetune:
            from pipeline.planner import report
            from pipeline.planner.finetune import plan_for
            from pipeline.planner.readers import resolve_model

            fp = plan_for(resolve_model(finetune), gpus, gpu, vram_size, seq=seq, margin=margin)
            result = fp.as_dict()
            if plot:
                result["plot"] = str(report.finetune_plot(fp, plot))
            if as_json:
                emit_json(result)
                return
            out.print(report.finetune_table(fp))
            out.print(report.seed_lines(fp), highlight=False)
            for line in fp.lines:
                out.print(f"• {line}", highlight=False)
            return
        from pipeline.planner import report
        from pipeline.planner.hardware import detect
        from pipeline.planner.plan import make_plan

        devices = detect(gpu, vram_size)
        p = make_plan(devices[0], context=context, margin=margin, allow_download=allow_download)
        if len(devices) > 1:
            p.lines.insert(1, f"{len(devices)} GPUs found; planned for the one with the most free memory "
                              f"(others: {', '.join(d.name for d in devices[1:])})")
        if as_json:
            emit_json(dict(p.as_dict(), devices=[d.as_dict() for d in devices]))
            return
        out.print(report.plan_table(p))
        for line in p.lines:
            out.print(f"• {line}", highlight=False)


def _settings_obj(est):
    from pipeline.planner.estimator import Settings

    return Settings(**est.settings)
