"""Linear layers for CPU decoding: dense fp32/bf16, weight-only int8 and int4.

Decoding one token multiplies a (1, K) activation by every weight matrix once, so on a CPU its
speed is set by the bytes of weights streamed from memory: fp32 4 B/param, bf16 2, int8 1, int4
about 0.56 (a bf16 scale and zero per group of 32). The int kernels are PyTorch's own
(``_weight_int8pack_mm``, ``_weight_int4pack_mm_for_cpu``, the CPU side of gpt-fast/torchao's
weight-only quantization); both are fast with bf16 activations, so inputs are cast to bf16 on the way
in and results come out in the kernel's dtype (the caller adds them to its fp32 residual stream).

Measured on a 2-core AMD EPYC (AVX512-BF16), SmolLM2-135M, next-token top-1 agreement with the fp32
model over 400 tokens of R-intro: bf16 97.5%, int4 layers + int8 head 95%, int8 93.5% (per-row int8 is
coarser than the GGUF's per-32 blocks), int4 head 80% — hence the int8 head for ``int4``, as
llama.cpp's Q4_1 files keep token embeddings in Q8_0.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

INT4_GROUP = 32  # values per scale/zero pair; the GGUF Q4_1 block size, so its grid is kept
PREFILL_ROWS = 16  # prompt rows from which the bf16 copy beats the int kernels (crossover measured at 8-16)
# The bf16 copy costs memory beside the int weights (+269 MB for SmolLM2-135M, +2.6 GB for a 1.5B
# model): it is kept when it takes at most this share of the machine's physical memory.
PREFILL_COPY_RAM_SHARE = 0.25


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX, as oneDNN reports it)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def physical_memory_bytes() -> int | None:
    """This machine's physical memory (None where the OS does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def prefill_copy_fits(copy_bytes: int, memory_bytes: int | None = None) -> bool:
    """Whether a bf16 prompt copy of ``copy_bytes`` is worth its memory here (see PREFILL_COPY_RAM_SHARE).

    Prompts dominate scoring (the LLM re-ranker reads ~300-token passages and writes nothing) and
    long answers alike, and on a CPU with bf16 units the copy runs them ~4x faster than the int4
    kernels (measured with Qwen2.5-Coder-1.5B: eval/results/rerank_llm_qwen1.5b-speed-*.md)."""
    memory = physical_memory_bytes() if memory_bytes is None else memory_bytes
    if not memory:
        return copy_bytes <= 1 << 30  # unknown memory: only a small copy
    return copy_bytes <= PREFILL_COPY_RAM_SHARE * memory


class Linear:
    """y = x @ W.T (+ b): x (T, K) in any float dtype → (T, N) in ``out_dtype`` (bf16 for the int kernels)."""

    kind = "fp32"
    out_dtype = torch.float32
    bias: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        raise NotImplementedError


class DenseLinear(Linear):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype):
        self.kind = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
        self.dtype = self.out_dtype = dtype
        self.weight = weight.to(dtype).contiguous()  # (N, K)
        self.bias = bias.to(dtype) if bias is not None else None

    def __call__(self, x):
        return F.linear(x.to(self.dtype), self.weight, self.bias)

    @property
    def nbytes(self):
        return self.weight.numel() * self.weight.element_size()


