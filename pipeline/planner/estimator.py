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

from syllabus_common.errors import ConfigError
from pipeline.planner import GB, GiB
from pipeline.planner.catalog import Arch, DecoderArch, EncoderArch, WhisperArch
from pipeline.planner.precision import (FLOAT_BYTES, Precision, gguf_tensor_type, gguf_type_bits, linear_bits,
                                        parse_precision)

MODES = ("inference", "full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw8bit", "sgd", "adafactor")
ATTENTION = ("sdpa", "flash", "eager")
ALL_LINEAR = ("all-linear",)  # every linear layer of the blocks (peft's "all-linear", lm_head excluded)

# CUDA context + cuBLAS/cuDNN handles of a PyTorch (or CTranslate2) process: not tensor memory, so
# torch.cuda.memory_allocated never shows it, but nvidia-smi does. 500 MiB is the middle of the
# 300-800 MiB range commonly reported for CUDA 12 with lazy module loading (varies with GPU and
# driver); eval/vram_eval.py checks it against published nvidia-smi figures.
CUDA_CONTEXT_BYTES = 500 * 2**20
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
    optimizer: str = "adamw"
    grad_ckpt: bool = False  # activation recomputation (gradient checkpointing), per layer
    attention: str = "sdpa"  # sdpa / flash: no s² term; eager: the s² scores are stored
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = ALL_LINEAR  # module names, or "all-linear"
    master_weights: bool = True  # 16-bit full fine-tuning keeps fp32 master weights (mixed precision)
    double_quant: bool | None = None  # bitsandbytes 4-bit; None: on for qlora, off otherwise
    group_size: int = 128  # GPTQ / AWQ
    beam: int = 1  # Whisper beam size
    runtime: str = "auto"  # Whisper: ctranslate2 (faster-whisper, the default) or transformers / openai
    encoder_copy: bool = False  # Whisper on CPU in Syllabus: a second CTranslate2 instance for the encoder threads
    overhead: bool = True  # add CUDA context and allocator slack

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.attention not in ATTENTION:
            raise ConfigError(f"unknown attention {self.attention!r}; valid: {', '.join(ATTENTION)}")
        if self.batch < 1 or self.seq < 1 or self.lora_rank < 1 or self.beam < 1:
            raise ConfigError("batch, seq, lora rank and beam must be at least 1")
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
            "notes": self.notes,
        }


def _n(x: float) -> str:
    """Compact number for formulas: 4096, 8.03e9."""
    return f"{x:.3g}" if abs(x) >= 1e5 else f"{x:g}"


# ---------------------------------------------------------------------------------------------
# Weights


def weight_bytes(arch: DecoderArch, prec: Precision) -> tuple[int, str]:
    """Bytes of all weights at a precision, and the formula.

    Float: params × bytes. bitsandbytes (transformers' integration) and GPTQ/AWQ quantize the linear
    layers of the blocks only; embeddings, norms, biases and the output layer stay in 16 bit
    (transformers `get_keys_to_not_convert` keeps lm_head; nn.Embedding is not replaced). GGUF: per
    tensor type from llama.cpp's quantizer rules (precision.gguf_tensor_type), 1-D tensors in F32.
    """
    if prec.kind == "float":
        b = FLOAT_BYTES[prec.name]
        return arch.params() * b, f"{_n(arch.params())} params × {b} B"
    if prec.kind == "gguf":
        if arch.file_weight_bytes and arch.file_precision == prec.name:
            return arch.file_weight_bytes, f"read from the GGUF file's tensor table ({prec.name})"
        return _gguf_weight_bytes(arch, prec.name)
    n_linear = arch.layers * arch.block_linear_params()
    linear = arch.layers * sum(i * o * linear_bits(prec, i, o) / 8 for i, o in arch.linear_shapes().values())
    other = arch.shape_params() - n_linear
    bits = linear * 8 / n_linear
    total = (linear + other * 2) * arch.scale
    return int(total), (f"{_n(n_linear * arch.scale)} linear weights × {bits:.3f} bit + "
                        f"{_n(other * arch.scale)} others (embeddings, norms, head) × 2 B")


_GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
               "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down", "qkv_proj": "attn_qkv",
               "gate_up_proj": "ffn_up"}


