"""Weight formats and what each costs per weight, quantization constants included.

A precision is a name the CLI accepts: ``fp32``, ``bf16``, ``fp16``, ``int8`` (bitsandbytes LLM.int8),
``nf4`` / ``fp4`` (bitsandbytes 4-bit), ``gptq-int4`` / ``gptq-int8`` / ``awq-int4`` (with a group
size), or a GGUF type (``Q4_K_M``, ``Q8_0``, ``Q4_1``, ... every type the ``gguf`` package knows).
"""

from __future__ import annotations

from dataclasses import dataclass

from syllabus_common.errors import ConfigError

FLOAT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
BNB = ("int8", "nf4", "fp4")
GPTQ_AWQ = ("gptq-int4", "gptq-int8", "awq-int4")

# GGUF file types (llama.cpp `llama_ftype`) → the type most tensors get; the mixes are resolved per
# tensor by gguf_tensor_type() below.
GGUF_FTYPES = {
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1",
    "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q2_K": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K",
    "IQ4_XS": "IQ4_XS", "IQ4_NL": "IQ4_NL",
}
# llama.cpp `general.file_type` numbers (enum llama_ftype) for reading GGUF headers.
GGUF_FTYPE_IDS = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
                  11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
                  17: "Q5_K_M", 18: "Q6_K", 25: "IQ4_NL", 30: "IQ4_XS", 32: "BF16"}


@dataclass(frozen=True)
class Precision:
    """One weight format with its options."""

    name: str  # canonical: fp32, bf16, fp16, int8, nf4, fp4, gptq-int4, gptq-int8, awq-int4, Q4_K_M, ...
    kind: str  # float | bnb | gptq | awq | gguf
    double_quant: bool = False  # bitsandbytes 4-bit: quantize the absmax constants too (QLoRA §3)
    group_size: int = 128  # GPTQ/AWQ: weights sharing one scale and zero point

    @property
    def compute_bytes(self) -> int:
        """Bytes of the activations / dequantized compute dtype: fp32 stays 4, all else runs in 16 bit."""
        return 4 if self.name in ("fp32", "F32") else 2

    @property
    def quantized(self) -> bool:
        return self.kind != "float"

    @property
    def label(self) -> str:
        if self.kind == "bnb" and self.name != "int8":
            return f"{self.name}{'+dq' if self.double_quant else ''}"
        if self.kind in ("gptq", "awq"):
            return f"{self.name}-g{self.group_size}"
        return self.name


