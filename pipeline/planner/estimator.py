"""The analytic memory estimator: one function per component, each citing where its formula comes from.

Units: bytes everywhere; b = batch, s = tokens per sequence, h = hidden size, I = MLP width,
V = vocabulary, L = layers, p = bytes per activation element (2 in 16-bit compute, 4 in fp32).

The training and inference formulas count the tensors that the Hugging Face transformers
implementation (the runtime this project uses) keeps alive, following the method of Korthikanti et
al. 2022, "Reducing Activation Recomputation in Large Transformer Models" (arXiv:2205.05198), §4.1:
per operation, the inputs its backward needs. Their GPT layer gives sbh(34 + 5as/h) bytes in 16 bit
(``korthikanti_gpt_layer``); the Llama-style layer (RMSNorm computed in fp32, SwiGLU MLP, grouped-query
attention, no dropout) gives the terms in ``train_layer_activations``. The dry run (``measure.py``)
checks them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipeline.errors import ConfigError
from pipeline.planner import GB, GiB
from pipeline.planner.catalog import Arch, EncDecArch, EncoderArch, WhisperArch
from pipeline.planner.inference import (estimate_inference, kv_cache_bytes, logits_bytes_inference,  # noqa: F401
                                        prefill_working_set, weight_bytes)
from pipeline.planner.precision import Precision, parse_precision
from pipeline.planner.terms import (OPTIMIZERS, korthikanti_gpt_layer, lora_params, optimizer_bytes,  # noqa: F401
                                    resolve_targets, train_layer_activations)

MODES = ("inference", "full", "lora", "qlora")
ATTENTION = ("sdpa", "flash", "eager")
ALL_LINEAR = ("all-linear",)  # every linear layer of the blocks (peft's "all-linear", lm_head excluded)
SHARDING = ("none", "ddp", "zero1", "zero2", "zero3", "fsdp")  # fsdp: FULL_SHARD, i.e. ZeRO-3
OFFLOAD = ("none", "optimizer", "params")  # params: ZeRO-3 offload_param / FSDP CPUOffload (states too)
LOSSES = ("full", "chunked")  # transformers' full-vocabulary fp32 loss; chunked CE (torchtune, LitGPT)
RUNTIMES = ("auto", "ctranslate2", "openai", "transformers")  # Whisper; auto: ctranslate2 (faster-whisper)

# CUDA context + module images + cuBLAS/cuDNN workspaces: not tensor memory, so
# torch.cuda.memory_allocated never shows it, but nvidia-smi does. With lazy module loading (CUDA >=
# 11.7, PyTorch's default) the bare context is 300-400 MiB (pytorch/pytorch#107667, #109888) and grows
# as a run loads kernels (attention, bitsandbytes, cuBLASLt workspaces); before CUDA 11.7 every kernel
# was loaded at start, "> 1000 MB" (#107667), 1105 MiB left after empty_cache in #60150. Published
# nvidia-smi figures for small models imply 1.0-1.4 GiB in total. Default: 1.0 GiB for a PyTorch
# process, the low end, the fit check's 10% margin covering the rest on cards of 8 GB and up;
# ``--cuda-context MIB`` sets it (1400 for eager loading). CTranslate2 (faster-whisper) loads cuBLAS but
# none of PyTorch's kernels: 0.5 GiB, which its published nvidia-smi rows in eval/vram_published.yaml
# bear out.
CUDA_CONTEXT_MIB = {"torch": 1024, "ctranslate2": 512}
CT2_MAX_CACHED = 200 * 2**20  # CTranslate2's cub caching allocator keeps at most this much cached
# The caching allocator rounds blocks up (512 B, 2 MiB segments) and keeps freed blocks cached, so
# reserved memory exceeds the allocated peak (PyTorch "CUDA semantics", memory management). Weights and
# optimizer state are allocated once and pack tightly; the slack comes from the short-lived tensors
# (activations, temporaries): 10% of those. A heuristic, checked in eval/.
ALLOCATOR_SLACK = 0.10


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
                                   ("loss", self.loss, LOSSES), ("runtime", self.runtime, RUNTIMES)):
            if value not in valid:
                raise ConfigError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
        if min(self.batch, self.seq, self.lora_rank, self.beam, self.gpus, self.grad_accum) < 1:
            raise ConfigError("batch, seq, lora rank, beam, gpus and grad-accum must be at least 1")
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


# ---------------------------------------------------------------------------------------------
# Runtime overhead


def cuda_context_bytes(st: Settings, runtime: str = "torch") -> int:
    """The CUDA context term: ``--cuda-context`` when given, else the runtime's default."""
    mib = st.cuda_context_mib if st.cuda_context_mib is not None else CUDA_CONTEXT_MIB[runtime]
    return int(mib) * 2**20


