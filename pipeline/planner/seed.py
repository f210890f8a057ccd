"""The seed article's rules of thumb (``--rule seed``), reproduced exactly, and why the precise
estimate differs.

The seed's figures (DESIGN.md, "Memory"): 1B parameters ≈ 4 GB in FP32, FP16/BF16 half of that,
INT8 1 byte per parameter; full training in FP32 = 4X weights + 4X gradients + 8X AdamW = 16X, in
FP16/BF16 = 2X + 2X + 8X = 12X, plus activations; full fine-tuning of 7B ≈ 100–140 GB, of 70B > 1 TB;
LoRA of 7B ≈ 16–24 GB, of 70B ≈ 140–200 GB. The article works in decimal GB (1B × 4 B = 4 GB).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.planner import GB

SEED_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
SEED_TRAIN_X = {"fp32": 16, "fp16": 12, "bf16": 12}
# Anchors the article states directly: (params in billions) → (low GB, high GB); None: unbounded above.
SEED_FULL_FT = {7: (100.0, 140.0), 70: (1000.0, None)}
SEED_LORA = {7: (16.0, 24.0), 70: (140.0, 200.0)}


@dataclass
class SeedFigure:
    low_gb: float | None
    high_gb: float | None
    rule: str  # what the article says, with this model's numbers
    applies: bool = True  # False: the article has no rule for this case
    differences: list[str] = field(default_factory=list)

    def text(self) -> str:
        if not self.applies:
            return "—"
        if self.high_gb is None:
            return f"> {self.low_gb:,.0f} GB"
        if self.low_gb == self.high_gb:
            return f"{self.low_gb:,.1f} GB"
        return f"{self.low_gb:,.0f}–{self.high_gb:,.0f} GB"

    def as_dict(self) -> dict:
        return {"low_gb": self.low_gb, "high_gb": self.high_gb, "rule": self.rule, "applies": self.applies,
                "text": self.text(), "differences": self.differences}


def _anchor(params_b: float, table: dict) -> tuple[float | None, float | None, str]:
    """The article's figure for 7B or 70B; other sizes scale the nearest anchor per parameter."""
    for size, (lo, hi) in table.items():
        if abs(params_b - size) / size < 0.15:
            return lo, hi, f"the article's figure for {size}B"
    size = min(table, key=lambda s: abs(params_b - s) / s)
    lo, hi = table[size]
    k = params_b / size
    return lo * k, (hi * k if hi is not None else None), f"scaled from the article's {size}B figure ({k:.2f}×)"


def seed_rule(params: int, mode: str, precision: str) -> SeedFigure:
    """What the seed article would say for this many parameters, mode and precision."""
    p = precision.lower()
    billions = params / 1e9
    if mode == "inference":
        if p not in SEED_BYTES:
            return SeedFigure(None, None, f"the article gives no rule for {precision}", applies=False)
        gb = params * SEED_BYTES[p] / GB
        return SeedFigure(gb, gb, f"{billions:.2f}B × {SEED_BYTES[p]} B/param (1B ≈ 4 GB in FP32, 16 bit half, INT8 1 B)")
    if mode == "full":
        if p not in SEED_TRAIN_X:
            return SeedFigure(None, None, f"the article gives no training rule for {precision}", applies=False)
        x = SEED_TRAIN_X[p]
        gb = params * x / GB
        lo, hi, how = _anchor(billions, SEED_FULL_FT)
        parts = "4X + 4X + 8X" if x == 16 else "2X + 2X + 8X"
        rule = f"{x}X = {parts}: {billions:.2f}B × {x} B = {gb:,.0f} GB + activations; {how}: {_range(lo, hi)}"
        return SeedFigure(gb, max(gb, hi) if hi is not None else None, rule)
    if mode == "lora":
        lo, hi, how = _anchor(billions, SEED_LORA)
        return SeedFigure(lo, hi, f"LoRA: {how}: {_range(lo, hi)}")
    return SeedFigure(None, None, "the article gives no QLoRA figure", applies=False)


def _range(lo, hi) -> str:
    return f"> {lo:,.0f} GB" if hi is None else f"{lo:,.0f}–{hi:,.0f} GB"


def explain(seed: SeedFigure, est, settings) -> list[str]:
    """Where and why the precise estimate differs from the seed's figure (one sentence each)."""
    out: list[str] = []
    c = {comp.key: comp.bytes for comp in est.components}
    gb = lambda b: f"{b / GB:,.1f} GB"  # noqa: E731
    total = est.total_bytes / GB
    if seed.applies and seed.low_gb is not None:
        lo, hi = seed.low_gb, seed.high_gb
        if hi is None:
            where = "above" if total > lo else "below"
            out.append(f"precise total {total:,.1f} GB is {where} the seed's > {lo:,.0f} GB")
        elif lo <= total <= hi:
            out.append(f"precise total {total:,.1f} GB is inside the seed's {seed.text()}")
        else:
            ref = hi if total > hi else lo
            out.append(f"precise total {total:,.1f} GB is {abs(total - ref) / ref:.0%} {'above' if total > hi else 'below'} the seed's {seed.text()}")
    mode = settings.mode
    if mode == "inference":
        if c.get("kv_cache"):
            out.append(f"the seed counts weights only; the KV cache at {settings.seq} tokens × batch {settings.batch} adds {gb(c['kv_cache'])}")
        if c.get("activations"):
            out.append(f"processing the prompt in one pass needs a working set of {gb(c['activations'])}")
    elif mode == "full":
        if "master" in est.components[0].label:
            out.append("mixed precision keeps an fp32 master copy and fp32 gradients: 16 B/param, not the seed's 12X "
                       "(Micikevicius et al. 2018; ZeRO §3.1)")
        act = c.get("activations", 0) + c.get("loss", 0) + c.get("weight_casts", 0)
        if act:
            out.append(f"activations, which the seed leaves open, are {gb(act)} at {settings.seq} tokens × batch {settings.batch}")
        if est.phase.startswith("end"):
            out.append("at this sequence length the peak is at the end of backward, when all gradients exist and the "
                       "activations are freed: the two are not simply added")
    elif mode in ("lora", "qlora"):
        out.append(f"base weights {gb(c.get('weights', 0))}; adapters, their gradients and optimizer state "
                   f"{gb(c.get('adapters', 0) + c.get('optimizer', 0) + c.get('gradients', 0))}; activations "
                   f"{gb(c.get('activations', 0) + c.get('loss', 0))}")
        if mode == "qlora":
            out.append("QLoRA: NF4 is 4 bits plus quantization constants (0.127 bit with double quantization, 0.5 without; QLoRA §3)")
    overhead = c.get("cuda_context", 0) + c.get("allocator", 0)
    if overhead:
        out.append(f"runtime overhead (CUDA context, allocator) adds {gb(overhead)}; the seed has none")
    return out
