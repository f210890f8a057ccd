"""Training estimates for the models that are not decoder LLMs: Whisper (speech encoder-decoder), T5 /
mT5 (text encoder-decoder) and BERT-style encoders (embedders), full fine-tuning or LoRA.

Each model is described as stacks of GPT-like layers (pre- or post-LN attention + MLP). One layer
keeps sbh·34 bytes in 16 bit for backward (Korthikanti et al. 2022, eq. 1: attention block 11sbh,
MLP 19sbh, two layer norms 4sbh, dropout masks included) plus 5as²b when the attention scores are
stored (eager attention; none with SDPA/flash, Dao et al. 2022). A decoder layer adds a
cross-attention block (11sbh) and keeps the K/V projections of the encoder output (2 × 2·T·b·h).
Under autocast with fp32 master weights the layer norms run in fp32: 8 more bytes per token and
hidden unit (two norms × 4 B input copies). The loss is the decoder's cross-entropy over the
vocabulary (``terms.loss_terms``); an encoder trained as an embedder has a contrastive loss over the
batch (negligible). States (weights, gradients, AdamW) as for the decoders (``training``), sharded by
``sharding``.
"""

from __future__ import annotations

from dataclasses import dataclass

from syllabus_common.errors import ConfigError
from pipeline.planner.catalog import EncDecArch, EncoderArch, WhisperArch
from pipeline.planner.types import Component, Estimate, Settings, _n
from pipeline.planner.terms import gradient_bytes, loss_terms, optimizer_bytes, optimizer_temp_bytes


@dataclass
class Stack:
    layers: int
    tokens: int  # per sequence
    hidden: int
    heads: int
    score_bytes: int  # bytes per stored attention score (0: SDPA/flash)
    cross_tokens: int = 0  # decoder: encoder positions it attends to (0: no cross-attention)


@dataclass
class Shape:
    """What a training estimate needs to know of a non-decoder model."""

    params: int
    linears: dict[str, tuple[int, int, int]]  # LoRA target name → (in, out, how many in the model)
    stacks: list[Stack]
    vocab: int  # 0: no token-level loss (an embedder)
    loss_tokens: int  # per sequence
    edge_bytes: int  # per sequence: inputs, embeddings, front end (16 bit)


def _score_bytes(attention: str, p: int, fp32_softmax: bool = False, dropout: bool = False) -> int:
    """Bytes kept per attention score with eager attention (Korthikanti et al. 2022: 2 B softmax
    output + 1 B dropout mask + 2 B dropout output = 5 in 16 bit); T5 keeps its softmax in fp32 and a
    copy in the compute dtype (transformers T5Attention: softmax(scores.float()).type_as(scores))."""
    if attention in ("sdpa", "flash"):
        return 0
    return (4 + p if fp32_softmax else p) + (1 + p if dropout else 0)