def gguf_type_bits(type_name: str) -> float:
    """Bits per weight of one GGML tensor type: block bytes × 8 / block size, from the gguf package's
    GGML_QUANT_SIZES (ggml-common.h block structs, scales and mins included: Q4_K = 144 B / 256 = 4.5)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    except KeyError:
        raise ConfigError(f"unknown GGML type {type_name!r}; known: {', '.join(t.name for t in GGML_QUANT_SIZES)}") from None
    return type_size * 8 / block


def gguf_known_types() -> list[str]:
    from gguf import GGML_QUANT_SIZES

    return [t.name for t in GGML_QUANT_SIZES]


def parse_precision(name: str, *, double_quant: bool | None = None, group_size: int = 128, mode: str = "inference") -> Precision:
    """A CLI precision string → Precision; unknown names fail with the list of valid ones.

    double_quant=None means the usual default: on for QLoRA (the QLoRA recipe), off otherwise
    (transformers' BitsAndBytesConfig default).
    """
    raw = name.strip()
    low = raw.lower().replace("_", "-")
    low = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16", "8bit": "int8",
           "4bit": "nf4", "gptq": "gptq-int4", "awq": "awq-int4", "llm.int8": "int8"}.get(low, low)
    if low in FLOAT_BYTES:
        return Precision(low, "float")
    if low in BNB:
        dq = (mode == "qlora") if double_quant is None else double_quant
        return Precision(low, "bnb", double_quant=dq and low != "int8")
    if low in GPTQ_AWQ:
        if group_size not in (-1, 32, 64, 128, 256, 1024):
            raise ConfigError(f"--group-size must be 32, 64, 128, 256, 1024 or -1 (per channel), not {group_size}")
        return Precision(low, low.split("-")[0], group_size=group_size)
    up = raw.upper().replace("-", "_")
    if up.startswith("GGUF:"):
        up = up[5:]
    if up in GGUF_FTYPES or up in gguf_known_types():
        return Precision(up, "gguf")
    raise ConfigError(
        f"unknown precision {name!r}; valid: fp32, bf16, fp16, int8, nf4, fp4, gptq-int4, gptq-int8, awq-int4, "
        f"or a GGUF type ({', '.join(GGUF_FTYPES)}, ...)"
    )


# ---------------------------------------------------------------------------------------------
# Bits per weight of one linear matrix.


def bnb_4bit_bits(double_quant: bool, blocksize: int = 64) -> float:
    """bitsandbytes NF4/FP4: 4 bits per weight plus one absmax per 64-weight block.

    Dettmers et al. 2023 (QLoRA), §3 "Double Quantization": fp32 absmax costs 32/64 = 0.5 bit per
    weight; quantizing the absmax to 8 bit in blocks of 256 (one fp32 constant each) costs
    8/64 + 32/(64·256) = 0.127 bit per weight.
    """
    if double_quant:
        return 4 + 8 / blocksize + 32 / (blocksize * 256)
    return 4 + 32 / blocksize


def int8_bits(out_features: int, in_features: int) -> float:
    """bitsandbytes LLM.int8 (Dettmers et al. 2022, §3.1 vector-wise quantization): int8 weights plus
    one fp32 scale per output row (bitsandbytes Int8Params: CB int8 [out, in], SCB fp32 [out])."""
    return 8 + 32 / in_features


def gptq_bits(bits: int, group_size: int, out_features: int, in_features: int) -> float:
    """GPTQ (Frantar et al. 2023) as stored by AutoGPTQ / transformers: qweight int32 [in·bits/32, out],
    scales fp16 [in/g, out], qzeros packed `bits` wide [in/g, out·bits/32], g_idx int32 [in].
    Per weight: bits + (16 + bits)/g + 32/out."""
    g = in_features if group_size == -1 else group_size
    return bits + (16 + bits) / g + 32 / out_features


def awq_bits(bits: int, group_size: int) -> float:
    """AWQ (Lin et al. 2024) GEMM format: qweight int32 [in, out·bits/32], qzeros [in/g, out·bits/32],
    scales fp16 [in/g, out]; no g_idx. Per weight: bits + (16 + bits)/g."""
    return bits + (16 + bits) / group_size


def linear_bits(p: Precision, in_features: int, out_features: int) -> float:
    """Bits per weight of a quantized linear layer (the formats above; GGUF goes through
    gguf_tensor_type)."""
    if p.kind == "float":
        return 8 * FLOAT_BYTES[p.name]
    if p.name == "int8":
        return int8_bits(out_features, in_features)
    if p.kind == "bnb":
        return bnb_4bit_bits(p.double_quant)
    if p.kind == "gptq":
        return gptq_bits(4 if p.name.endswith("int4") else 8, p.group_size, out_features, in_features)
    if p.kind == "awq":
        return awq_bits(4, p.group_size)
    raise ValueError(f"linear_bits does not handle {p.kind}")


# ---------------------------------------------------------------------------------------------
# GGUF mixes: which GGML type each tensor gets.

_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
             "IQ4_XS": "IQ4_NL"}


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def gguf_tensor_type(ftype: str, tensor: str, layer: int, n_layers: int, row: int, *, tied: bool, gqa: int) -> str:
    """The type llama.cpp's quantizer gives one tensor of a `ftype` file.

    After llama.cpp src/llama-quant.cpp `llama_tensor_get_type` (non-MoE, non-Falcon paths):
    the output matrix (or the tied embedding) is raised to Q6_K, attn_v and ffn_down get more bits in
    the `use_more_bits` layers of *_M mixes, and a k-quant whose row length is not a multiple of 256
    falls back to a legacy type. ``tensor`` is the GGUF base name (attn_v, ffn_down, output, ...).
    """
    ftype = ftype.upper()
    if ftype not in GGUF_FTYPES:  # a plain GGML type used as a whole-file type
        return ftype
    t = GGUF_FTYPES[ftype]
    if t in ("F32", "F16", "BF16"):
        return t
    if tensor == "output" or (tied and tensor == "token_embd"):
        t = t if t == "Q8_0" else "Q6_K"
    elif tensor == "attn_v":
        if ftype == "Q2_K":
            t = "Q4_K" if gqa >= 4 else "Q3_K"
        elif ftype == "Q3_K_M":
            t = "Q5_K" if layer < 2 else "Q4_K"
        elif ftype == "Q3_K_L":
            t = "Q5_K"
        elif ftype in ("IQ4_NL", "IQ4_XS") and gqa >= 4:
            t = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(layer, n_layers):
            t = "Q6_K"
        elif ftype == "Q4_K_S" and layer < 4:
            t = "Q5_K"
    elif tensor == "ffn_down":
        if ftype == "Q2_K":
            t = "Q3_K"
        elif ftype == "Q3_K_M":
            t = "Q5_K" if layer < n_layers // 16 else "Q4_K"
        elif ftype == "Q3_K_L":
            t = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(layer, n_layers):
            t = "Q6_K"
        elif ftype == "Q4_K_S" and layer < n_layers // 8:
            t = "Q5_K"
    elif tensor == "attn_qkv":
        t = {"Q3_K_M": "Q4_K", "Q3_K_L": "Q4_K", "Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}.get(ftype, t)
    elif tensor == "attn_output":
        t = {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ftype, t)
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block = GGML_QUANT_SIZES[GGMLQuantizationType[t]][0]
    if row % block:
        t = _FALLBACK.get(t, "F16")
    return t
