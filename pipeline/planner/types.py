"""The estimator's vocabulary: the settings an estimate depends on (besides the architecture), the
components it is made of, and the estimate itself. Every estimating module imports these from here;
``estimator.estimate`` dispatches to them. Units and symbols as in ``estimator``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from syllabus_common.errors import ConfigError
from pipeline.planner import GB, GiB
from pipeline.planner.precision import Precision, parse_precision

MODES = ("inference", "full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw8bit", "paged_adamw", "paged_adamw8bit", "sgd", "adafactor")
ATTENTION = ("sdpa", "flash", "eager")
ALL_LINEAR = ("all-linear",)  # every linear layer of the blocks (peft's "all-linear", lm_head excluded)
SHARDING = ("none", "ddp", "zero1", "zero2", "zero3", "fsdp")  # fsdp: FULL_SHARD, i.e. ZeRO-3
OFFLOAD = ("none", "optimizer", "params")  # params: ZeRO-3 offload_param / FSDP CPUOffload (states too)
LOSSES = ("full", "chunked")  # transformers' full-vocabulary fp32 loss; chunked CE (torchtune, LitGPT)
RUNTIMES = ("auto", "ctranslate2", "openai", "transformers")  # Whisper; auto: ctranslate2 (faster-whisper)
FRAMEWORKS = ("hf", "litgpt")  # decoder training: transformers + peft (default) or LitGPT (see frameworks.py)


@dataclass
class Settings:
    """Everything that changes the estimate besides the architecture."""

    mode: str = "inference"  # inference | full | lora | qlora
    precision: str = "bf16"  # weights; see precision.parse_precision
    batch: int = 1
    seq: int = 2048  # context (inference) or sequence length (training), tokens
    kv_cache_dtype: str | None = None  # None: the compute dtype; fp8 / int8 caches: "fp8"
    optimizer: str = "adamw"  # adamw, adamw8bit, paged_adamw, paged_adamw8bit, sgd, adafactor
    grad_ckpt: bool = False  # activation recomputation (gradient checkpointing), per layer
    attention: str = "sdpa"  # sdpa / flash: no s² term; eager: the s² scores are stored
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = ALL_LINEAR  # module names, or "all-linear"
    lora_dropout: float = 0.05  # > 0: each dropout keeps a 1-byte mask (peft default 0.0; recipes 0.05-0.1)
    framework: str = "hf"  # decoder training: hf (transformers + peft + bitsandbytes) | litgpt
    master_weights: bool = True  # 16-bit full fine-tuning keeps fp32 master weights (mixed precision)
    double_quant: bool | None = None  # bitsandbytes 4-bit; None: on for qlora, off otherwise
    group_size: int = 128  # GPTQ / AWQ
    beam: int = 1  # Whisper beam size
    runtime: str = "auto"  # Whisper: ctranslate2 (faster-whisper, the default) or transformers / openai
    window_tokens: int | None = None  # Whisper: tokens one 30-s window decodes to (None: 224, any language)
    encoder_copy: bool = False  # Whisper on CPU in Syllabus: a second CTranslate2 instance for the encoder threads
    overhead: bool = True  # add CUDA context and allocator slack
    cuda_context_mib: int | None = None  # None: CUDA_CONTEXT_MIB for the runtime
    gpus: int = 1  # data-parallel GPUs; with shard zero*/fsdp the states are split among them
    shard: str = "none"  # none | ddp | zero1 | zero2 | zero3 | fsdp
    offload: str = "none"  # none | optimizer | params (to CPU RAM)
    loss: str = "full"  # full (transformers: fp32 over the vocabulary) | chunked
    grad_accum: int = 1  # micro-batches per optimizer step: above 1, .grad lives through every backward
    fused_optimizer: bool = False  # torch AdamW(fused=True): no foreach temporaries (default foreach counted)
    keep_outputs: bool = True  # the training loop keeps `outputs` (logits) through backward; Trainer does not
    kbit_prep: bool | None = None  # QLoRA: peft.prepare_model_for_kbit_training upcasts unquantized weights to fp32 (None: on for qlora)
    target_seq: int | None = None  # encoder-decoder training: decoder tokens (None: T5 seq, Whisper 448)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.attention not in ATTENTION:
            raise ConfigError(f"unknown attention {self.attention!r}; valid: {', '.join(ATTENTION)}")
        for name, value, valid in (("shard", self.shard, SHARDING), ("offload", self.offload, OFFLOAD),
                                   ("loss", self.loss, LOSSES), ("runtime", self.runtime, RUNTIMES),
                                   ("framework", self.framework, FRAMEWORKS)):
            if value not in valid:
                raise ConfigError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
        if min(self.batch, self.seq, self.lora_rank, self.beam, self.gpus, self.grad_accum) < 1:
            raise ConfigError("batch, seq, lora rank, beam, gpus and grad-accum must be at least 1")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora dropout must be in [0, 1), not {self.lora_dropout}")
        if self.mode == "inference" and (self.gpus > 1 or self.offload != "none"):
            raise ConfigError("--gpus/--shard/--offload describe training; inference estimates are for one GPU")
        if self.offload == "params" and self.shard not in ("zero3", "fsdp"):
            raise ConfigError("--offload params needs --shard zero3 or fsdp (parameter offload is ZeRO-3 / FSDP)")
        self.lora_targets = tuple(self.lora_targets)

    def prec(self) -> Precision:
        return parse_precision(self.precision, double_quant=self.double_quant, group_size=self.group_size,
                               mode=self.mode)


@dataclass
class Component:
    key: str  # weights, kv_cache, activations, ...
    label: str
    bytes: int  # at the peak
    category: str  # Parameter | Gradient | Optstate | Activation | Temp | Runtime (MemTracker's names)
    formula: str  # the arithmetic with this model's numbers
    source: str  # where the formula comes from

    @property
    def gib(self) -> float:
        return self.bytes / GiB


@dataclass
class Estimate:
    model: str
    params: int
    settings: dict
    precision: str
    components: list[Component]
    phase: str  # when the peak happens
    notes: list[str] = field(default_factory=list)
    cpu_components: list[Component] = field(default_factory=list)  # offloaded to CPU RAM (not in the total)

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.components)

    @property
    def tensor_bytes(self) -> int:
        """What torch.cuda.max_memory_allocated would show: everything but the runtime overhead."""
        return sum(c.bytes for c in self.components if c.category != "Runtime")

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GiB

    def get(self, key: str) -> int:
        return sum(c.bytes for c in self.components if c.key == key)

    def by_category(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.components:
            out[c.category] = out.get(c.category, 0) + c.bytes
        return out

    def as_dict(self) -> dict:
        return {
            "model": self.model, "params": self.params, "precision": self.precision, "settings": self.settings,
            "phase": self.phase, "total_bytes": self.total_bytes, "total_gib": round(self.total_bytes / GiB, 3),
            "total_gb": round(self.total_bytes / GB, 3), "tensor_bytes": self.tensor_bytes,
            "components": [dict(asdict(c), gib=round(c.gib, 4), gb=round(c.bytes / GB, 4)) for c in self.components],
            "notes": self.notes, "cpu_bytes": sum(c.bytes for c in self.cpu_components),
            "cpu_components": [dict(asdict(c), gib=round(c.gib, 4)) for c in self.cpu_components],
        }


def _n(x: float) -> str:
    """Compact number for formulas: 4096, 8.03e9."""
    return f"{x:.3g}" if abs(x) >= 1e5 else f"{x:g}"

