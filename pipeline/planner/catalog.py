"""Architecture numbers of the models a user is likely to run, and the GPU cards they run on.

Every number is the one in the model's published ``config.json`` (Hugging Face hub, named in
``hub_id``); parameter counts are computed from them (``params()``), never typed in. A model that is
not here can be described by a local ``config.json``, an HF model folder or a GGUF file
(``pipeline.planner.readers``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from syllabus_common.errors import ConfigError


@dataclass(frozen=True)
class DecoderArch:
    """A decoder-only transformer (Llama, Qwen2, Mistral, Gemma, Phi-3, SmolLM2 ...)."""

    name: str
    hidden: int  # d_model
    layers: int
    heads: int  # query heads
    kv_heads: int  # < heads: grouped-query attention (Ainslie et al. 2023); 1: multi-query
    intermediate: int  # MLP width
    vocab: int
    max_context: int  # tokens
    tied: bool = False  # output layer shares the embedding matrix
    head_dim: int | None = None  # default hidden // heads (Gemma sets it explicitly)
    qkv_bias: bool = False  # Qwen2: biases on q, k, v
    gated_mlp: bool = True  # SwiGLU/GeGLU: gate, up, down (3 matrices); else up, down (2)
    norms_per_layer: int = 2  # Gemma 2/3 add a post-norm after attention and MLP: 4
    qk_norm: bool = False  # Gemma 3: RMSNorm on q and k (head_dim weights each)
    fused_qkv: bool = False  # Phi-3: one qkv_proj instead of q/k/v_proj
    fused_gate_up: bool = False  # Phi-3: one gate_up_proj (out 2I) instead of gate/up_proj
    sliding_window: int | None = None  # local attention window (tokens) of the local layers
    global_every: int = 1  # 1: all layers global; 2: Gemma 2 (alternate); 6: Gemma 3 (5 local : 1 global)
    model_type: str = "llama"  # transformers model_type used to build it for --measure
    hub_id: str | None = None
    family: str = ""
    params_override: int | None = None  # --params 7B: the count given, on a template's shape
    file_weight_bytes: int | None = None  # a GGUF file's tensor bytes, exact
    file_precision: str | None = None  # that file's type (Q4_K_M, ...)
    kind: str = field(default="decoder", init=False)

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hd

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one block, by the HF module name."""
        if self.fused_qkv:
            shapes = {"qkv_proj": (self.hidden, self.q_dim + 2 * self.kv_dim)}
        else:
            shapes = {"q_proj": (self.hidden, self.q_dim), "k_proj": (self.hidden, self.kv_dim),
                      "v_proj": (self.hidden, self.kv_dim)}
        shapes["o_proj"] = (self.q_dim, self.hidden)
        if self.fused_gate_up:
            shapes["gate_up_proj"] = (self.hidden, 2 * self.intermediate)
        else:
            if self.gated_mlp:
                shapes["gate_proj"] = (self.hidden, self.intermediate)
            shapes["up_proj"] = (self.hidden, self.intermediate)
        shapes["down_proj"] = (self.intermediate, self.hidden)
        return shapes

    def input_consumers(self) -> tuple[int, int]:
        """Linear modules reading the attention input and the MLP input (each casts it under autocast)."""
        return (1 if self.fused_qkv else 3), (1 if self.fused_gate_up or not self.gated_mlp else 2)

    def block_linear_params(self) -> int:
        return sum(i * o for i, o in self.linear_shapes().values())

    def block_params(self) -> int:
        bias = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        qk_norm = 2 * self.hd if self.qk_norm else 0
        return self.block_linear_params() + bias + self.norms_per_layer * self.hidden + qk_norm

    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def head_params(self) -> int:
        """The output layer's own parameters (0 when tied to the embedding)."""
        return 0 if self.tied else self.vocab * self.hidden

    def params(self) -> int:
        """Total parameters, counted the way ``sum(p.numel() for p in model.parameters())`` does."""
        return self.params_override or self.shape_params()

    def shape_params(self) -> int:
        """Parameters implied by the shape (differs from params() only under --params)."""
        return self.embedding_params() + self.layers * self.block_params() + self.hidden + self.head_params()

    @property
    def scale(self) -> float:
        """params() / shape_params(): how far --params stretches the template's weights."""
        return self.params() / self.shape_params()

    def local_layers(self) -> int:
        """Layers with sliding-window attention (their KV cache stops growing at the window)."""
        if not self.sliding_window or self.global_every <= 1:
            return 0
        return self.layers - self.layers // self.global_every


