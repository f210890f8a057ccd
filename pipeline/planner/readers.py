"""Model descriptions without a hub: a local config.json, an HF model folder, a GGUF header, a bare
parameter count, or a catalog name. Nothing here downloads or imports torch."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from syllabus_common.errors import ConfigError
from pipeline.planner.catalog import MODELS, Arch, DecoderArch, EncoderArch, WhisperArch, decoders, get_model

_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_count(text: str) -> int:
    """'7B', '135M', '1.5e9', '70b' → parameters."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbgt]?)\s*", text.lower())
    if not m:
        raise ConfigError(f"--params wants a count such as 7B, 135M or 1.5e9, not {text!r}")
    value = float(m.group(1)) * _SUFFIX[m.group(2)]
    if value < 1e5:
        raise ConfigError(f"--params {text} is too small for a language model (did you mean {text}B?)")
    return int(value)


def parse_size(text: str) -> int:
    """'24GB', '24 GiB', '16G', '8000MiB', '24' (GiB) → bytes. GB is decimal, GiB binary."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(gib|gb|g|mib|mb|m|tib|tb|t)?\s*", text.lower())
    if not m:
        raise ConfigError(f"memory size must look like 24GB, 24GiB or 8000MiB, not {text!r}")
    unit = m.group(2) or "gib"
    mult = {"gib": 2**30, "g": 2**30, "gb": 10**9, "mib": 2**20, "m": 2**20, "mb": 10**6, "tib": 2**40,
            "t": 2**40, "tb": 10**12}[unit]
    return int(float(m.group(1)) * mult)


def arch_for_params(params: int) -> DecoderArch:
    """A stand-in shape for a bare parameter count: the catalog decoder nearest in size (its layers,
    heads and vocabulary drive the KV cache and activations), weights counted for ``params``."""
    import math

    pool = [d for d in decoders() if d.family in ("llama2", "llama3", "qwen2.5", "smollm2")]
    template = min(pool, key=lambda d: abs(math.log(d.params() / params)))
    return replace(template, name=f"{params / 1e9:.3g}B ({template.name} shape)", params_override=params, hub_id=None)


def _get(cfg: dict, *keys, default=None):
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return cfg[key]
    return default


def arch_from_config(cfg: dict, name: str = "config.json") -> Arch:
    """An HF config.json (dict) → architecture. Multimodal configs use their text_config."""
    mt = str(cfg.get("model_type", "")).lower()
    if mt == "whisper":
        return WhisperArch(name, cfg["d_model"], cfg["encoder_layers"], cfg["decoder_layers"],
                           cfg.get("encoder_attention_heads", cfg.get("decoder_attention_heads")), cfg["vocab_size"],
                           n_mels=cfg.get("num_mel_bins", 80), audio_ctx=cfg.get("max_source_positions", 1500),
                           text_ctx=cfg.get("max_target_positions", 448))
    if mt in ("bert", "mpnet", "roberta", "xlm-roberta"):
        return EncoderArch(name, cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
                           cfg["intermediate_size"], cfg["vocab_size"], cfg.get("max_position_embeddings", 512),
                           min(cfg.get("max_position_embeddings", 512), 512), family=mt)
    if "text_config" in cfg and "hidden_size" not in cfg:
        text = dict(cfg["text_config"])
        text.setdefault("model_type", mt.replace("3", "3_text") if mt == "gemma3" else mt)
        text.setdefault("tie_word_embeddings", cfg.get("tie_word_embeddings"))
        return arch_from_config(text, name)
    needed = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    missing = [k for k in needed if k not in cfg]
    if missing:
        hint = " A CTranslate2 folder carries no architecture numbers: use --model whisper-base (etc.)." \
            if "alignment_heads" in cfg or "suppress_ids" in cfg else ""
        raise ConfigError(f"{name}: not a config this planner understands (missing {', '.join(missing)}; "
                          f"model_type {mt or '?'}).{hint}")
    heads = cfg["num_attention_heads"]
    gemma = mt.startswith("gemma")
    tied = _get(cfg, "tie_word_embeddings", default=gemma)
    window = cfg.get("sliding_window") if (gemma or cfg.get("use_sliding_window")) else None
    every = 1
    if mt == "gemma2":
        every = 2
    elif mt.startswith("gemma3"):
        every = int(cfg.get("sliding_window_pattern", 6))
    return DecoderArch(
        name, cfg["hidden_size"], cfg["num_hidden_layers"], heads, _get(cfg, "num_key_value_heads", default=heads),
        cfg["intermediate_size"], cfg["vocab_size"], int(_get(cfg, "max_position_embeddings", default=4096)),
        tied=bool(tied), head_dim=cfg.get("head_dim"), qkv_bias=mt == "qwen2" or bool(cfg.get("attention_bias")),
        norms_per_layer=4 if gemma and mt != "gemma" else 2, qk_norm=mt.startswith("gemma3") or mt == "qwen3",
        sliding_window=window, global_every=every if window else 1,
        model_type=mt if mt in ("llama", "qwen2", "mistral", "phi3", "gemma2", "gemma3_text") else "llama",
        fused_qkv=mt == "phi3", fused_gate_up=mt == "phi3", family=mt,
    )


def read_gguf(path: Path) -> DecoderArch:
    """Architecture and exact weight bytes from a GGUF header (gguf package; tensors are not read)."""
    try:
        from gguf import GGUFReader
    except ImportError:  # pragma: no cover - gguf is pinned in requirements.txt
        raise ConfigError("reading GGUF files needs the gguf package: pip install gguf") from None
    from pipeline.planner.precision import GGUF_FTYPE_IDS

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable GGUF file ({exc})") from None

    def field(key, default=None):
        f = reader.fields.get(key)
        if f is None:
            return default
        value = f.contents()
        return value

    arch_name = field("general.architecture", "llama")
    a = lambda key, default=None: field(f"{arch_name}.{key}", default)  # noqa: E731
    hidden, layers, heads = a("embedding_length"), a("block_count"), a("attention.head_count")
    if not (hidden and layers and heads):
        raise ConfigError(f"{path}: GGUF header lacks {arch_name}.embedding_length/block_count/head_count")
    names = {t.name for t in reader.tensors}
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = a("vocab_size") or (len(tokens.data) if tokens is not None else 32000)
    key_len = a("attention.key_length")
    ftype = GGUF_FTYPE_IDS.get(int(field("general.file_type", -1) or -1))
    model_type = {"llama": "llama", "qwen2": "qwen2", "phi3": "phi3", "gemma2": "gemma2", "gemma3": "gemma3_text"}.get(arch_name, "llama")
    return DecoderArch(
        path.name, int(hidden), int(layers), int(heads), int(a("attention.head_count_kv", heads)),
        int(a("feed_forward_length")), int(vocab), int(a("context_length", 4096)),
        tied="output.weight" not in names, head_dim=int(key_len) if key_len else None,
        qkv_bias="blk.0.attn_q.bias" in names, model_type=model_type, family=arch_name,
        fused_qkv="blk.0.attn_qkv.weight" in names, fused_gate_up=model_type == "phi3",
        file_weight_bytes=sum(int(t.n_bytes) for t in reader.tensors), file_precision=ftype,
    )


def resolve_model(model: str | None = None, config: str | None = None, params: str | None = None) -> Arch:
    """Exactly one of: a catalog name, a path (config.json, model folder, .gguf), a parameter count."""
    given = [x for x in (model, config, params) if x]
    if len(given) != 1:
        raise ConfigError("give exactly one of --model NAME, --config PATH (config.json, folder, .gguf) or --params 7B")
    if params:
        return arch_for_params(parse_count(params))
    if model and not Path(model).expanduser().exists():
        return get_model(model)
    path = Path(config or model).expanduser()
    if not path.exists():
        raise ConfigError(f"model description not found: {path}")
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if (path / "config.json").is_file():
            path = path / "config.json"
        elif ggufs:
            path = ggufs[0]
        else:
            raise ConfigError(f"{path}: no config.json or .gguf inside")
    if path.suffix.lower() == ".gguf":
        return read_gguf(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON config ({exc})") from None
    name = path.parent.name if path.name == "config.json" else path.stem
    arch = arch_from_config(cfg, name or "config.json")
    # A folder named after a catalog model keeps the catalog's hub id (for local-availability checks).
    known = MODELS.get(name.lower()) if name else None
    return replace(arch, hub_id=known.hub_id) if known is not None and hasattr(known, "hub_id") else arch