def _gguf_weight_bytes(arch: DecoderArch, ftype: str) -> tuple[int, str]:
    """GGUF bytes: Σ over tensors of elements × bits(type)/8, types per llama.cpp (see precision.py)."""
    gqa = arch.heads // arch.kv_heads
    total = 0.0
    for name, (i, o) in arch.linear_shapes().items():
        for layer in range(arch.layers):
            t = gguf_tensor_type(ftype, _GGUF_NAMES[name], layer, arch.layers, i, tied=arch.tied, gqa=gqa)
            total += i * o * gguf_type_bits(t) / 8
    emb_t = gguf_tensor_type(ftype, "token_embd", 0, arch.layers, arch.hidden, tied=arch.tied, gqa=gqa)
    total += arch.embedding_params() * gguf_type_bits(emb_t) / 8
    if not arch.tied:
        out_t = gguf_tensor_type(ftype, "output", 0, arch.layers, arch.hidden, tied=False, gqa=gqa)
        total += arch.head_params() * gguf_type_bits(out_t) / 8
    small = arch.shape_params() - arch.layers * arch.block_linear_params() - arch.embedding_params() - arch.head_params()
    total += small * 4  # norms and biases: F32
    total *= arch.scale
    bits = total * 8 / arch.params()
    return int(total), f"{_n(arch.params())} params at {bits:.3f} bit/weight on average ({ftype} mix, embeddings {emb_t})"


# ---------------------------------------------------------------------------------------------
# Inference


def kv_cache_bytes(arch: DecoderArch, batch: int, context: int, kv_bytes: float) -> tuple[int, str]:
    """KV cache = 2 (K and V) × layers × batch × context × n_kv_heads × head_dim × bytes.

    Pope et al. 2022, "Efficiently Scaling Transformer Inference" §2 (the KV cache per token is
    2·n_layers·d_kv); with grouped-query attention only n_kv_heads heads are cached (Ainslie et al.
    2023, GQA). Sliding-window layers (Gemma 2/3) cache at most the window (Beltagy et al. 2020).
    """
    local = arch.local_layers()
    window = min(context, arch.sliding_window or context)
    tokens = (arch.layers - local) * context + local * window
    total = 2 * batch * tokens * arch.kv_dim * kv_bytes
    layers = f"{arch.layers} layers × {context}" if not local else f"({arch.layers - local} × {context} + {local} × {window})"
    return int(total), f"2 × {layers} tokens × batch {batch} × {arch.kv_heads} kv heads × {arch.hd} × {kv_bytes:g} B"


def prefill_working_set(arch: DecoderArch, batch: int, seq: int, p: int, attention: str) -> tuple[int, str]:
    """Transient memory of one decoder layer while the prompt is processed in one pass (no grad).

    Counted on the HF implementation (the largest of the MLP and attention phases of one layer):
    MLP: residual, normed input, inputs_embeds and layer input (4h) + SiLU(gate), up, product (3I);
    attention: 3h + q, q_rot, output (3·q_dim) + k, v (2·kv_dim); plus RoPE cos/sin (2·head_dim).
    Eager attention also stores the b·heads·s² scores (p), softmax in fp32 (4) and its cast (p)
    (Korthikanti et al. 2022 §4.1's 5as²b term, HF's fp32 softmax); SDPA/flash never materialise them
    (Dao et al. 2022). Chunked prefill (vLLM, llama.cpp) caps s at the chunk size.
    """
    mlp = 3 * arch.intermediate + 4 * arch.hidden
    attn = 3 * arch.hidden + 3 * arch.q_dim + 2 * arch.kv_dim
    per_token = p * max(mlp, attn) + 2 * p * arch.hd
    total = batch * seq * per_token
    formula = f"{batch}×{seq} tokens × ({p} B × max(3I+4h, 3h+3q+2kv) + 2·{p}·head_dim)"
    if attention == "eager":
        total += batch * arch.heads * seq * seq * (2 * p + 4)
        formula += f" + {batch}×{arch.heads} heads × {seq}² × {2 * p + 4} B"
    return int(total), formula


def logits_bytes_inference(arch: DecoderArch, batch: int, p: int) -> tuple[int, str]:
    """generate() computes logits for the last position only (logits_to_keep=1) and copies them to fp32."""
    return batch * arch.vocab * (p + 4), f"{batch} × {arch.vocab} vocab × ({p} + 4) B"


# ---------------------------------------------------------------------------------------------
# Training: states


def resolve_targets(arch: DecoderArch, targets: tuple[str, ...]) -> tuple[str, ...]:
    """LoRA target names → module names of this architecture ("all-linear": all block linears)."""
    if tuple(targets) == ("all-linear",):
        return tuple(arch.linear_shapes())
    return tuple(targets)


