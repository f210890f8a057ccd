"""Whisper (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak Supervision" §2.2 and
Table 1): transcription under each runtime, and fine-tuning (full, LoRA; through ``encdec``).

Runtimes: ``ctranslate2`` (faster-whisper, Syllabus's own; the default), ``openai`` (openai-whisper,
PyTorch) and ``transformers`` (WhisperForConditionalGeneration, PyTorch). The PyTorch runtimes carry a
PyTorch CUDA context (``overhead.CUDA_CONTEXT_MIB``) and repeat the cross-attention keys/values of
the encoder output for every beam (transformers ``_expand_inputs_for_generation``; openai-whisper
repeats the audio features per beam before the decoder); CTranslate2 keeps one copy per batch item.
"""

from __future__ import annotations

from dataclasses import asdict

from syllabus_common.errors import ConfigError
from pipeline.planner.catalog import WhisperArch
from pipeline.planner.overhead import runtime_components
from pipeline.planner.types import Component, Estimate, Settings, _n
from pipeline.planner.others import _float_bytes

# openai-whisper decodes at most n_text_ctx // 2 = 224 tokens per 30-s window (decoding.py
# ``sample_len``) after a prompt of at most 223 previous-text tokens; faster-whisper caps prompt +
# output at max_length = 448. Its batched pipeline sends no previous-text prompt (4 special tokens).
SAMPLE_LEN = 224
BATCHED_PROMPT = 4
# English speech for comparison: fast speech is about 200 words a minute (100 words per window) and
# Whisper's English BPE (GPT-2's) about 1.33 tokens per word ("100 tokens ≈ 75 words", OpenAI's
# tokenizer help): ~133 tokens. Pass it as window_tokens for English audio; other languages and
# scripts tokenize denser, hence the all-language default SAMPLE_LEN.
ENGLISH_WINDOW_TOKENS = 133
# CTranslate2's CUDA allocator (cub CachingDeviceAllocator, src/cuda/allocator.cc): bins grow by 4 up to
# 4^12 B; a larger block is allocated exactly and freed at once, never cached.
CT2_MAX_BIN = 4**12


def whisper_linear_params(arch: WhisperArch) -> int:
    d, f = arch.d_model, arch.ffn
    return arch.encoder_layers * (4 * d * d + 2 * d * f) + arch.decoder_layers * (8 * d * d + 2 * d * f)


def runtime_of(st: Settings) -> str:
    return "ctranslate2" if st.runtime == "auto" else st.runtime


def decoder_tokens(arch: WhisperArch, batch: int, window: int | None = None) -> tuple[int, str]:
    """Token positions of self-attention cache summed over the batch (per beam), at the peak.

    One window at a time (batch 1): prompt + output up to the 448-token bound. A batch of windows
    (faster-whisper BatchedInferencePipeline, ``transformers`` pipelines): the decoders advance in
    lock step and CTranslate2 drops a batch item from the state when it finishes (transformers keeps
    it but stops growing the others' share only at the longest), so at step t the cache holds
    alive(t) × t positions. Every window within openai-whisper's own per-window bound (4 + 224; or
    ``window`` tokens when the audio's language is known) or a single runaway window at the 448
    bound: max(b × 228, 448). Longer outputs per window in the whole batch are beyond what any
    runtime generates without a fallback (compression-ratio check).
    """
    if batch == 1:
        return arch.text_ctx, f"{arch.text_ctx} (prompt + output bound)"
    per = BATCHED_PROMPT + min(window or SAMPLE_LEN, arch.text_ctx - BATCHED_PROMPT)
    return max(batch * per, arch.text_ctx), f"max({batch} × {per}, {arch.text_ctx})"


