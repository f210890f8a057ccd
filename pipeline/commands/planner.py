"""`syllabus vram` (memory estimate, seed rule, dry-run measurement) and `syllabus plan` (what fits here)."""

from __future__ import annotations

from typing import Optional

import typer


def _render_vram(r, seq: int, batch: int) -> None:
    from pipeline.planner import GiB, report
    from pipeline.ui import note, out

    ests = r.estimates
    if len(ests) == 1:
        out.print(report.estimate_table(ests[0]))
    else:
        what = "modes" if r.mode == "all" else "precisions"
        out.print(report.comparison_table(ests, r.labels, f"{r.model} · {what} · {seq} tokens × batch {batch}"))
    for n in dict.fromkeys(n for e in ests for n in e.notes):
        note(f"note: {n}")
    if r.device is not None:
        for label, e in zip(r.labels, ests):
            verdict = "fits" if r.fits[label] else "does NOT fit"
            out.print(f"{label}: {e.total_gib:.1f} GiB on {r.device.name} ({r.device.available_bytes / GiB:.1f} GiB, "
                      f"{r.margin:.0%} margin → {r.budget_bytes / GiB:.1f} GiB): {verdict}", highlight=False)
    if r.seed is not None:
        out.print(report.seed_table(r.seed, ests[0], r.seed.differences))
    if r.measurement is not None:
        out.print(report.measure_table(ests[0], r.measurement))
        for n in r.measurement.notes:
            note(f"note: {n}")
    if r.plot:
        note(f"plot written to {r.plot}")


def vram(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Catalog name (llama-3.1-8b, qwen2.5-7b, whisper-base, ...) or a path."),
    config: Optional[str] = typer.Option(None, "--config", help="A model's config.json, HF model folder or .gguf file."),
    params: Optional[str] = typer.Option(None, "--params", help="Just a parameter count (7B, 135M): a Llama-shaped stand-in."),
    mode: str = typer.Option("inference", "--mode", help="inference, full, lora, qlora, or all (compare modes)."),
    precision: Optional[str] = typer.Option(None, "--precision", "-p", help="fp32, bf16, fp16, int8, nf4, fp4, gptq-int4, awq-int4, a GGUF type (Q4_K_M...), or all. Default: bf16 (nf4 for qlora)."),
    seq: int = typer.Option(2048, "--context", "--seq", min=1, help="Tokens: the context (inference) or sequence length (training)."),
    batch: int = typer.Option(1, "--batch", "-b", min=1, help="Sequences at once."),
    kv_cache_dtype: Optional[str] = typer.Option(None, "--kv-cache-dtype", help="KV cache dtype: fp16, bf16, fp32, fp8, int8, q8_0, q4_0 (default: compute dtype)."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw, adamw8bit, sgd (momentum), adafactor."),
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
    """
    from pipeline.api import estimate
    from pipeline.ui import emit_json, note

    def dry_run_note() -> None:
        if not as_json:
            note("dry run under FakeTensorMode: building the model and running the step on fake tensors …")

    report = estimate(model=model, config=config, params=params, mode=mode, precision=precision, seq=seq, batch=batch,
                      kv_cache_dtype=kv_cache_dtype, optimizer=optimizer, grad_ckpt=grad_ckpt, attention=attention,
                      lora_rank=lora_rank, lora_targets=lora_targets, master_weights=master_weights,
                      double_quant=double_quant, group_size=group_size, beam=beam, overhead=overhead, gpu=gpu,
                      vram=vram_size, margin=margin, rule=rule, measure=measure, plot=plot, on_measure=dry_run_note)
    for n in report.notes:
        note(n)
    if as_json:
        emit_json(report.as_dict())
    else:
        _render_vram(report, seq, batch)


def plan(
    gpu: Optional[str] = typer.Option(None, "--gpu", help="Plan for a catalog card instead of this machine (T4, RTX 4090, A100 80GB, ...)."),
    vram_size: Optional[str] = typer.Option(None, "--vram", help="Plan for this much GPU memory (24GB, 16GiB)."),
    context: int = typer.Option(4096, "--context", min=256, help="Tokens the LLM must hold."),
    margin: float = typer.Option(0.10, "--margin", min=0.0, max=0.9, help="Fraction of memory kept free."),
    allow_download: bool = typer.Option(False, "--allow-download", help="Also choose models whose weights are not on this machine."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Pick the speech model, embedder and LLM (with precision) that fit this machine, and say why.

    Examples:
      syllabus plan
      syllabus plan --gpu "RTX 4090" --context 8192 --json
      syllabus plan --vram 12GB --allow-download
    """
    from pipeline.planner import report
    from pipeline.api import plan as plan_machine
    from pipeline.ui import emit_json, out

    result = plan_machine(gpu=gpu, vram=vram_size, context=context, margin=margin, allow_download=allow_download)
    if as_json:
        emit_json(result.as_dict())
        return
    out.print(report.plan_table(result.plan))
    for line in result.plan.lines:
        out.print(f"• {line}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(vram)
    app.command()(plan)
