"""A lean CPU decoder for Llama-family models (Llama, SmolLM, Mistral, Qwen2).

``model.generate`` spends most of a CPU decode step outside the matrix products: a growing
DynamicCache concatenated every token, mask building, dozens of small ops per layer, logits
processors. For a small model that overhead is larger than the arithmetic. This module runs the same
weights with:

- a static KV cache allocated once (no concatenation, no reallocation);
- fused q/k/v and gate/up projections, the attention scale folded into the query weights, RoPE as
  three ops, decode attention as two small batched matmuls (grouped-query heads share K and V);
- weight-only int8/int4 or bf16 matrices (:mod:`pipeline.llm.quant`): decoding streams every weight
  once per token, so fewer bytes per weight is the main lever; prompts, which are bound by arithmetic
  instead, run on a bf16 copy of the layers (fp32 on a CPU without native bf16) where the machine's
  memory allows it (:func:`prefill_copy_kind`).

Logits match the transformers implementation to float rounding in fp32 (a test checks it). Models with
anything this module does not implement (rope scaling, sliding windows, other activations) are
refused by :func:`unsupported` and run through ``model.generate`` instead.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.llm.lite import ARCHITECTURES, unsupported  # noqa: F401  (lite: checked before torch loads)
from pipeline.llm.quant import (DenseLinear, Int8Linear, Linear, PrefillDenseLinear, kernel_available, load_linear,
                                make_linear, prefill_copy_fits, save_linear)


def prompt_copy_kind() -> str:
    """The dtype of int layers' prompt copy here: bf16 where this CPU computes bf16 natively
    (AVX512-BF16/AMX), else fp32. Elsewhere bf16 products are emulated: on a 2-core AMD EPYC with
    AVX2 only, scoring a 358-token passage with SmolLM2-135M took 9.9 s on a bf16 copy against 1.3 s
    on the int4 kernels alone and 0.84 s on an fp32 copy."""
    from pipeline.llm import quant

    return "bf16" if quant.cpu_has_bf16() and kernel_available("bf16") else "fp32"


def prefill_copy_bytes(config, copy: str = "bf16") -> int:
    """Bytes of a ``copy`` (bf16 or fp32) of every layer's matrices (q/k/v/o, gate/up/down) and of the
    output head of a model with ``config``."""
    hidden, inter = config.hidden_size, config.intermediate_size
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    per_layer = hidden * head_dim * (2 * heads + 2 * kv) + 3 * hidden * inter
    return (2 if copy == "bf16" else 4) * (per_layer * config.num_hidden_layers + config.vocab_size * hidden)


def prefill_copy_kind(config, kind: str, memory_bytes: int | None = None) -> str | None:
    """The prompt copy int layers keep here (:func:`prompt_copy_kind`), or None: dense layers need
    none, and a copy that does not fit the machine's memory is not made
    (:func:`pipeline.llm.quant.prefill_copy_fits`)."""
    if kind not in ("int4", "int8"):
        return None
    copy = prompt_copy_kind()
    return copy if prefill_copy_fits(prefill_copy_bytes(config, copy), memory_bytes) else None


def wants_prefill_copy(config, kind: str, memory_bytes: int | None = None) -> bool:
    return prefill_copy_kind(config, kind, memory_bytes) is not None


def copy_kind(prefill_copy: str | bool | None, config, kind: str) -> str | None:
    """A ``prefill_copy`` argument as a copy kind: None decides here, True is this machine's kind."""
    if prefill_copy is None:
        return prefill_copy_kind(config, kind)
    if prefill_copy is True:
        return prompt_copy_kind() if kind in ("int4", "int8") else None
    return prefill_copy or None


def _rope_theta(config) -> float:
    rope = getattr(config, "rope_parameters", None) or {}
    return float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _mm(layer: Linear, x: torch.Tensor, dense: bool) -> torch.Tensor:
    """``layer(x)``; with ``dense``, an int layer's bf16 prompt copy whatever the number of rows."""
    return layer.dense(x) if dense and isinstance(layer, PrefillDenseLinear) else layer(x)


class _Layer:
    __slots__ = ("ln1", "ln2", "qkv", "o", "gate_up", "down")


