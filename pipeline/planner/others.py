"""Estimates for the two non-LLM stages: Whisper (speech) and the sentence embedder. Inference only."""

from __future__ import annotations

from dataclasses import asdict

from syllabus_common.errors import ConfigError
from pipeline.planner.catalog import EncoderArch, WhisperArch
from pipeline.planner.estimator import Component, Estimate, Settings, _n, runtime_components


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


def whisper_linear_params(arch: WhisperArch) -> int:
    d, f = arch.d_model, arch.ffn
    return arch.encoder_layers * (4 * d * d + 2 * d * f) + arch.decoder_layers * (8 * d * d + 2 * d * f)


def estimate_whisper(arch: WhisperArch, st: Settings) -> Estimate:
    """Whisper decoding one 30-s window per batch item with beam search.

    Architecture: Radford et al. 2022 ("Robust Speech Recognition via Large-Scale Weak Supervision")
    §2.2 and Table 1; encoder over 1500 positions, decoder over at most 448 tokens. Each decoder layer
    keeps the cross-attention keys/values of the encoder output, 2·1500·d per sequence (Pope et al. 2022
    §2 KV-cache accounting): transformers and openai-whisper repeat them for every beam
    (transformers `_expand_inputs_for_generation`); CTranslate2 (faster-whisper) keeps one copy per
    batch item. The self-attention cache is counted at its bound, 448 positions per beam (prompt from
    the previous window + output), so long windows never surprise.
    """
    if st.mode != "inference":
        raise ConfigError("Whisper estimates cover inference (transcription) only")
    lin_b, p, label = _float_bytes(st.precision, "Whisper")
    n_lin = whisper_linear_params(arch)
    other = arch.params() - n_lin
    d, T, S = arch.d_model, arch.audio_ctx, arch.text_ctx
    b, beams = st.batch, st.batch * st.beam
    per_beam_cross = st.runtime in ("transformers", "openai")
    cross_seqs = beams if per_beam_cross else b
    lin_scale = 4 * (arch.encoder_layers * (4 * d + d + arch.ffn) + arch.decoder_layers * (8 * d + d + arch.ffn)) if lin_b == 1 else 0
    runtime = "transformers/openai-whisper" if per_beam_cross else "CTranslate2 (faster-whisper)"
    comps = [
        Component("weights", f"weights ({label})", int(n_lin * lin_b + other * p + lin_scale), "Parameter",
                  f"{_n(n_lin)} linear × {lin_b:g} B + {_n(other)} others × {p:g} B", "Radford et al. 2022 Table 1"),
        Component("activations", "encoder working set", int(b * (3000 * d * p * 2 + T * d * p * 6 + arch.heads * T * T * p)),
                  "Activation", f"{b} × (conv 2·3000·d + 6·1500·d + heads·1500²) × {p:g} B",
                  "one encoder layer at a time; one score matrix materialised (softmax in place)"),
        Component("encoder_out", "encoder output", int(b * T * d * p), "Activation", f"{b} × 1500 × {d} × {p:g} B",
                  "kept for the decoder"),
        Component("kv_cache", "cross-attention K/V", int(2 * arch.decoder_layers * cross_seqs * T * d * p), "Activation",
                  f"2 × {arch.decoder_layers} layers × {cross_seqs} {'beams' if per_beam_cross else 'sequences'} × 1500 × {d} × {p:g} B ({runtime})",
                  "Radford et al. 2022; Pope et al. 2022"),
        Component("self_kv", "self-attention KV cache", int(2 * arch.decoder_layers * beams * S * d * p), "Activation",
                  f"2 × {arch.decoder_layers} × {beams} beams × 448 × {d} × {p:g} B (upper bound)", "Pope et al. 2022 §2"),
        Component("logits", "logits", beams * arch.vocab * 4, "Activation", f"{beams} × {arch.vocab} × 4 B", "fp32 log-probs per beam"),
    ]
    if st.encoder_copy:
        comps.insert(1, Component("weights_encoder", "weights, encoder instance", comps[0].bytes, "Parameter",
                                  "the same weights loaded once more",
                                  "Syllabus on CPU: encoder on every core, decoder on one thread (ingest.asr.faster)"))
    est = Estimate(arch.name, arch.params(), asdict(st), label, comps, "decoding")
    est.components += runtime_components(est.components, st.overhead)
    return est


def estimate_embedder(arch: EncoderArch, st: Settings) -> Estimate:
    """A BERT-style encoder embedding a batch of texts (no grad, eager attention).

    Devlin et al. 2019 architecture; one layer's working set at a time: hidden states (several h-wide
    tensors), the MLP's intermediate (I) and the b·heads·s² attention scores with their softmax.
    """
    if st.mode != "inference":
        raise ConfigError("embedder estimates cover inference only")
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
    est = Estimate(arch.name, arch.params(), asdict(st), label, comps, "forward")
    est.components += runtime_components(est.components, st.overhead)
    return est
