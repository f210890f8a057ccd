"""Training terms of a decoder LLM: LoRA counts, gradients, optimizer state and temporaries, per-layer
activations, logits and loss, bitsandbytes' dequantized copies, checkpoint boundaries. Each returns
bytes (and usually the arithmetic as text); ``training`` assembles them. Symbols as in ``estimator``."""

from __future__ import annotations

from syllabus_common.errors import ConfigError
from pipeline.planner.catalog import DecoderArch
from pipeline.planner.frameworks import adapter_kept, attention_kept
from pipeline.planner.types import OPTIMIZERS, _n

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
    if optimizer == "paged_adamw":  # bitsandbytes PagedAdamW32bit: fp32 moments in unified memory
        return trainable * 8, f"2 moments × {_n(trainable)} × 4 B (paged)", "bitsandbytes PagedAdamW32bit; Dettmers et al. 2023 (QLoRA §3, paged optimizers)"
    if optimizer in ("adamw8bit", "paged_adamw8bit"):
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
                            quantized_base: bool = False, framework: str = "hf",
                            dropout: float = 0.0) -> tuple[float, str]:
    """Bytes per token (and per layer) that one Llama-style layer keeps for backward, plus the s² term
    per sequence folded in per token.

    style: "pure" (params and activations in one dtype of p bytes), "amp" (fp32 params and residual,
    16-bit matmuls under torch.autocast), "lora" (16-bit frozen base, fp32 adapters, autocast).
    Korthikanti et al. 2022 §4.1's method on the HF block: RMSNorm upcasts to fp32 and keeps that copy
    (4h) plus, when its weight trains, the normalised output; q/k/v/o and SDPA keep q, k, v, output
    (p·(2q_dim + 2kv_dim)) and the fp32 log-sum-exp; the SwiGLU MLP keeps gate, SiLU, up and product
    (4pI; only 3 when down_proj is frozen). Under autocast each linear casts its input to 16 bit
    separately and keeps the copy. LoRA keeps a copy of each adapted module's input, the dropout's
    mask and A's output. What differs between transformers + peft and LitGPT (``framework``: the
    fused qkv kept whole, shared dropout) is in ``frameworks.attention_kept`` / ``adapter_kept``.

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
    attn_core, attn_formula = attention_kept(arch, p, framework)
    mlp_mats = 4 if arch.gated_mlp else 2
    if style == "pure":
        norms = n_norms * (4 + p) * h  # fp32 upcast + normalised p-byte copy (one and the same if p == 4)
        inputs = p * h * 2  # shared input of q/k/v and of gate/up
        mlp = mlp_mats * p * I
        per_token = norms + inputs + attn_core + mlp
        formula = f"{n_norms}·(4+{p})h + 2·{p}h + {attn_formula} + {mlp_mats}·{p}I"
    elif style == "amp":
        norms = n_norms * 8 * h  # fp32 residual + fp32 normalised output
        n_casts = sum(arch.input_consumers())
        casts = 2 * h * n_casts  # one 16-bit copy per consuming linear
        mlp = mlp_mats * 2 * I
        per_token = norms + casts + attn_core + mlp
        formula = f"{n_norms}·8h + 2h·{n_casts} casts + {attn_formula} + {mlp_mats}·2I"
    elif style == "lora":
        rank, targets = lora
        targets = resolve_targets(arch, targets)
        shapes = arch.linear_shapes()
        norms = n_norms * 4 * h  # fp32 upcast only: the frozen weight needs no saved output
        mlp = (3 if arch.gated_mlp else 1) * 2 * I
        adapters, adapter_formula = adapter_kept(arch, targets, rank, 2, framework, dropout)
        per_token = norms + attn_core + mlp + adapters
        formula = f"{n_norms}·4h + {attn_formula} + {3 if arch.gated_mlp else 1}·2I + {adapter_formula}"
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


def loss_terms(vocab: int, tokens: int, loss: str, p: int, keep_outputs: bool = True) -> tuple[int, int, str, str]:
    """(kept until backward, backward temporaries, formula, source) of the output layer's logits and
    the cross-entropy loss, over the whole vocabulary V at every position.

    ``full`` (transformers): the model returns the logits and the caller keeps ``outputs`` through
    backward (a hand-written loop does; transformers < 4.45 upcast them to fp32 inside forward, later
    versions return them in 16 bit: counted at 4 B, the safe side; the Trainer's compute_loss drops
    them, ``keep_outputs=False``). ForCausalLMLoss upcasts them
    (``logits.float()``) and ``cross_entropy`` keeps log_softmax's fp32 output for backward (4·bsV).
    Backward of log_softmax holds its grad-out and grad-in at once (2 × 4·bsV) beside both: 16·bsV at
    the moment the loss backward runs. ``chunked`` (torchtune CEWithChunkedOutputLoss, 8 chunks;
    LitGPT chunked_cross_entropy): the 16-bit logit chunks and each chunk's fp32 log-softmax are kept
    ((p + 4)·bsV), the backward temporaries exist for one chunk at a time (8·bsV / 8).
    """
    n = tokens * vocab
    if loss == "chunked":
        return ((p + 4) * n, n, f"({p} + 4) B × {tokens} tokens × {vocab} vocab (+ 8 B × one of 8 chunks in backward)",
                "torchtune CEWithChunkedOutputLoss; LitGPT chunked_cross_entropy")
    held = 4 if keep_outputs else 0
    return ((held + 4) * n, 8 * n, f"({held} B logits + 4 B log-softmax) × {tokens} tokens × {vocab} vocab (+ 8 B grads in backward)",
            "transformers ForCausalLMLoss (logits.float()); torch log_softmax backward")


def optimizer_temp_bytes(optimizer: str, trainable: int, state_bytes: int, largest: int,
                         fused: bool = False) -> tuple[int, str]:
    """Temporaries of one optimizer step, beside weights, gradients and state.

    torch.optim.AdamW with the default foreach implementation (CUDA, ``_multi_tensor_adamw``) builds
    ``exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs)``: one tensor per parameter in the state's
    dtype, for all parameters at once (the PyTorch docs: foreach "uses more peak memory, intermediates
    are a tensorlist"); ``fused=True`` needs none, but the default is counted (safe side).
    bitsandbytes' 8-bit and paged optimizers update in place in one kernel per tensor: none.
    Adafactor (transformers) builds fp32 ``grad**2 + eps`` and the update: 2 × the largest matrix.
    SGD with momentum updates in place.
    """
    if optimizer == "adamw" and not fused:
        return trainable * state_bytes, f"foreach sqrt(exp_avg_sq): {_n(trainable)} × {state_bytes} B"
    if optimizer == "adafactor":
        return 2 * largest * 4, f"2 × largest matrix {_n(largest)} × 4 B"
    return 0, "in place"


def mask_bytes(batch: int, seq: int, p: int, attention: str) -> int:
    """The 4-D attention mask transformers builds once per forward for SDPA/eager when a batch is
    padded (``_prepare_4d_causal_attention_mask_with_cache_position``: b × 1 × s × s in the compute
    dtype) and every layer reads (kept through backward; checkpointing keeps a reference). Batch 1
    needs none (``is_causal``); flash-attention takes the 2-D mask."""
    if attention == "flash" or batch == 1:
        return 0
    return batch * seq * seq * p