@dataclass(frozen=True)
class WhisperArch:
    """Whisper (Radford et al. 2022): conv front end, encoder over 30 s of audio, text decoder."""

    name: str
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    vocab: int
    n_mels: int = 80
    audio_ctx: int = 1500  # encoder positions for 30 s (100 mel frames/s, conv stride 2)
    text_ctx: int = 448  # decoder positions
    hub_id: str | None = None
    family: str = "whisper"
    kind: str = field(default="whisper", init=False)

    @property
    def ffn(self) -> int:
        return 4 * self.d_model

    def params(self) -> int:
        """Counted as in openai/whisper model.py (sinusoidal encoder positions are a buffer there,
        a frozen parameter in transformers; both are counted here, as transformers counts them)."""
        d, f = self.d_model, self.ffn
        attn = 4 * d * d + 3 * d  # q, k, v, out; k has no bias
        mlp = 2 * d * f + f + d
        ln = 2 * d
        enc_layer = attn + mlp + 2 * ln
        dec_layer = 2 * attn + mlp + 3 * ln
        conv = self.n_mels * d * 3 + d + d * d * 3 + d
        encoder = conv + self.audio_ctx * d + self.encoder_layers * enc_layer + ln
        decoder = self.vocab * d + self.text_ctx * d + self.decoder_layers * dec_layer + ln
        return encoder + decoder


@dataclass(frozen=True)
class EncoderArch:
    """A BERT-style sentence embedder (all-MiniLM-L6-v2)."""

    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    max_tokens: int  # what sentence-transformers feeds it (max_seq_length)
    pooler: bool = True
    hub_id: str | None = None
    family: str = "bert"
    kind: str = field(default="encoder", init=False)

    def params(self) -> int:
        h, i = self.hidden, self.intermediate
        emb = (self.vocab + self.max_positions + 2) * h + 2 * h  # word, position, token-type, LayerNorm
        layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
        return emb + self.layers * layer + ((h * h + h) if self.pooler else 0)


Arch = DecoderArch | WhisperArch | EncoderArch


def _d(name, hidden, layers, heads, kv, inter, vocab, ctx, **kw) -> DecoderArch:
    return DecoderArch(name, hidden, layers, heads, kv, inter, vocab, ctx, **kw)