def estimate_whisper(arch: WhisperArch, st: Settings) -> Estimate:
    """Whisper decoding 30-s windows (batch) with beam search, or fine-tuning it."""
    runtime = runtime_of(st)
    if st.mode != "inference":
        from pipeline.planner.encdec import estimate_seq2seq_training

        if st.mode == "qlora" or st.precision.lower().startswith(("int8", "nf4", "fp4")):
            raise ConfigError("Whisper fine-tuning takes fp32, bf16 or fp16 weights with --mode full or lora")
        _, _, label = _float_bytes(st.precision, "Whisper")
        est = estimate_seq2seq_training(arch, st, label)
        est.components += runtime_components(est.components, st, "torch")
        est.notes.append("fine-tuning runs on PyTorch (transformers Seq2SeqTrainer): decoder labels up to "
                         f"{st.target_seq or arch.text_ctx} tokens, encoder over 30 s (1500 positions)")
        return est
    lin_b, p, label = _float_bytes(st.precision, "Whisper")
    if runtime != "ctranslate2" and label.startswith("int8"):
        raise ConfigError(f"the {runtime} runtime runs fp32/fp16 weights; int8 is CTranslate2's (--runtime ctranslate2)")
    n_lin = whisper_linear_params(arch)
    other = arch.params() - n_lin
    emb = arch.vocab * arch.d_model
    # CTranslate2 quantizes every variable named "weight" (WhisperModel::is_quantizable), the token
    # embedding included (its decoder projection is the same variable): int8 + one fp32 scale per row
    # (layers/common.cc Embeddings, weight_scale). Convolutions and norms stay in the float type.
    emb_b = 1 + 4 / arch.d_model if lin_b == 1 else p
    d, T = arch.d_model, arch.audio_ctx
    b, beams = st.batch, st.batch * st.beam
    per_beam_cross = runtime in ("transformers", "openai")
    cross_seqs = beams if per_beam_cross else b
    lin_scale = 4 * (arch.encoder_layers * (4 * d + d + arch.ffn) + arch.decoder_layers * (8 * d + d + arch.ffn)) if lin_b == 1 else 0
    encoder_ws = int(b * (3000 * d * p * 2 + T * d * p * 6 + arch.heads * T * T * p))
    decoder_state = [
        Component("kv_cache", "cross-attention K/V", int(2 * arch.decoder_layers * cross_seqs * T * d * p), "Activation",
                  f"2 × {arch.decoder_layers} layers × {cross_seqs} {'beams' if per_beam_cross else 'sequences'} × 1500 × {d} × {p:g} B ({runtime})",
                  "Radford et al. 2022; Pope et al. 2022"),
        *_self_attention_state(arch, st, p, runtime)]
    comps = [Component("weights", f"weights ({label})", int(n_lin * lin_b + emb * emb_b + (other - emb) * p + lin_scale),
                       "Parameter", f"{_n(n_lin)} linear × {lin_b:g} B + {_n(emb)} embedding × {emb_b:.3g} B + "
                       f"{_n(other - emb)} others × {p:g} B", "Radford et al. 2022 Table 1; CTranslate2 int8 quantization"),
             Component("encoder_out", "encoder output", int(b * T * d * p), "Activation", f"{b} × 1500 × {d} × {p:g} B",
                       "kept for the decoder")]
    if st.encoder_copy:
        comps.insert(1, Component("weights_encoder", "weights, encoder instance", comps[0].bytes, "Parameter",
                                  "the same weights loaded once more",
                                  "Syllabus on CPU: encoder on every core, decoder on one thread (ingest.asr.faster)"))
    # The encoder's working buffers are freed (and reused by the caching allocator) before decoding
    # starts: the peak is the larger of the two phases, not their sum.
    if encoder_ws > sum(c.bytes for c in decoder_state):
        comps.append(Component("activations", "encoder working set", encoder_ws, "Activation",
                               f"{b} × (conv 2·3000·d + 6·1500·d + heads·1500²) × {p:g} B",
                               "one encoder layer at a time; one score matrix materialised"))
        phase = "encoder"
    else:
        comps += decoder_state
        phase = "decoding"
    est = Estimate(arch.name, arch.params(), asdict(st), label, comps, phase,
                   [f"runtime {runtime}" + ("" if st.runtime != "auto" else " (the default; --runtime openai or transformers for PyTorch)")])
    if runtime == "ctranslate2":
        est.components += runtime_components(est.components, st, "ctranslate2", _ct2_cacheable(comps, arch, st, p))
    else:
        est.components += runtime_components(est.components, st, "torch")
    return est


def _self_attention_state(arch: WhisperArch, st: Settings, p: float, runtime: str) -> list[Component]:
    """The decoder's self-attention cache, how it grows, and the step's logits.

    The cache holds beams × (positions summed over the batch, ``decoder_tokens``) per layer. CTranslate2
    grows it one step at a time (layers/attention.cc: ``ops::Concat`` of the cached keys and the
    step's into a new buffer) and gathers it by beam every step (decoder.cc ``gather``: through a
    temporary), so one layer's K or V exists twice for a moment. Its logits are in the decoder's
    output type (decoding.cc ``StorageView logits(dtype, device)``, log-softmax in place); the
    PyTorch runtimes take log-softmax of ``logits.float()``.
    """
    L, d = arch.decoder_layers, arch.d_model
    tokens, tok_formula = decoder_tokens(arch, st.batch, st.window_tokens)
    cache = int(2 * L * st.beam * tokens * d * p)
    logit_b = p if runtime == "ctranslate2" else 4
    beams = st.batch * st.beam
    out = [Component("self_kv", "self-attention KV cache", cache, "Activation",
                     f"2 × {L} × {st.beam} beams × {tok_formula} tokens × {d} × {p:g} B",
                     "Pope et al. 2022 §2; openai-whisper sample_len; CTranslate2 drops finished batch items"),
           Component("logits", "logits", int(beams * arch.vocab * logit_b), "Activation",
                     f"{beams} × {arch.vocab} × {logit_b:g} B", "log-probs per beam, one step")]
    if runtime == "ctranslate2":
        out.insert(1, Component("kv_growth", "one layer's K or V copied as it grows", cache // (2 * L), "Temp",
                                f"self-attention cache ÷ (2 × {L})",
                                "CTranslate2 attention.cc Concat; decoder.cc gather through a temporary"))
    return out


def _ct2_cacheable(comps: list[Component], arch: WhisperArch, st: Settings, p: float) -> int:
    """Bytes the cub caching allocator can hold on to at the peak: only freed blocks up to its largest
    bin (``CT2_MAX_BIN``, 16 MiB) are cached. In decoding those are the previous steps' cache
    buffers when one layer's K (or V) fits a bin, and the step's logits; in the encoder, the freed
    per-layer tensors when the widest (batch × 1500 × ffn) fits one."""
    by_key = {c.key: c.bytes for c in comps}
    cacheable = 0
    if "self_kv" in by_key and by_key["self_kv"] // (2 * arch.decoder_layers) <= CT2_MAX_BIN:
        cacheable += by_key["self_kv"]
    if by_key.get("logits", 0) <= CT2_MAX_BIN:
        cacheable += by_key.get("logits", 0)
    if "activations" in by_key and st.batch * arch.audio_ctx * arch.ffn * p <= CT2_MAX_BIN:
        cacheable += by_key["activations"]
    return cacheable