def lora_params(arch: DecoderArch, rank: int, targets: tuple[str, ...]) -> int:
    """LoRA adds A (r × in) and B (out × r) per adapted matrix: r·(in + out) parameters
    (Hu et al. 2021, "LoRA", §4.1)."""
    shapes = arch.linear_shapes()
    targets = resolve_targets(arch, targets)
    unknown = [t for t in targets if t not in shapes]
    if unknown:
        raise ConfigError(f"unknown LoRA target(s) {', '.join(unknown)}; valid: {', '.join(shapes)} or all-linear")
    return arch.layers * sum(rank * (shapes[t][0] + shapes[t][1]) for t in targets)


def gradient_bytes(trainable: int, grad_bytes: int) -> tuple[int, str]:
    """One gradient per trainable parameter, in the parameter's dtype (PyTorch autograd accumulates
    .grad in the dtype of the leaf; ZeRO paper, Rajbhandari et al. 2020 §3.1: 2Ψ in fp16)."""
    return trainable * grad_bytes, f"{_n(trainable)} trainable × {grad_bytes} B"


def optimizer_bytes(arch: DecoderArch | None, trainable: int, optimizer: str, state_bytes: int,
                    matrices: list[tuple[int, int]] | None = None) -> tuple[int, str, str]:
    """Optimizer state bytes, formula and source.

    AdamW: two moments per parameter (Loshchilov & Hutter 2019); in fp32 with mixed precision → 8 B
    (Rajbhandari et al. 2020 §3.1, K = 12 including the master copy). 8-bit AdamW: both moments in
    8 bit with one fp32 absmax per 256-value block (Dettmers et al. 2022, "8-bit Optimizers via
    Block-wise Quantization", §2): 2 + 8/256 B. SGD with momentum: one buffer. Adafactor
    (Shazeer & Stern 2018 §3): factored second moment, a row and a column vector per matrix, no first
    moment (β1 = 0, the HF default); vectors keep a full second moment.
    """
    if optimizer == "adamw":
        return trainable * 2 * state_bytes, f"2 moments × {_n(trainable)} × {state_bytes} B", "Loshchilov & Hutter 2019; ZeRO §3.1"
    if optimizer == "adamw8bit":
        return int(trainable * (2 + 8 / 256)), f"{_n(trainable)} × (2 × 1 B + 2 × 4 B/256)", "Dettmers et al. 2022 (8-bit optimizers) §2"
    if optimizer == "sgd":
        return trainable * state_bytes, f"momentum {_n(trainable)} × {state_bytes} B", "torch.optim.SGD momentum_buffer"
    if optimizer == "adafactor":
        matrices = matrices or []
        factored = sum(r + c for r, c in matrices)
        full = trainable - sum(r * c for r, c in matrices)
        return ((factored + full) * state_bytes, f"(Σ rows+cols {_n(factored)} + vectors {_n(full)}) × {state_bytes} B",
                "Shazeer & Stern 2018 §3")
    raise ConfigError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")


def _matrices(arch: DecoderArch, lora: tuple[int, tuple[str, ...]] | None = None) -> list[tuple[int, int]]:
    if lora:
        rank, targets = lora
        targets = resolve_targets(arch, targets)
        shapes = arch.linear_shapes()
        return [m for t in targets for m in ((rank, shapes[t][0]), (shapes[t][1], rank))] * arch.layers
    mats = [(o, i) for (i, o) in arch.linear_shapes().values()] * arch.layers
    mats.append((arch.vocab, arch.hidden))
    if not arch.tied:
        mats.append((arch.vocab, arch.hidden))
    return mats


# ---------------------------------------------------------------------------------------------
# Training: activations


def korthikanti_gpt_layer(s: int, b: int, h: int, a: int, recompute: str = "none") -> int:
    """Korthikanti et al. 2022, eq. (1) and §5: activation bytes of one GPT layer in 16 bit without
    parallelism: sbh(34 + 5as/h); with selective recomputation (the attention core recomputed, as
    flash/SDPA effectively do) 34sbh; with full recomputation 2sbh (the layer input only)."""
    if recompute == "full":
        return 2 * s * b * h
    if recompute == "selective":
        return 34 * s * b * h
    return s * b * h * 34 + 5 * a * s * s * b


