"""``syllabus plan --finetune MODEL``: how to fine-tune a model on the GPUs at hand.

For every method (full fine-tuning in mixed precision, LoRA on a 16-bit base, QLoRA on an NF4 base),
gradient checkpointing on or off, optimizer (AdamW, 8-bit AdamW) and, on several GPUs, sharding (DDP,
ZeRO-2, ZeRO-3/FSDP), the planner finds the largest micro-batch (1-64) that fits each GPU at the
sequence length asked for, with the safety margin. The setups that fit are ranked by the training
throughput they leave, a relative figure built from compute counts:

- a step costs forward + backward ≈ 3 forward passes of matmuls (2 for the backward: Kaplan et al.
  2020 §2.1, "C ≈ 6N" per token); LoRA/QLoRA skip the frozen weights' gradients: ≈ 2 passes → 1.5×;
- gradient checkpointing recomputes the forward: 4 passes instead of 3 → 0.75× (Chen et al. 2016);
- QLoRA dequantizes every weight twice per step (forward, backward): 0.7× LoRA's speed, the ratio
  the QLoRA paper's authors and bitsandbytes report for 4-bit against 16-bit matmuls;
- ZeRO-3/FSDP gather the parameters in forward and backward (1.5× DDP's traffic, ZeRO §7): 0.9×;
  ZeRO-2 0.95×; CPU offload runs the optimizer step on the CPU: 0.5×;
- a micro-batch of b·s tokens keeps the GPU busy as b·s / (b·s + 2048) (matmuls smaller than ~2k
  rows leave tensor cores idle), times the number of GPUs.

These factors order the setups; they are not a time prediction. The setups that do not fit are shown
with what they would need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syllabus_common.errors import ConfigError
from pipeline.planner import GiB
from pipeline.planner.catalog import Arch, DecoderArch
from pipeline.planner.estimator import Estimate, Settings, estimate

BATCHES = (1, 2, 4, 8, 16, 32, 64)
SAFETY_MARGIN = 0.10
SATURATION_TOKENS = 2048


@dataclass
class Setup:
    method: str  # full | lora | qlora
    precision: str
    optimizer: str
    grad_ckpt: bool
    shard: str
    offload: str
    seq: int
    batch: int | None = None  # largest micro-batch that fits; None: not even 1
    estimate: Estimate | None = None  # at that batch (or at batch 1 when nothing fits)
    throughput: float = 0.0
    why_not: str = ""

    @property
    def fits(self) -> bool:
        return self.batch is not None

    def label(self) -> str:
        parts = [self.method, self.precision, self.optimizer, "ckpt" if self.grad_ckpt else "no-ckpt"]
        if self.shard != "none":
            parts.append(self.shard)
        if self.offload != "none":
            parts.append(f"offload-{self.offload}")
        return " · ".join(parts)

    def as_dict(self) -> dict:
        return {"label": self.label(), "method": self.method, "precision": self.precision, "optimizer": self.optimizer,
                "grad_ckpt": self.grad_ckpt, "shard": self.shard, "offload": self.offload, "seq": self.seq,
                "micro_batch": self.batch, "fits": self.fits, "throughput": round(self.throughput, 4),
                "gib_per_gpu": round(self.estimate.total_bytes / GiB, 3) if self.estimate else None,
                "cpu_gib": round(sum(c.bytes for c in self.estimate.cpu_components) / GiB, 3) if self.estimate else None,
                "why_not": self.why_not}


@dataclass
class FinetunePlan:
    model: str
    params: int
    gpus: int
    capacity_bytes: int  # per GPU
    margin: float
    seq: int
    choice: Setup | None
    ranked: list[Setup]  # fitting setups, best first
    runners_up: list[Setup]  # setups that do not fit, smallest shortfall first
    seed: dict = field(default_factory=dict)  # the seed article's rule of thumb (full, LoRA)
    lines: list[str] = field(default_factory=list)
    plot: str | None = None  # the PNG written (usecases.finetune(plot=...))

    @property
    def budget_bytes(self) -> int:
        return int(self.capacity_bytes * (1 - self.margin))

    def as_dict(self) -> dict:
        return {"model": self.model, "params": self.params, "gpus": self.gpus, "capacity_bytes": self.capacity_bytes,
                "budget_gib": round(self.budget_bytes / GiB, 3), "margin": self.margin, "seq": self.seq,
                "choice": self.choice.as_dict() if self.choice else None,
                "ranked": [s.as_dict() for s in self.ranked], "runners_up": [s.as_dict() for s in self.runners_up],
                "seed": self.seed, "explanation": self.lines, **({"plot": self.plot} if self.plot else {})}


def _factor(s: Setup, gpus: int, tokens: int) -> float:
    f = 1.5 if s.method in ("lora", "qlora") else 1.0
    f *= 0.7 if s.method == "qlora" else 1.0
    f *= 0.75 if s.grad_ckpt else 1.0
    f *= {"zero3": 0.9, "fsdp": 0.9, "zero2": 0.95}.get(s.shard, 1.0)
    f *= 0.5 if s.offload != "none" else 1.0
    return f * gpus * tokens / (tokens + SATURATION_TOKENS)


def _setups(arch: Arch, gpus: int, seq: int, bf16: bool) -> list[Setup]:
    half = "bf16" if bf16 else "fp16"
    methods = [("full", half), ("lora", half)]
    if isinstance(arch, DecoderArch):
        methods.append(("qlora", "nf4"))
    shards = ["none"] if gpus == 1 else ["ddp", "zero2", "zero3"]
    out = []
    for method, prec in methods:
        optims = ("adamw", "adamw8bit") if method == "full" else ("adamw",)
        for shard in shards:
            if method != "full" and shard == "zero2":
                continue  # adapters are tiny: ZeRO-2 buys nothing over DDP for LoRA
            offloads = ("none", "optimizer") if method == "full" and shard in ("zero3", "none") else ("none",)
            for optim in optims:
                for offload in offloads:
                    if offload != "none" and optim != "adamw":
                        continue  # DeepSpeed's CPU Adam replaces the optimizer
                    for ckpt in (False, True):
                        out.append(Setup(method, prec, optim, ckpt, shard, offload, seq))
    return out


def _settings(s: Setup, batch: int, gpus: int, overrides: dict) -> Settings:
    kw = dict(mode=s.method, precision=s.precision, batch=batch, seq=s.seq, grad_ckpt=s.grad_ckpt,
              optimizer=s.optimizer, gpus=gpus, shard=s.shard, offload=s.offload, attention="flash")
    kw.update(overrides)
    return Settings(**kw)


def _size(s: Setup, arch: Arch, gpus: int, budget: int, overrides: dict) -> None:
    """Largest micro-batch of ``s`` under ``budget``; the estimate at it (or at batch 1)."""
    for b in BATCHES:
        est = estimate(arch, _settings(s, b, gpus, overrides))
        if est.total_bytes > budget:
            if s.batch is None:
                s.estimate = est
                s.why_not = f"needs {est.total_gib:.1f} GiB per GPU at micro-batch 1, more than the {budget / GiB:.1f} GiB budget"
            return
        s.batch, s.estimate = b, est


def plan_finetune(arch: Arch, capacity_bytes: int, *, gpus: int = 1, seq: int | None = None,
                  margin: float = SAFETY_MARGIN, bf16: bool = True, overrides: dict | None = None) -> FinetunePlan:
    """Rank every fine-tuning setup of ``arch`` that fits ``gpus`` GPUs of ``capacity_bytes`` each."""
    if not 0 <= margin < 1:
        raise ConfigError(f"--margin must be between 0 and 1 (a fraction), not {margin}")
    if gpus < 1:
        raise ConfigError("--gpus must be at least 1")
    # Default length: 2048 for an LLM (or its context), Whisper's decoder labels per 30-s window, the
    # length a T5 was trained at / an embedder reads (max_tokens).
    seq = seq or getattr(arch, "text_ctx", None) or getattr(arch, "max_tokens", None) or \
        min(2048, getattr(arch, "max_context", 2048))
    overrides = dict(overrides or {})
    budget = int(capacity_bytes * (1 - margin))
    setups = _setups(arch, gpus, seq, bf16)
    for s in setups:
        _size(s, arch, gpus, budget, overrides)
        if s.fits:
            s.throughput = _factor(s, gpus, s.batch * seq)
    ranked = sorted((s for s in setups if s.fits), key=lambda s: -s.throughput)
    missing = sorted((s for s in setups if not s.fits), key=lambda s: s.estimate.total_bytes)
    plan = FinetunePlan(arch.name, arch.params(), gpus, capacity_bytes, margin, seq, ranked[0] if ranked else None,
                        ranked, missing, _seed(arch))
    plan.lines = _explain(plan, budget)
    return plan


def parse_gpus(text: str) -> tuple[int, int | None]:
    """'4x80GB' → (4, bytes of 80 GB); '4' → (4, None: the card found or given with --vram/--gpu)."""
    from pipeline.planner.readers import parse_size

    count, _, size = text.lower().replace("×", "x").partition("x")
    if not count.strip().isdigit() or int(count) < 1:
        raise ConfigError(f"--gpus wants a count or COUNTxSIZE such as 4x80GB, not {text!r}")
    return int(count), (parse_size(size) if size.strip() else None)


def plan_for(model: Arch, gpus: str | None, gpu: str | None, vram: str | None, **kw) -> FinetunePlan:
    """The plan for the GPUs a command line names: ``--gpus 4x80GB``, or ``--gpus 4`` with the card found
    here / ``--gpu`` / ``--vram``."""
    from pipeline.planner.hardware import detect

    count, size = parse_gpus(gpus) if gpus else (1, None)
    if size is None:
        device = detect(gpu, vram)[0]
        size, bf16 = device.available_bytes, device.bf16
    else:
        bf16 = True
    return plan_finetune(model, size, gpus=count, bf16=bf16, **kw)


def _seed(arch: Arch) -> dict:
    from pipeline.planner.seed import seed_rule

    return {m: seed_rule(arch.params(), m, "bf16").as_dict() for m in ("full", "lora")}


def _explain(plan: FinetunePlan, budget: int) -> list[str]:
    where = f"{plan.gpus} × {plan.capacity_bytes / GiB:.1f} GiB" if plan.gpus > 1 else f"{plan.capacity_bytes / GiB:.1f} GiB"
    lines = [f"{plan.model} ({plan.params / 1e9:.2f}B) on {where}: budget {budget / GiB:.1f} GiB per GPU "
             f"({plan.margin:.0%} margin), sequences of {plan.seq:,} tokens"]
    c = plan.choice
    if c is None:
        best = plan.runners_up[0] if plan.runners_up else None
        lines.append("nothing fits" + (f": the smallest setup, {best.label()}, {best.why_not}" if best else ""))
        return lines
    lines.append(f"chose {c.label()} at micro-batch {c.batch}: {c.estimate.total_gib:.1f} GiB per GPU "
                 f"(peak at {c.estimate.phase})")
    if c.estimate.cpu_components:
        lines.append(f"CPU RAM for offloaded states: {sum(x.bytes for x in c.estimate.cpu_components) / GiB:.1f} GiB")
    better = [s for s in plan.runners_up if _factor(s, plan.gpus, plan.seq) > c.throughput]
    if better:
        b = better[0]
        lines.append(f"faster but does not fit: {b.label()} — {b.why_not}")
    for method in ("full", "lora", "qlora"):
        fit = next((s for s in plan.ranked if s.method == method), None)
        if fit is None and any(s.method == method for s in plan.runners_up):
            least = next(s for s in plan.runners_up if s.method == method)
            lines.append(f"{method}: no setup fits; least needs {least.estimate.total_gib:.1f} GiB per GPU")
    return lines
