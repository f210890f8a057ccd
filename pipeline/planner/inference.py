"""Inference terms of a decoder LLM (weights, KV cache, prefill working set, logits) and the inference
estimate. Units and symbols as in ``estimator``."""

from __future__ import annotations

from dataclasses import asdict

from pipeline.planner.catalog import DecoderArch
from pipeline.planner.precision import FLOAT_BYTES, Precision, gguf_tensor_type, gguf_type_bits, linear_bits
from pipeline.planner.types import Component, Estimate, Settings, _n


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


def dequant_copy_bytes(arch: DecoderArch) -> tuple[int, str]:
    """bitsandbytes 4-bit layers compute with a 16-bit copy of the weight: MatMul4Bit.forward calls
    ``F.dequantize_4bit(B, quant_state)`` (and backward again, for grad_A) and multiplies with it
    (bitsandbytes/autograd/_functions.py). One matrix exists at a time: the largest linear × 2 B."""
    i, o = max(arch.linear_shapes().values(), key=lambda io: io[0] * io[1])
    return 2 * i * o, f"largest linear {i} × {o} × 2 B"


def estimate_inference(arch: DecoderArch, st: Settings) -> Estimate:
    """The peak of running a decoder LLM: weights, KV cache, prefill working set, last-token logits."""
    prec = st.prec()
    p = prec.compute_bytes
    if prec.kind == "gguf":
        p = 4 if prec.name == "F32" else 2
    kv_b = {"fp8": 1, "int8": 1, "q8_0": 34 / 32, "q4_0": 18 / 32, "fp16": 2, "bf16": 2, "fp32": 4}.get(
        (st.kv_cache_dtype or "").lower(), p)
    comps = []
    wb, wf = weight_bytes(arch, prec)
    comps.append(Component("weights", f"weights ({prec.label})", wb, "Parameter", wf, weights_source(prec)))
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
    if prec.kind == "bnb" and prec.name != "int8":
        db, df = dequant_copy_bytes(arch)
        comps.append(Component("dequant", "dequantized weight copy", db, "Temp", df,
                               "bitsandbytes MatMul4Bit: F.dequantize_4bit(B) per call"))
    return Estimate(arch.name, arch.params(), asdict(st), prec.label, comps, "prefill (last layer)", notes)


def weights_source(prec: Precision) -> str:
    return {"float": "params × dtype bytes", "bnb": "Dettmers et al. 2022 (LLM.int8) / 2023 (QLoRA §3)",
            "gptq": "Frantar et al. 2023; AutoGPTQ packing", "awq": "Lin et al. 2024; AutoAWQ GEMM packing",
            "gguf": "ggml block sizes (gguf GGML_QUANT_SIZES); llama.cpp llama-quant.cpp"}[prec.kind]