def shape_of(arch, st: Settings) -> Shape:
    p = 4 if st.precision.lower() in ("fp32", "float32") else 2
    if isinstance(arch, WhisperArch):
        d, T = arch.d_model, arch.audio_ctx
        S = st.target_seq or arch.text_ctx
        sb = _score_bytes(st.attention, p)
        lin = {"q_proj": (d, d, arch.encoder_layers + 2 * arch.decoder_layers),
               "k_proj": (d, d, arch.encoder_layers + 2 * arch.decoder_layers),
               "v_proj": (d, d, arch.encoder_layers + 2 * arch.decoder_layers),
               "out_proj": (d, d, arch.encoder_layers + 2 * arch.decoder_layers),
               "fc1": (d, arch.ffn, arch.encoder_layers + arch.decoder_layers),
               "fc2": (arch.ffn, d, arch.encoder_layers + arch.decoder_layers)}
        edge = (2 * 3000 + 2 * T) * d * 2 + arch.n_mels * 3000 * 4  # conv1 out + GELU, conv2 out + GELU; fp32 mel input
        return Shape(arch.params(), lin, [Stack(arch.encoder_layers, T, d, arch.heads, sb),
                                          Stack(arch.decoder_layers, S, d, arch.heads, sb, T)], arch.vocab, S, edge)
    if isinstance(arch, EncDecArch):
        d, inner, S = arch.d_model, arch.inner, st.target_seq or st.seq
        sb = _score_bytes("eager", p, fp32_softmax=True, dropout=True)  # T5 attention is eager (position bias)
        n_att = arch.encoder_layers + 2 * arch.decoder_layers
        n_ff = arch.encoder_layers + arch.decoder_layers
        lin = {"q": (d, inner, n_att), "k": (d, inner, n_att), "v": (d, inner, n_att), "o": (inner, d, n_att),
               "wo": (arch.d_ff, d, n_ff)}
        lin.update({"wi_0": (d, arch.d_ff, n_ff), "wi_1": (d, arch.d_ff, n_ff)} if arch.gated else {"wi": (d, arch.d_ff, n_ff)})
        return Shape(arch.params(), lin, [Stack(arch.encoder_layers, st.seq, d, arch.heads, sb),
                                          Stack(arch.decoder_layers, S, d, arch.heads, sb, st.seq)],
                     arch.vocab, S, (st.seq + S) * d * 2)
    if isinstance(arch, EncoderArch):
        h, s = arch.hidden, min(st.seq, arch.max_positions)
        lin = {"query": (h, h, arch.layers), "key": (h, h, arch.layers), "value": (h, h, arch.layers),
               "dense": (h, h, arch.layers)}
        sb = _score_bytes(st.attention, p, dropout=True)  # BERT configs: attention_probs_dropout_prob 0.1
        return Shape(arch.params(), lin, [Stack(arch.layers, s, h, arch.heads, sb)], 0, 0, s * h * 2 * 3)
    raise ConfigError(f"no training estimate for {type(arch).__name__}")


def _trainable(shape: Shape, st: Settings) -> int:
    if st.mode == "full":
        return shape.params
    targets = list(shape.linears) if tuple(st.lora_targets) == ("all-linear",) else list(st.lora_targets)
    unknown = [t for t in targets if t not in shape.linears]
    if unknown:
        raise ConfigError(f"unknown LoRA target(s) {', '.join(unknown)}; valid: {', '.join(shape.linears)} or all-linear")
    return sum(st.lora_rank * (i + o) * n for i, o, n in (shape.linears[t] for t in targets))


def _activation_bytes(shape: Shape, st: Settings, amp: bool, p: int = 2) -> tuple[int, int, str]:
    """(bytes kept for backward, one recomputed layer under checkpointing, formula). ``p``: bytes per
    activation element; Korthikanti's 34 assumes 2 (fp32 training keeps twice as much)."""
    b, kept, largest = st.batch, 0, 0
    per_h = 34 * p // 2 + (8 if amp else 0)
    for stack in shape.stacks:
        s, h = stack.tokens, stack.hidden
        layer = s * b * h * per_h + stack.score_bytes * stack.heads * s * s * b
        if stack.cross_tokens:
            layer += (s * b * h * 11 * p // 2 + 2 * p * stack.cross_tokens * b * h
                      + stack.score_bytes * stack.heads * s * stack.cross_tokens * b)
        largest = max(largest, layer)
        kept += stack.layers * (s * b * h * (4 if amp else p) if st.grad_ckpt else layer)
    formula = " + ".join(f"{x.layers} × {x.tokens} tok × {b} × ({per_h}h{' + 11h + cross K/V' if x.cross_tokens else ''}"
                         f"{f' + {x.score_bytes}·a·s' if x.score_bytes else ''})" for x in shape.stacks)
    if st.grad_ckpt:
        formula = "layer inputs only (checkpointed) + one layer recomputed"
    return kept + b * shape.edge_bytes, (largest if st.grad_ckpt else 0), formula