# Numbers from each hub_id's config.json (hidden_size, num_hidden_layers, num_attention_heads,
# num_key_value_heads, intermediate_size, vocab_size, max_position_embeddings, tie_word_embeddings).
MODELS: dict[str, Arch] = {
    m.name: m
    for m in [
        _d("llama-2-7b", 4096, 32, 32, 32, 11008, 32000, 4096, hub_id="meta-llama/Llama-2-7b-hf", family="llama2"),
        _d("llama-2-13b", 5120, 40, 40, 40, 13824, 32000, 4096, hub_id="meta-llama/Llama-2-13b-hf", family="llama2"),
        _d("llama-2-70b", 8192, 80, 64, 8, 28672, 32000, 4096, hub_id="meta-llama/Llama-2-70b-hf", family="llama2"),
        _d("llama-3-8b", 4096, 32, 32, 8, 14336, 128256, 8192, hub_id="meta-llama/Meta-Llama-3-8B", family="llama3"),
        _d("llama-3-70b", 8192, 80, 64, 8, 28672, 128256, 8192, hub_id="meta-llama/Meta-Llama-3-70B", family="llama3"),
        _d("llama-3.1-8b", 4096, 32, 32, 8, 14336, 128256, 131072, hub_id="meta-llama/Llama-3.1-8B-Instruct", family="llama3"),
        _d("llama-3.1-70b", 8192, 80, 64, 8, 28672, 128256, 131072, hub_id="meta-llama/Llama-3.1-70B-Instruct", family="llama3"),
        _d("llama-3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072, tied=True, head_dim=64,
           hub_id="meta-llama/Llama-3.2-1B-Instruct", family="llama3"),
        _d("llama-3.2-3b", 3072, 28, 24, 8, 8192, 128256, 131072, tied=True, head_dim=128,
           hub_id="meta-llama/Llama-3.2-3B-Instruct", family="llama3"),
        _d("llama-3.3-70b", 8192, 80, 64, 8, 28672, 128256, 131072, hub_id="meta-llama/Llama-3.3-70B-Instruct", family="llama3"),
        _d("qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, 32768, tied=True, qkv_bias=True, model_type="qwen2",
           hub_id="Qwen/Qwen2.5-0.5B-Instruct", family="qwen2.5"),
        _d("qwen2.5-1.5b", 1536, 28, 12, 2, 8960, 151936, 32768, tied=True, qkv_bias=True, model_type="qwen2",
           hub_id="Qwen/Qwen2.5-1.5B-Instruct", family="qwen2.5"),
        _d("qwen2.5-3b", 2048, 36, 16, 2, 11008, 151936, 32768, tied=True, qkv_bias=True, model_type="qwen2",
           hub_id="Qwen/Qwen2.5-3B-Instruct", family="qwen2.5"),
        _d("qwen2.5-7b", 3584, 28, 28, 4, 18944, 152064, 32768, qkv_bias=True, model_type="qwen2",
           hub_id="Qwen/Qwen2.5-7B-Instruct", family="qwen2.5"),
        _d("qwen2.5-14b", 5120, 48, 40, 8, 13824, 152064, 32768, qkv_bias=True, model_type="qwen2",
           hub_id="Qwen/Qwen2.5-14B-Instruct", family="qwen2.5"),
        _d("qwen2.5-32b", 5120, 64, 40, 8, 27648, 152064, 32768, qkv_bias=True, model_type="qwen2",
           hub_id="Qwen/Qwen2.5-32B-Instruct", family="qwen2.5"),
        _d("qwen2.5-72b", 8192, 80, 64, 8, 29568, 152064, 32768, qkv_bias=True, model_type="qwen2",
           hub_id="Qwen/Qwen2.5-72B-Instruct", family="qwen2.5"),
        _d("mistral-7b", 4096, 32, 32, 8, 14336, 32768, 32768, model_type="mistral",
           hub_id="mistralai/Mistral-7B-Instruct-v0.3", family="mistral"),
        _d("gemma-2-2b", 2304, 26, 8, 4, 9216, 256000, 8192, tied=True, head_dim=256, norms_per_layer=4,
           sliding_window=4096, global_every=2, model_type="gemma2", hub_id="google/gemma-2-2b-it", family="gemma2"),
        _d("gemma-2-9b", 3584, 42, 16, 8, 14336, 256000, 8192, tied=True, head_dim=256, norms_per_layer=4,
           sliding_window=4096, global_every=2, model_type="gemma2", hub_id="google/gemma-2-9b-it", family="gemma2"),
        _d("gemma-2-27b", 4608, 46, 32, 16, 36864, 256000, 8192, tied=True, head_dim=128, norms_per_layer=4,
           sliding_window=4096, global_every=2, model_type="gemma2", hub_id="google/gemma-2-27b-it", family="gemma2"),
        _d("gemma-3-1b", 1152, 26, 4, 1, 6912, 262144, 32768, tied=True, head_dim=256, norms_per_layer=4,
           qk_norm=True, sliding_window=512, global_every=6, model_type="gemma3_text",
           hub_id="google/gemma-3-1b-it", family="gemma3"),
        # Gemma 3 4B/12B/27B: the language model only (the SigLIP vision tower adds ~0.4B).
        _d("gemma-3-4b", 2560, 34, 8, 4, 10240, 262208, 131072, tied=True, head_dim=256, norms_per_layer=4,
           qk_norm=True, sliding_window=1024, global_every=6, model_type="gemma3_text",
           hub_id="google/gemma-3-4b-it", family="gemma3"),
        _d("gemma-3-12b", 3840, 48, 16, 8, 15360, 262208, 131072, tied=True, head_dim=256, norms_per_layer=4,
           qk_norm=True, sliding_window=1024, global_every=6, model_type="gemma3_text",
           hub_id="google/gemma-3-12b-it", family="gemma3"),
        _d("gemma-3-27b", 5376, 62, 32, 16, 21504, 262208, 131072, tied=True, head_dim=128, norms_per_layer=4,
           qk_norm=True, sliding_window=1024, global_every=6, model_type="gemma3_text",
           hub_id="google/gemma-3-27b-it", family="gemma3"),
        _d("phi-3-mini", 3072, 32, 32, 32, 8192, 32064, 4096, model_type="phi3", fused_qkv=True, fused_gate_up=True,
           hub_id="microsoft/Phi-3-mini-4k-instruct", family="phi3"),
        _d("phi-3-medium", 5120, 40, 40, 10, 17920, 32064, 4096, model_type="phi3", fused_qkv=True, fused_gate_up=True,
           hub_id="microsoft/Phi-3-medium-4k-instruct", family="phi3"),
        _d("smollm2-135m", 576, 30, 9, 3, 1536, 49152, 8192, tied=True,
           hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", family="smollm2"),
        _d("smollm2-360m", 960, 32, 15, 5, 2560, 49152, 8192, tied=True,
           hub_id="HuggingFaceTB/SmolLM2-360M-Instruct", family="smollm2"),
        _d("smollm2-1.7b", 2048, 24, 32, 32, 8192, 49152, 8192, tied=True,
           hub_id="HuggingFaceTB/SmolLM2-1.7B-Instruct", family="smollm2"),
        # Whisper: dims from openai/whisper's checkpoints (ModelDimensions) and the HF configs.
        WhisperArch("whisper-tiny", 384, 4, 4, 6, 51865, hub_id="openai/whisper-tiny"),
        WhisperArch("whisper-tiny.en", 384, 4, 4, 6, 51864, hub_id="openai/whisper-tiny.en"),
        WhisperArch("whisper-base", 512, 6, 6, 8, 51865, hub_id="openai/whisper-base"),
        WhisperArch("whisper-base.en", 512, 6, 6, 8, 51864, hub_id="openai/whisper-base.en"),
        WhisperArch("whisper-small", 768, 12, 12, 12, 51865, hub_id="openai/whisper-small"),
        WhisperArch("whisper-medium", 1024, 24, 24, 16, 51865, hub_id="openai/whisper-medium"),
        WhisperArch("whisper-large-v2", 1280, 32, 32, 20, 51865, hub_id="openai/whisper-large-v2"),
        WhisperArch("whisper-large-v3", 1280, 32, 32, 20, 51866, n_mels=128, hub_id="openai/whisper-large-v3"),
        WhisperArch("whisper-large-v3-turbo", 1280, 32, 4, 20, 51866, n_mels=128,
                    hub_id="openai/whisper-large-v3-turbo"),
        EncoderArch("all-minilm-l6-v2", 384, 6, 12, 1536, 30522, 512, 256,
                    hub_id="sentence-transformers/all-MiniLM-L6-v2", family="minilm"),
        EncoderArch("all-minilm-l12-v2", 384, 12, 12, 1536, 30522, 512, 256,
                    hub_id="sentence-transformers/all-MiniLM-L12-v2", family="minilm"),
    ]
}


def _key(name: str) -> str:
    """Lower case, no owner prefix, no -instruct/-it/-hf/-chat suffix, no GGUF/quant suffix."""
    key = name.strip().lower().rsplit("/", 1)[-1]
    key = key.replace("meta-llama-3", "llama-3").replace("_", "-")
    key = re.sub(r"\.(gguf|bin|safetensors)$", "", key)
    key = re.sub(r"[-.](q\d\w*|f16|f32|bf16|fp16|int[48]|awq|gptq|gguf)$", "", key)
    key = re.sub(r"-(instruct|it|hf|chat|base)(-v0\.\d+)?$", "", key)
    key = re.sub(r"-v0\.\d+$", "", key)
    return key


_ALIASES = {"whisper-large": "whisper-large-v2", "whisper-turbo": "whisper-large-v3-turbo",
            "minilm": "all-minilm-l6-v2", "smollm2": "smollm2-135m"}


def get_model(name: str) -> Arch:
    """A catalog entry by name, hub id or common spelling; an unknown name lists the catalog."""
    if name in MODELS:
        return MODELS[name]
    for arch in MODELS.values():
        if arch.hub_id and arch.hub_id.lower() == name.strip().lower():
            return arch
    key = _key(name)
    key = _ALIASES.get(key, key)
    if key in MODELS:
        return MODELS[key]
    raise ConfigError(f"unknown model {name!r}; the catalog has: {', '.join(MODELS)}"
                      " (or describe one with --config config.json / a model folder / a .gguf file, or --params 7B)")


def decoders() -> list[DecoderArch]:
    return [m for m in MODELS.values() if isinstance(m, DecoderArch)]


def with_name(arch: Arch, name: str) -> Arch:
    return replace(arch, name=name)


# ---------------------------------------------------------------------------------------------
# GPU cards. memory_gib: the datasheet figure (NVIDIA's "GB" on GPU memory are binary, 2**30).
# reported_mib: what nvidia-smi / NVML typically reports as total on that card (less than the
# datasheet: ECC and the driver's reservation); the planner uses it when known.


@dataclass(frozen=True)
class Card:
    name: str
    memory_gib: float
    reported_mib: int | None
    bf16: bool  # native bf16 (Ampere and later)
    arch: str
    aliases: tuple[str, ...] = ()


CARDS: dict[str, Card] = {
    c.name: c
    for c in [
        Card("T4", 16, 15360, False, "Turing", ("tesla t4",)),
        Card("L4", 24, 23034, True, "Ada"),
        Card("A10", 24, 23028, True, "Ampere", ("a10g", "nvidia a10")),
        Card("RTX 3060", 12, 12288, True, "Ampere", ("3060", "geforce rtx 3060")),
        Card("RTX 3090", 24, 24576, True, "Ampere", ("3090", "geforce rtx 3090")),
        Card("RTX 4090", 24, 24564, True, "Ada", ("4090", "geforce rtx 4090")),
        Card("RTX 5090", 32, 32607, True, "Blackwell", ("5090", "geforce rtx 5090")),
        Card("A100 40GB", 40, 40960, True, "Ampere", ("a100-40", "a100-40gb", "a100-sxm4-40gb", "a100-pcie-40gb")),
        Card("A100 80GB", 80, 81920, True, "Ampere", ("a100", "a100-80", "a100-80gb", "a100-sxm4-80gb")),
        Card("H100", 80, 81559, True, "Hopper", ("h100 80gb", "h100-80gb", "h100 sxm", "h100 pcie", "h100-sxm")),
        Card("H200", 141, 143771, True, "Hopper", ("h200 141gb", "h200-141gb")),
    ]
}


def _card_key(name: str) -> str:
    key = name.strip().lower().replace("nvidia", "").replace("geforce", "").replace("tesla", "")
    return re.sub(r"[\s_-]+", " ", key).strip()


def get_card(name: str) -> Card:
    """A card by name ('RTX 4090', '4090', 'a100-80gb', an NVML name such as 'NVIDIA A100-SXM4-80GB')."""
    want = _card_key(name)
    for card in CARDS.values():
        if want in {_card_key(card.name), *(_card_key(a) for a in card.aliases)}:
            return card
    # NVML names carry extra words ('NVIDIA H100 80GB HBM3'): the first card whose name is inside.
    for card in sorted(CARDS.values(), key=lambda c: -len(c.name)):
        if _card_key(card.name) in want:
            return card
    raise ConfigError(f"unknown GPU {name!r}; known cards: {', '.join(CARDS)} (or give --vram 24GB)")
