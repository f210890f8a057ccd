"""What the training framework changes in a decoder's training step.

``hf`` (the default): transformers (HF Llama-style modules, separate q/k/v projections) + peft LoRA +
bitsandbytes, run by the Trainer or an equivalent loop. ``litgpt``: Lightning-AI/litgpt's own model
(litgpt/model.py, litgpt/lora.py) run by finetune/lora.py or full.py under Fabric, bf16-true, with
Lightning's BitsandbytesPrecision plugin for QLoRA. The two keep different tensors for backward; each
function gives the bytes per token (or in total) and the arithmetic, from the code named.
Symbols: h hidden, q = heads·head_dim, kv = kv_heads·head_dim, I MLP width, V vocabulary, p bytes
of the 16-bit compute dtype, b·s tokens of one micro-batch.
"""

from __future__ import annotations

from pipeline.planner.catalog import DecoderArch

LITGPT_HEAD_CHUNK = 128  # finetune/lora.py: model(input_ids, lm_head_chunk_size=128)
_QKV = ("q_proj", "k_proj", "v_proj", "qkv_proj")


def attention_kept(arch: DecoderArch, p: int, framework: str) -> tuple[int, str]:
    """Bytes per token the attention of one layer keeps for backward: SDPA (flash / memory-efficient)
    saves its query, key, value and output plus an fp32 log-sum-exp per head.

    hf: q, k (new tensors after RoPE), v and the output: p·(2q + 2kv).
    litgpt (CausalSelfAttention.forward): one fused qkv linear; q, k, v are views of its output
    (``qkv.split``). RoPE makes new q and k; v stays a view, so the tensor SDPA saves for v holds the
    whole fused output alive: p·(q + kv + (q + 2kv) + q) with multi-head attention. With grouped
    queries LitGPT expands k and v to every query head before SDPA (``k.expand(...)`` then
    ``reshape``, "flash attention requires it"): copies of q's size, so p·4q.
    """
    q, kv = arch.q_dim, arch.kv_dim
    lse = 4 * arch.heads
    if framework == "litgpt":
        if arch.kv_heads < arch.heads:
            return 4 * p * q + lse, f"{p}·4q (k, v expanded to all heads)"
        return p * (3 * q + 3 * kv) + lse, f"{p}(q + kv + (q+2kv) fused qkv kept by v's view + q)"
    return p * (2 * q + 2 * kv) + lse, f"{p}(2q+2kv)"


def adapter_kept(arch: DecoderArch, targets: tuple[str, ...], rank: int, p: int, framework: str,
                 dropout: float) -> tuple[int, str]:
    """Bytes per token the LoRA branches of one layer keep: the input of A (the dropout's output, a
    new tensor when dropout > 0), the dropout's mask (torch ``native_dropout`` saves a bool mask,
    1 B per element, for its backward) and A's output (kept by B).

    hf (peft ``lora.Linear.forward``: ``lora_B(lora_A(dropout(x)))`` per adapted module): every
    target has its own dropout, so its own input copy and mask: Σ (p + 1)·in + p·r.
    litgpt (``LoRAQKVLinear``): q, k and v share one dropout over the common input and one A
    (r per enabled projection); other targets are separate ``LoRALinear`` modules, one each.
    """
    shapes = arch.linear_shapes()
    mask = 1 if dropout > 0 else 0
    per_in = p + mask
    if framework == "litgpt":
        fused = [t for t in targets if t in _QKV]
        rest = [t for t in targets if t not in _QKV]
        total = (per_in * arch.hidden + p * rank * len(fused)) if fused else 0
        total += sum(per_in * shapes[t][0] + p * rank for t in rest)
        return total, f"({p}+{mask})·in + {p}r per shared input (q/k/v share one)"
    total = sum(per_in * shapes[t][0] + p * rank for t in targets)
    return total, f"Σ_targets ({p}+{mask})·in + {p}r"


def litgpt_loss(vocab: int, tokens: int, batch: int, p: int) -> tuple[int, int, str, str]:
    """(kept until backward, backward temporaries, formula, source) of LitGPT's output and loss.

    GPT.forward with ``lm_head_chunk_size=128`` returns a list of 16-bit logit chunks, which the
    training loop keeps (``logits = model(...)``) through backward; ``chunked_cross_entropy`` runs
    ``F.cross_entropy`` per chunk on the 16-bit logits, so each chunk's log-softmax is kept in 16 bit
    too: 2p·bsV. Backward handles one chunk of 128 positions at a time: grad-out and grad-in of
    that chunk's log-softmax, 2p·b·128·V.
    """
    n = tokens * vocab
    chunk = batch * min(LITGPT_HEAD_CHUNK, tokens // batch) * vocab
    return (2 * p * n, 2 * p * chunk, f"({p} B logits + {p} B log-softmax) × {tokens} tokens × {vocab} vocab",
            "litgpt GPT.forward(lm_head_chunk_size=128), utils.chunked_cross_entropy")


def quantizes_head(framework: str, mode: str) -> bool:
    """Lightning's BitsandbytesPrecision replaces every ``torch.nn.Linear`` at model init, the output
    layer included; transformers keeps ``lm_head`` in 16 bit (``get_keys_to_not_convert``)."""
    return framework == "litgpt" and mode == "qlora"


def retained_4bit_inputs(arch: DecoderArch, tokens: int, framework: str, mode: str) -> tuple[int, str]:
    """Bytes of the previous micro-batch that are still alive during the next forward (LitGPT QLoRA).

    bitsandbytes' MatMul4Bit.forward stores its input as a plain attribute (``ctx.tensors = (A, B)``),
    not through ``save_for_backward``, so autograd does not free it when the node's backward runs:
    it lives as long as the graph. LitGPT's loop keeps the graph through ``logits`` and ``loss``
    until the next micro-batch reassigns them, after its forward: during that forward the previous
    micro-batch's 4-bit-layer inputs (attention input h, MLP input h, MLP product I; the output
    layer's input h) and its logits are still allocated. Counted for a previous micro-batch as long
    as this one, the case the planner sizes for. The transformers Trainer drops the graph when
    ``training_step`` returns (``loss.detach()``): nothing.
    """
    if framework != "litgpt" or mode != "qlora":
        return 0, "none"
    per_token = arch.layers * 2 * (2 * arch.hidden + arch.intermediate) + 2 * arch.hidden
    return tokens * per_token, f"{tokens} tokens × ({arch.layers} layers × 2(2h+I) + 2h)"