def runtime_components(components: list[Component], st: Settings, runtime: str = "torch") -> list[Component]:
    """CUDA context and allocator slack for a list of tensor components (nothing when overhead is off)."""
    if not st.overhead:
        return []
    transient = sum(c.bytes for c in components if c.category in ("Activation", "Temp"))
    # Fragmentation at large activations: the caching allocator serves each large tensor from one
    # contiguous segment and splits cached segments for smaller requests; when the freed memory is
    # scattered it cannot form a segment the size of the largest tensor (at long context the fp32
    # log-softmax, 4·b·s·V, half the "loss" component) and the next one OOMs with memory "free".
    # The slack is at least one such block (PyTorch CUDA semantics, "optimizing memory usage").
    largest = max((c.bytes // 2 for c in components if c.key == "loss"), default=0)
    slack = max(int(transient * ALLOCATOR_SLACK), largest)
    how = (f"max({ALLOCATOR_SLACK:.0%} of activations and temporaries, largest tensor {_n(largest)} B)",
           "PyTorch caching allocator (reserved > allocated; fragmentation)")
    if runtime == "ctranslate2":
        # CTranslate2's CUDA allocator is cub's CachingDeviceAllocator (src/cuda/allocator.cc: bin
        # growth 4, bins up to 4^12 = 16 MiB, max_cached_bytes 200 MiB): blocks above 16 MiB are
        # freed at once, smaller ones stay cached up to 200 MiB.
        slack = min(CT2_MAX_CACHED, transient)
        how = ("cached blocks, at most max_cached_bytes = 200 MiB", "CTranslate2 src/cuda/allocator.cc (cub caching allocator)")
    ctx = cuda_context_bytes(st, runtime)
    given = st.cuda_context_mib is not None
    return [
        Component("cuda_context", "CUDA context + libraries", ctx, "Runtime",
                  f"{ctx / 2**20:.0f} MiB ({'--cuda-context' if given else runtime + ' default'})",
                  "not tensor memory; published nvidia-smi figures 1.0–1.4 GiB for PyTorch (see estimator.CUDA_CONTEXT_MIB)"),
        Component("allocator", "allocator slack", slack, "Runtime", *how),
    ]


# ---------------------------------------------------------------------------------------------
# Whole estimates


def estimate(arch: Arch, settings: Settings) -> Estimate:
    """The peak memory of running ``arch`` as ``settings`` says, component by component (per GPU)."""
    if isinstance(arch, WhisperArch):
        from pipeline.planner.whisper import estimate_whisper

        return estimate_whisper(arch, settings)
    if isinstance(arch, (EncoderArch, EncDecArch)):
        from pipeline.planner.others import estimate_encoder

        est = estimate_encoder(arch, settings)
    elif settings.mode == "inference":
        est = estimate_inference(arch, settings)
    else:
        from pipeline.planner.training import estimate_training

        est = estimate_training(arch, settings)
    est.components += runtime_components(est.components, settings)
    return est


def fits(est: Estimate, capacity_bytes: int, margin: float) -> bool:
    """Whether the estimate plus a safety margin (fraction of capacity) fits."""
    return est.total_bytes <= capacity_bytes * (1 - margin)