def train_layer_activations(arch: DecoderArch, style: str, p: int, attention: str, seq: int,
                            lora: tuple[int, tuple[str, ...]] | None = None,
                            quantized_base: bool = False) -> tuple[float, str]:
    """Bytes per token (and per layer) that one Llama-style layer keeps for backward, plus the s² term
    per sequence folded in per token.

    style: "pure" (params and activations in one dtype of p bytes), "amp" (fp32 params and residual,
    16-bit matmuls under torch.autocast), "lora" (16-bit frozen base, fp32 adapters, autocast).
    Korthikanti et al. 2022 §4.1's method on the HF block: RMSNorm upcasts to fp32 and keeps that copy
    (4h) plus, when its weight trains, the normalised output; q/k/v/o and SDPA keep q, k, v, output
    (p·(2q_dim + 2kv_dim)) and the fp32 log-sum-exp; the SwiGLU MLP keeps gate, SiLU, up and product
    (4pI; only 3 when down_proj is frozen). Under autocast each linear casts its input to 16 bit
    separately and keeps the copy. LoRA keeps a copy of each adapted module's input and A's output.

    ``quantized_base`` (QLoRA): bitsandbytes' MatMul4Bit keeps its 16-bit input for backward whenever
    a gradient flows through it (``ctx.tensors = (A, B)`` in bitsandbytes/autograd/_functions.py),
    although the frozen weight needs no input to pass the gradient on. Per layer that holds the
    distinct inputs of the base linears that nothing else keeps: attention input (h), MLP input (h)
    and the MLP's inner product (I), 2 B each, whichever modules the adapters target. (o_proj's input
    is a view of the attention output, which the attention backward keeps already; the first layer's
    attention input needs no gradient and is not kept: one 2h per token, left in as a margin.)
    """
    h, q, kv, I = arch.hidden, arch.q_dim, arch.kv_dim, arch.intermediate
    n_norms = arch.norms_per_layer
    lse = 4 * arch.heads  # fp32 log-sum-exp per head and token (flash/SDPA backward)
    attn_core = p * (2 * q + 2 * kv) + lse
    mlp_mats = 4 if arch.gated_mlp else 2
    if style == "pure":
        norms = n_norms * (4 + p) * h  # fp32 upcast + normalised p-byte copy (one and the same if p == 4)
        inputs = p * h * 2  # shared input of q/k/v and of gate/up
        mlp = mlp_mats * p * I
        per_token = norms + inputs + attn_core + mlp
        formula = f"{n_norms}·(4+{p})h + 2·{p}h + {p}(2q+2kv) + {mlp_mats}·{p}I"
    elif style == "amp":
        norms = n_norms * 8 * h  # fp32 residual + fp32 normalised output
        n_casts = sum(arch.input_consumers())
        casts = 2 * h * n_casts  # one 16-bit copy per consuming linear
        mlp = mlp_mats * 2 * I
        per_token = norms + casts + attn_core + mlp
        formula = f"{n_norms}·8h + 2h·{n_casts} casts + 2(2q+2kv) + {mlp_mats}·2I"
    elif style == "lora":
        rank, targets = lora
        targets = resolve_targets(arch, targets)
        shapes = arch.linear_shapes()
        norms = n_norms * 4 * h  # fp32 upcast only: the frozen weight needs no saved output
        mlp = (3 if arch.gated_mlp else 1) * 2 * I
        adapters = sum(2 * shapes[t][0] + 2 * rank for t in targets)  # input copy + A output, 16 bit
        per_token = norms + attn_core + mlp + adapters
        formula = f"{n_norms}·4h + 2(2q+2kv) + {3 if arch.gated_mlp else 1}·2I + Σ_targets 2·(in + r)"
        if quantized_base:
            per_token += 2 * (2 * h + I)
            formula += " + 2(2h+I) (4-bit base inputs)"
    else:
        raise ValueError(style)
    if attention == "eager":
        # Stored scores per head and key: the fp32 softmax output (4 B) plus its 16-bit copy for the
        # matmul with V (none in pure fp32); K and V repeated to all heads when kv_heads < heads.
        c = p if style == "pure" else 2  # bytes of the matmul inputs
        s2 = arch.heads * seq * (4 + (2 if c == 2 else 0))
        rep = 2 * c * q if arch.kv_heads < arch.heads else 0
        per_token += s2 + rep - lse
        formula += f" + heads·s·{4 + (2 if c == 2 else 0)} (eager scores)"
    return per_token, formula