class FastDecoder:
    """Prefill and single-token steps over a static cache of ``max_len`` positions (batch 1).

    Built from a loaded transformers model, from a checkpoint's tensors (:meth:`from_weights`, no
    transformers needed), or from its own packed form (:meth:`from_packed`, what
    :mod:`pipeline.llm.packcache` keeps in the user cache so a new process skips the quantization)."""

    def __init__(self, hf_model, kind: str, max_len: int):
        tied = hf_model.lm_head.weight.data_ptr() == hf_model.model.embed_tokens.weight.data_ptr()
        self._build(hf_model.config, hf_model.state_dict(), kind, max_len, tied)

    @classmethod
    def from_weights(cls, config, weights: Mapping[str, torch.Tensor], kind: str, max_len: int,
                     prefill_copy: str | bool | None = None) -> "FastDecoder":
        """From a Llama-layout checkpoint's tensors (``model.layers.N.self_attn.q_proj.weight``, ...);
        tied embeddings when the checkpoint has no ``lm_head.weight``. ``prefill_copy``: the kind of
        copy int layers keep for prompts, bf16 or fp32 (True: this machine's; False: none; None:
        :func:`prefill_copy_kind`)."""
        decoder = cls.__new__(cls)
        decoder._build(config, weights, kind, max_len, tied="lm_head.weight" not in weights, prefill_copy=prefill_copy)
        return decoder

    def _shape(self, cfg, kind: str, max_len: int) -> None:
        self.kind = kind
        self.n_layers = cfg.num_hidden_layers
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.hidden = cfg.hidden_size
        self.inter = cfg.intermediate_size
        self.eps = float(cfg.rms_norm_eps)
        self.max_len = max_len
        self.q_size, self.kv_size = self.n_heads * self.head_dim, self.n_kv * self.head_dim

    def _build(self, cfg, weights: Mapping[str, torch.Tensor], kind: str, max_len: int, tied: bool,
               prefill_copy: str | bool | None = None) -> None:
        self._shape(cfg, kind, max_len)
        head_kind = "int8" if kind == "int4" else kind  # see quant.py: an int4 head costs accuracy
        scale = 1.0 / math.sqrt(self.head_dim)
        dense_prefill = copy_kind(prefill_copy, cfg, kind)

        def w(name: str) -> torch.Tensor:
            return weights[name].detach().float()

        self.layers: list[_Layer] = []
        with torch.no_grad():
            for i in range(self.n_layers):
                p = f"model.layers.{i}."
                qkv = torch.cat([w(p + "self_attn.q_proj.weight") * scale, w(p + "self_attn.k_proj.weight"),
                                 w(p + "self_attn.v_proj.weight")])
                b = None
                if p + "self_attn.q_proj.bias" in weights:
                    b = torch.cat([w(p + "self_attn.q_proj.bias") * scale, w(p + "self_attn.k_proj.bias"),
                                   w(p + "self_attn.v_proj.bias")])
                layer = _Layer()
                layer.ln1 = w(p + "input_layernorm.weight").clone()
                layer.ln2 = w(p + "post_attention_layernorm.weight").clone()
                layer.qkv = make_linear(qkv, b, kind, dense_prefill)
                layer.o = make_linear(w(p + "self_attn.o_proj.weight"), None, kind, dense_prefill)
                gate_up = torch.cat([w(p + "mlp.gate_proj.weight"), w(p + "mlp.up_proj.weight")])
                layer.gate_up = make_linear(gate_up, None, kind, dense_prefill)
                layer.down = make_linear(w(p + "mlp.down_proj.weight"), None, kind, dense_prefill)
                self.layers.append(layer)
            self.norm = w("model.norm.weight").clone()
            embed = weights["model.embed_tokens.weight"]
            self.head: Linear = make_linear(embed.detach().float() if tied else w("lm_head.weight"), None, head_kind,
                                            dense_prefill)
            if tied and isinstance(self.head, PrefillDenseLinear):
                self.embed = self.head.dense.weight  # the prompt copy's rows serve as the embedding table
            elif tied and isinstance(self.head, Int8Linear):
                self.embed = None  # rows of the int8 head serve as the embedding table
            elif tied and isinstance(self.head, DenseLinear):
                self.embed = self.head.weight
            else:
                self.embed = embed.detach().to(torch.bfloat16 if kind != "fp32" else torch.float32).clone()
        self._tables(cfg)

    def _tables(self, cfg) -> None:
        """RoPE tables and the empty KV cache (cheap: not part of the packed form)."""
        max_len = self.max_len
        # RoPE tables (max_len, head_dim), rotate-half form: x*cos + roll(x, D/2)*sin_signed.
        # Computed with numpy, single-threaded: torch's cos/sin split the table across intra-op threads,
        # and the split (hence which elements take the vector or the scalar path) differed when the
        # weights loaded in a background thread, moving the logits by ~0.1 (measured) between runs.
        half = self.head_dim // 2
        inv = 1.0 / (_rope_theta(cfg) ** (np.arange(0, half, dtype=np.float64) * 2 / self.head_dim))
        angles = np.outer(np.arange(max_len, dtype=np.float64), inv)
        angles = np.concatenate([angles, angles], axis=-1)
        self.cos = torch.from_numpy(np.cos(angles).astype(np.float32))
        sign = np.concatenate([-np.ones(half), np.ones(half)])
        self.sin = torch.from_numpy((np.sin(angles) * sign).astype(np.float32))
        # Static KV cache: (layers, kv heads, positions, head_dim), fp32: 30 x 3 x 4096 x 64 x 4 B x 2 = 189 MB
        # for SmolLM2-135M at 4096 positions.
        self.k_cache = torch.zeros(self.n_layers, self.n_kv, max_len, self.head_dim)
        self.v_cache = torch.zeros(self.n_layers, self.n_kv, max_len, self.head_dim)
        self.tokens: list[int] = []  # what the cache holds, position by position

    # ----- the packed form: quantized tensors plus a small string table (safetensors metadata)
    def packed(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        tensors: dict[str, torch.Tensor] = {"norm": self.norm}
        meta = {"kind": self.kind, "head": save_linear(self.head, "head", tensors)}
        if self.embed is None:
            meta["embed"] = "head-rows"
        elif self.embed is getattr(self.head, "weight", None):
            meta["embed"] = "head-weight"
        elif self.embed is getattr(getattr(self.head, "dense", None), "weight", None):
            meta["embed"] = "head-dense-weight"
        else:
            meta["embed"], tensors["embed"] = "own", self.embed
        for i, layer in enumerate(self.layers):
            tensors[f"{i}.ln1"], tensors[f"{i}.ln2"] = layer.ln1, layer.ln2
            for part in ("qkv", "o", "gate_up", "down"):
                meta[f"{i}.{part}"] = save_linear(getattr(layer, part), f"{i}.{part}", tensors)
        return tensors, meta

    @classmethod
    def from_packed(cls, config, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], max_len: int) -> "FastDecoder":
        decoder = cls.__new__(cls)
        decoder._shape(config, meta["kind"], max_len)
        decoder.layers = []
        for i in range(decoder.n_layers):
            layer = _Layer()
            layer.ln1, layer.ln2 = tensors[f"{i}.ln1"], tensors[f"{i}.ln2"]
            for part in ("qkv", "o", "gate_up", "down"):
                setattr(layer, part, load_linear(meta[f"{i}.{part}"], f"{i}.{part}", tensors))
            decoder.layers.append(layer)
        decoder.norm = tensors["norm"]
        decoder.head = load_linear(meta["head"], "head", tensors)
        decoder.embed = {"head-rows": None, "head-weight": getattr(decoder.head, "weight", None),
                         "head-dense-weight": getattr(getattr(decoder.head, "dense", None), "weight", None)}.get(
            meta["embed"], tensors.get("embed"))
        decoder._tables(config)
        return decoder

    @property
    def weight_bytes(self) -> int:
        total = self.head.nbytes + self._own_embed_bytes()
        for layer in self.layers:
            total += layer.qkv.nbytes + layer.o.nbytes + layer.gate_up.nbytes + layer.down.nbytes
        return total

    @property
    def decode_weight_bytes(self) -> int:
        """Bytes streamed per generated token (the int layers, not their bf16 prompt copy)."""
        total = getattr(self.head, "decode", self.head).nbytes + self._own_embed_bytes()
        for layer in self.layers:
            total += sum(getattr(m, "decode", m).nbytes for m in (layer.qkv, layer.o, layer.gate_up, layer.down))
        return total

    def _own_embed_bytes(self) -> int:
        """The embedding table's bytes when it is not a view of the head's weights."""
        if self.embed is None or any(self.embed is getattr(m, "weight", None)
                                     for m in (self.head, getattr(self.head, "dense", None))):
            return 0
        return self.embed.numel() * self.embed.element_size()

    def reset(self) -> None:
        self.tokens = []

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        if self.embed is None:
            return self.head.rows(ids)  # type: ignore[union-attr]
        return self.embed[ids].float()

    @torch.inference_mode()
    def forward(self, ids: list[int], every: bool = False) -> torch.Tensor:
        """Run ``ids`` after the cached tokens; logits (vocab,) fp32 for the last position, or
        (len(ids), vocab) for every position with ``every``."""
        p0, T = len(self.tokens), len(ids)
        n = p0 + T
        if n > self.max_len:
            raise ValueError(f"{n} tokens exceed the cache of {self.max_len}")
        H, KV, D = self.n_heads, self.n_kv, self.head_dim
        # Scoring a given text runs on the bf16 copy whatever its length, like the prompt before it
        # (a short text would otherwise take the int kernels: its score would shift with its length).
        dense = every and T > 1
        x = self._embed(torch.tensor(ids, dtype=torch.long))  # (T, C)
        cos, sin = self.cos[p0:n, None], self.sin[p0:n, None]  # (T, 1, D)
        mask = None
        if T > 1 and p0 > 0:  # causal, shifted by the cached prefix
            mask = torch.ones(T, n, dtype=torch.bool).tril(diagonal=p0)
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), layer.ln1, self.eps)
            qkv = _mm(layer.qkv, h, dense).float()  # (T, (H + 2 KV) D)
            qk = qkv[:, : self.q_size + self.kv_size].view(T, H + KV, D)
            qk = torch.addcmul(qk * cos, torch.roll(qk, D // 2, dims=-1), sin)  # RoPE on q and k at once
            self.k_cache[i, :, p0:n] = qk[:, H:].transpose(0, 1)
            self.v_cache[i, :, p0:n] = qkv[:, self.q_size + self.kv_size :].view(T, KV, D).transpose(0, 1)
            k, v = self.k_cache[i, :, :n], self.v_cache[i, :, :n]  # (KV, n, D)
            if T == 1:
                q = qk[0, :H].view(KV, H // KV, D)  # query heads grouped by the K/V head they share
                scores = torch.bmm(q, k.transpose(1, 2))  # (KV, G, n); the 1/sqrt(D) is in W_q
                att = torch.bmm(torch.softmax(scores, dim=-1), v).view(1, H * D)
            else:
                q = qk[:, :H].transpose(0, 1)  # (H, T, D)
                att = F.scaled_dot_product_attention(
                    q[None], k[None], v[None], attn_mask=mask, is_causal=mask is None, scale=1.0, enable_gqa=KV != H,
                )[0].transpose(0, 1).reshape(T, H * D)
            x.add_(_mm(layer.o, att, dense))  # int kernels return bf16; the residual stream stays fp32
            h = F.rms_norm(x, (self.hidden,), layer.ln2, self.eps)
            gu = _mm(layer.gate_up, h, dense)  # (T, 2 I), in the kernel's dtype
            x.add_(_mm(layer.down, F.silu(gu[:, : self.inter]) * gu[:, self.inter :], dense))
        self.tokens.extend(ids)
        h = F.rms_norm(x if every else x[-1:], (self.hidden,), self.norm, self.eps)
        if every and isinstance(self.head, PrefillDenseLinear):  # many rows: the bf16 copy, in one product
            return self.head.dense(h).float()
        if every and isinstance(self.head, Int8Linear):  # row by row: torch's int8 kernel segfaults on 4+ rows of a 49k-row head
            return torch.cat([self.head(h[i : i + 1]).float() for i in range(T)])
        logits = self.head(h).float()  # every row in one product (a dense head streams its weights once)
        return logits if every else logits[0]

    def prefill(self, ids: list[int], chunk: int = 1024) -> torch.Tensor:
        """Logits after ``ids`` from an empty cache; long prompts go in chunks (bounded activations).

        The cache is not reused across prompts on purpose: a shared prefix computed in another chunking
        can differ in the last bits (bf16/int kernels), and the same prompt must give the same answer."""
        self.tokens = []
        logits = None
        for start in range(0, len(ids), chunk):
            logits = self.forward(ids[start : start + chunk])
        return logits

    def step(self, token: int) -> torch.Tensor:
        return self.forward([token])
