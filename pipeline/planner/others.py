"""Estimates for the sentence embedder (BERT-style encoder) and the T5 / mT5 encoder-decoders:
inference here, training through ``encdec``. Whisper is in ``whisper``."""

from __future__ import annotations

from dataclasses import asdict

from syllabus_common.errors import ConfigError
from pipeline.planner.catalog import EncDecArch, EncoderArch
from pipeline.planner.types import Component, Estimate, Settings, _n


def _float_bytes(precision: str, what: str) -> tuple[float, float, str]:
    """(bytes per linear weight, bytes per other weight and activation, label). CTranslate2's int8 keeps
    one fp32 scale per output row (ctranslate2 quantization docs); the rest runs in 16 bit."""
    low = precision.lower()
    if low in ("fp16", "bf16", "float16", "int8_float16", "int8_bfloat16"):
        return (1.0, 2.0, "int8+16") if low.startswith("int8") else (2.0, 2.0, low)
    if low in ("fp32", "float32"):
        return 4.0, 4.0, "fp32"
    if low in ("int8", "int8_float32"):
        return 1.0, 4.0, "int8"
    raise ConfigError(f"{what} precision must be fp32, fp16, bf16, int8 or int8_float16, not {precision!r}")


def estimate_embedder(arch: EncoderArch, st: Settings) -> Estimate:
    """A BERT-style encoder embedding a batch of texts (no grad, eager attention).

    Devlin et al. 2019 architecture; one layer's working set at a time: hidden states (several h-wide
    tensors), the MLP's intermediate (I) and the b·heads·s² attention scores with their softmax.
    """
    _, p, label = _float_bytes(st.precision, "embedder")
    s = min(st.seq, arch.max_tokens)
    b = st.batch
    comps = [
        Component("weights", f"weights ({label})", int(arch.params() * p), "Parameter", f"{_n(arch.params())} × {p:g} B",
                  "Devlin et al. 2019; sentence-transformers model card"),
        Component("activations", "forward working set", int(b * s * (6 * arch.hidden + 2 * arch.intermediate) * p
                                                           + b * arch.heads * s * s * p * 2),
                  "Activation", f"{b} × {s} × (6h + 2I) × {p:g} B + {b}·{arch.heads}·{s}²·2·{p:g} B", "one layer at a time"),
    ]
    return Estimate(arch.name, arch.params(), asdict(st), label, comps, "forward")


def estimate_encoder(arch: EncoderArch | EncDecArch, st: Settings) -> Estimate:
    """An embedder or a T5: inference here, training (full, LoRA) through ``encdec``."""
    if st.mode != "inference":
        from pipeline.planner.encdec import estimate_seq2seq_training

        _, _, label = _float_bytes(st.precision, arch.name)
        if label.startswith("int8"):
            raise ConfigError(f"training {arch.name} takes fp32, bf16 or fp16 weights, not {st.precision}")
        return estimate_seq2seq_training(arch, st, label)
    if isinstance(arch, EncDecArch):
        return estimate_t5(arch, st)
    return estimate_embedder(arch, st)


def estimate_t5(arch: EncDecArch, st: Settings) -> Estimate:
    """T5 / mT5 generation (Raffel et al. 2020): the encoder runs once over ``seq`` tokens (one layer's
    working set at a time: hidden states, the MLP's d_ff, and the eager attention scores with their
    fp32 softmax, T5 having no SDPA path because of its position bias), then the decoder keeps per layer
    the cross-attention K/V of the encoder output and its self-attention cache up to ``target_seq``
    tokens (Pope et al. 2022 §2 accounting)."""
    _, p, label = _float_bytes(st.precision, arch.name)
    lin_b = 1.0 if label.startswith("int8") else p
    b, s, S, inner = st.batch, st.seq, st.target_seq or st.seq, arch.inner
    n_lin = (arch.encoder_layers + 2 * arch.decoder_layers) * 4 * arch.d_model * inner + \
        (arch.encoder_layers + arch.decoder_layers) * arch.ff_params() + arch.vocab * arch.d_model * (0 if arch.tied else 1)
    other = arch.params() - n_lin
    work = b * s * (6 * arch.d_model + (2 if arch.gated else 1) * arch.d_ff) * p + b * arch.heads * s * s * (4 + p)
    comps = [
        Component("weights", f"weights ({label})", int(n_lin * lin_b + other * p), "Parameter",
                  f"{_n(n_lin)} linear × {lin_b:g} B + {_n(other)} others × {p:g} B", "Raffel et al. 2020"),
        Component("activations", "encoder working set", int(work), "Activation",
                  f"{b} × {s} × (6d + d_ff) × {p:g} B + {b}·{arch.heads}·{s}²·(4+{p:g}) B", "one layer at a time, eager scores"),
        Component("kv_cache", "cross-attention K/V", int(2 * arch.decoder_layers * b * s * inner * p), "Activation",
                  f"2 × {arch.decoder_layers} × {b} × {s} × {inner} × {p:g} B", "Pope et al. 2022 §2"),
        Component("self_kv", "self-attention KV cache", int(2 * arch.decoder_layers * b * S * inner * p), "Activation",
                  f"2 × {arch.decoder_layers} × {b} × {S} × {inner} × {p:g} B", "Pope et al. 2022 §2"),
        Component("logits", "logits (last token)", b * arch.vocab * 4, "Activation", f"{b} × {arch.vocab} × 4 B",
                  "generate(): fp32 scores"),
    ]
    return Estimate(arch.name, arch.params(), asdict(st), label, comps, "encoder + decoding")