def loss_bytes(arch: DecoderArch, tokens: int) -> tuple[int, int]:
    """HF ForCausalLMLoss: logits → .float() → cross_entropy. log_softmax keeps its fp32 output
    (4·bsV, an activation); its backward holds grad-out and grad-in (2 × 4·bsV) at once."""
    return 4 * tokens * arch.vocab, 8 * tokens * arch.vocab


# ---------------------------------------------------------------------------------------------
# Runtime overhead


def runtime_components(components: list[Component], enabled: bool = True) -> list[Component]:
    """CUDA context and allocator slack for a list of tensor components (nothing on CPU)."""
    if not enabled:
        return []
    transient = sum(c.bytes for c in components if c.category in ("Activation", "Temp"))
    return [
        Component("cuda_context", "CUDA context + libraries", CUDA_CONTEXT_BYTES, "Runtime",
                  "500 MiB", "not tensor memory; CUDA 12 lazy loading, typical 300–800 MiB (see eval/)"),
        Component("allocator", "allocator slack", int(transient * ALLOCATOR_SLACK), "Runtime",
                  f"{ALLOCATOR_SLACK:.0%} of activations and temporaries", "PyTorch caching allocator (reserved > allocated)"),
    ]


# ---------------------------------------------------------------------------------------------
# Whole estimates


def estimate(arch: Arch, settings: Settings) -> Estimate:
    """The peak memory of running ``arch`` as ``settings`` says, component by component."""
    if isinstance(arch, WhisperArch):
        from pipeline.planner.others import estimate_whisper

        return estimate_whisper(arch, settings)
    if isinstance(arch, EncoderArch):
        from pipeline.planner.others import estimate_embedder

        return estimate_embedder(arch, settings)
    if settings.mode == "inference":
        est = _estimate_inference(arch, settings)
    else:
        from pipeline.planner.training import estimate_training

        est = estimate_training(arch, settings)
    est.components += runtime_components(est.components, settings.overhead)
    return est


def _estimate_inference(arch: DecoderArch, st: Settings) -> Estimate:
    prec = st.prec()
    p = prec.compute_bytes
    if prec.kind == "gguf":
        p = 4 if prec.name == "F32" else 2
    kv_b = {"fp8": 1, "int8": 1, "q8_0": 34 / 32, "q4_0": 18 / 32, "fp16": 2, "bf16": 2, "fp32": 4}.get(
        (st.kv_cache_dtype or "").lower(), p)
    comps = []
    wb, wf = weight_bytes(arch, prec)
    comps.append(Component("weights", f"weights ({prec.label})", wb, "Parameter", wf, _weights_source(prec)))
    kb, kf = kv_cache_bytes(arch, st.batch, st.seq, kv_b)
    comps.append(Component("kv_cache", "KV cache", kb, "Activation", kf, "Pope et al. 2022 §2; GQA: Ainslie et al. 2023"))
    ab, af = prefill_working_set(arch, st.batch, st.seq, p, st.attention)
    comps.append(Component("activations", "prefill working set", ab, "Activation", af,
                           "Korthikanti et al. 2022 §4.1 method on the HF layer; Dao et al. 2022 (no s² with SDPA/flash)"))
    lb, lf = logits_bytes_inference(arch, st.batch, p)
    comps.append(Component("logits", "logits (last token)", lb, "Activation", lf, "transformers generate(): logits_to_keep=1"))
    notes = []
    if st.seq > arch.max_context:
        notes.append(f"context {st.seq} is beyond the model's {arch.max_context} positions")
    if prec.kind == "gguf":
        notes.append("GGUF figures are for llama.cpp-style runtimes; transformers (gguf_file=) dequantizes to 16/32 bit")
    if prec.kind == "bnb":
        notes.append("bitsandbytes dequantizes each layer's weights to 16 bit per call (transient, one matrix)")
    return Estimate(arch.name, arch.params(), asdict(st), prec.label, comps, "prefill (last layer)", notes)


def _weights_source(prec: Precision) -> str:
    return {"float": "params × dtype bytes", "bnb": "Dettmers et al. 2022 (LLM.int8) / 2023 (QLoRA §3)",
            "gptq": "Frantar et al. 2023; AutoGPTQ packing", "awq": "Lin et al. 2024; AutoAWQ GEMM packing",
            "gguf": "ggml block sizes (gguf GGML_QUANT_SIZES); llama.cpp llama-quant.cpp"}[prec.kind]