def estimate_seq2seq_training(arch, st: Settings, label: str) -> Estimate:
    """Full fine-tuning or LoRA of Whisper, T5 or a BERT-style encoder (per GPU)."""
    from pipeline.planner.sharding import Units, persistent_bytes, shard
    from pipeline.planner.training import choose_peak

    if st.mode not in ("full", "lora"):
        raise ConfigError(f"{arch.name}: --mode {st.mode} is not modelled here; use full or lora")
    shape = shape_of(arch, st)
    amp = st.mode == "full" and label not in ("fp32",) and st.master_weights
    p_param = 4 if (label == "fp32" or amp) else 2
    trainable = _trainable(shape, st)
    static = [Component("weights", "weights (fp32 master copy)" if amp else f"weights ({label})", shape.params * p_param,
                        "Parameter", f"{_n(shape.params)} × {p_param} B", "params × dtype bytes")]
    grad_b = 4 if (amp or st.mode == "lora" or label == "fp32") else 2
    if st.mode == "lora":
        static.append(Component("adapters", f"LoRA adapters (r={st.lora_rank}, fp32)", trainable * 4, "Parameter",
                                f"{_n(trainable)} × 4 B", "Hu et al. 2021 §4.1"))
    ob, of, osrc = optimizer_bytes(None, trainable, st.optimizer, grad_b, [])
    static.append(Component("optimizer", f"optimizer state ({st.optimizer})", ob, "Optstate", of, osrc))
    kept, recompute, formula = _activation_bytes(shape, st, amp, 4 if label == "fp32" else 2)
    acts = [Component("activations", "activations" + (" (checkpointed)" if st.grad_ckpt else ""), kept, "Activation",
                      formula, "Korthikanti et al. 2022 eq. 1 per layer (see pipeline.planner.encdec)")]
    if amp:
        acts.append(Component("weight_casts", "16-bit weight copies (autocast)", 2 * shape.params, "Activation",
                              f"{_n(shape.params)} × 2 B", "torch.autocast keeps one cast per weight"))
    loss_temp = 0
    if shape.vocab:
        lk, loss_temp, lf, lsrc = loss_terms(shape.vocab, st.batch * shape.loss_tokens, st.loss, 2, st.keep_outputs)
        acts.append(Component("loss", f"logits + loss ({st.loss} vocabulary)", lk, "Activation", lf, lsrc))
    temp = max(loss_temp, recompute)
    gb, gf = gradient_bytes(trainable, grad_b)
    gradients = Component("gradients", f"gradients ({'fp32' if grad_b == 4 else '16-bit'})", gb, "Gradient", gf,
                          "ZeRO (Rajbhandari et al. 2020) §3.1")
    held = [gradients] if st.grad_accum > 1 else []  # accumulation: .grad lives through every backward
    start = [*static, *held, *acts, Component("backward_temp", "backward temporaries", temp, "Temp",
                                              "max(loss grads, one recomputed layer)", "autograd")]
    step, what = optimizer_temp_bytes(st.optimizer, trainable, grad_b, max(i * o for i, o, _ in shape.linears.values()), st.fused_optimizer)
    end = [*static, gradients] + ([Component("step_temp", "optimizer step temporaries", step, "Temp", what,
                                             "torch.optim._multi_tensor_adamw")] if step else [])
    n_layers = sum(x.layers for x in shape.stacks)
    unit = max(shape.params // max(n_layers, 1), shape.vocab * shape.stacks[0].hidden)
    unit_trainable = unit if st.mode == "full" else trainable // max(n_layers, 1)
    hidden = max(x.hidden for x in shape.stacks)
    norms = (3 * n_layers + len(shape.stacks)) * hidden  # up to three norms per (decoder) layer + one per stack
    units = Units(unit, unit_trainable, grad_b, gb, shape.params, 4 if label == "fp32" else 2,
                  head_params=shape.vocab * shape.stacks[-1].hidden, layer_params=shape.params // max(n_layers, 1),
                  small_bytes=persistent_bytes(static, st, hidden, norms, p_param))
    start_gpu, end_gpu = shard(start, st, units), shard(end, st, units, step=True)
    notes = [f"{arch.name}: layers counted with Korthikanti et al.'s GPT layer (34 sbh in 16 bit), an upper bound "
             "for layers without dropout"]
    return choose_peak(arch.name, arch.params(), st, start_gpu, end_gpu, gradients.label, notes, label)