class Int8Linear(Linear):
    """Symmetric int8 per output row: W ≈ q * scale[row]."""

    kind = "int8"
    out_dtype = torch.bfloat16

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        w = weight.float()
        self.scale = (w.abs().amax(dim=1).clamp(min=1e-12) / 127.0)  # (N,) fp32
        self.qweight = torch.round(w / self.scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()  # (N, K)
        self.scale_bf16 = self.scale.to(torch.bfloat16)
        self.bias = bias.to(torch.bfloat16) if bias is not None else None

    def __call__(self, x):
        y = torch.ops.aten._weight_int8pack_mm(x.to(torch.bfloat16), self.qweight, self.scale_bf16)
        return y if self.bias is None else y + self.bias

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Dequantized rows (an embedding lookup when the head is tied to the embeddings)."""
        return self.qweight[ids].float() * self.scale[ids, None]

    @property
    def nbytes(self):
        return self.qweight.numel() + self.scale.numel() * 2


class Int4Linear(Linear):
    """Asymmetric int4 in groups of 32 along K: W ≈ (q - 8) * scale + zero, q in 0..15."""

    kind = "int4"
    out_dtype = torch.bfloat16

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, group: int = INT4_GROUP):
        n, k = weight.shape
        w = weight.float().view(n, k // group, group)
        lo, hi = w.amin(dim=-1), w.amax(dim=-1)  # (N, K/group)
        scale = ((hi - lo) / 15.0).clamp(min=1e-12)
        q = torch.round((w - lo[..., None]) / scale[..., None]).clamp(0, 15).to(torch.int32).view(n, k)
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        zero = lo + 8.0 * scale  # the kernel computes (q - 8) * scale + zero
        self.scales_zeros = torch.stack([scale, zero], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)  # (K/group, N, 2)
        self.group = group
        self.bias = bias.to(torch.bfloat16) if bias is not None else None
        self.shape = (n, k)

    def __call__(self, x):
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), self.packed, self.group, self.scales_zeros)
        return y if self.bias is None else y + self.bias

    @property
    def nbytes(self):
        return self.packed.numel() * self.packed.element_size() + self.scales_zeros.numel() * 2


class PrefillDenseLinear(Linear):
    """int weights for decoding, a bf16 copy for prompts (fp32 where the CPU has no native bf16).

    Decoding (one row) is bound by memory traffic, where int4 beats dense bf16 by ~2.4x; a prompt (many
    rows) is bound by arithmetic, where oneDNN's bf16 GEMM (AVX512-BF16) runs ~1.8x faster than the int
    kernels (measured: 512-token prefill of SmolLM2-135M, 1074 vs 603 tokens/s on 2 EPYC cores)."""

    def __init__(self, decode: Linear, dense: DenseLinear, min_rows: int = PREFILL_ROWS):
        self.decode, self.dense, self.min_rows = decode, dense, min_rows
        self.kind = f"{decode.kind}+{dense.kind}"
        self.bias = decode.bias

    def __call__(self, x):
        return self.dense(x) if x.shape[0] >= self.min_rows else self.decode(x)

    @property
    def nbytes(self):
        return self.decode.nbytes + self.dense.nbytes


@lru_cache(maxsize=None)
def kernel_available(kind: str) -> bool:
    """Whether this PyTorch build runs the kernel (checked once on a tiny matrix)."""
    try:
        w = torch.randn(64, 64)
        x = torch.randn(2, 64)
        layer = {"int8": lambda: Int8Linear(w, None), "int4": lambda: Int4Linear(w, None),
                 "bf16": lambda: DenseLinear(w, None, torch.bfloat16)}[kind]()
        ref = x @ w.T
        return (layer(x).float() - ref).abs().max().item() < 0.25 * ref.abs().max().item()  # a wrong kernel is far off
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        log.debug("kernel %s unavailable: %s", kind, exc)
        return False


def make_linear(weight: torch.Tensor, bias: torch.Tensor | None, kind: str, dense_prefill: str | bool | None = None
                ) -> Linear:
    """A layer of ``kind`` (fp32, bf16, fp16, int8, int4); int4 needs K divisible by the group size.
    ``dense_prefill``: int layers also keep a copy of that kind (bf16 or fp32; True: bf16) for prompts
    (see :class:`PrefillDenseLinear`)."""
    copy = "bf16" if dense_prefill is True else dense_prefill
    if copy and kind in ("int4", "int8"):
        dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[copy]
        return PrefillDenseLinear(make_linear(weight, bias, kind), DenseLinear(weight, bias, dtype))
    if kind == "int4":
        if weight.shape[1] % INT4_GROUP == 0:
            return Int4Linear(weight, bias)
        kind = "int8"
    if kind == "int8":
        return Int8Linear(weight, bias)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[kind]
    return DenseLinear(weight, bias, dtype)


def save_linear(layer: Linear, prefix: str, tensors: dict[str, torch.Tensor]) -> str:
    """Put ``layer``'s tensors in ``tensors`` under ``prefix.*``; returns the tag :func:`load_linear` reads."""
    if isinstance(layer, PrefillDenseLinear):
        tag = save_linear(layer.decode, prefix, tensors)
        save_linear(layer.dense, prefix + ".dense", tensors)
        return f"{tag}+{layer.dense.kind}:{layer.min_rows}"
    if layer.bias is not None:
        tensors[prefix + ".bias"] = layer.bias
    if isinstance(layer, Int4Linear):
        tensors[prefix + ".packed"], tensors[prefix + ".scales_zeros"] = layer.packed, layer.scales_zeros
        return f"int4:{layer.group}:{layer.shape[0]}:{layer.shape[1]}"
    if isinstance(layer, Int8Linear):
        tensors[prefix + ".qweight"], tensors[prefix + ".scale"] = layer.qweight, layer.scale
        return "int8"
    tensors[prefix + ".weight"] = layer.weight
    return layer.kind


def load_linear(tag: str, prefix: str, tensors) -> Linear:
    """The layer :func:`save_linear` stored (no quantization is redone)."""
    for copy in ("bf16", "fp32"):
        if f"+{copy}:" in tag:
            base, min_rows = tag.split(f"+{copy}:")
            return PrefillDenseLinear(load_linear(base, prefix, tensors), load_linear(copy, prefix + ".dense", tensors),
                                      int(min_rows))
    bias = tensors.get(prefix + ".bias")
    if tag.startswith("int4:"):
        layer = Int4Linear.__new__(Int4Linear)
        _, group, n, k = tag.split(":")
        layer.packed, layer.scales_zeros = tensors[prefix + ".packed"], tensors[prefix + ".scales_zeros"]
        layer.group, layer.shape = int(group), (int(n), int(k))
    elif tag == "int8":
        layer = Int8Linear.__new__(Int8Linear)
        layer.qweight, layer.scale = tensors[prefix + ".qweight"], tensors[prefix + ".scale"]
        layer.scale_bf16 = layer.scale.to(torch.bfloat16)
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[tag]
        layer = DenseLinear.__new__(DenseLinear)
        layer.kind, layer.dtype, layer.out_dtype, layer.weight = tag, dtype, dtype, tensors[prefix + ".weight"]
    layer.bias = bias
    return layer
