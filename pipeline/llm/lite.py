"""A model folder read without transformers: its config, its tokenizer and its chat template.

Importing transformers and building its tokenizer takes longer than everything else a cold ``ask``
does (~2 s of CPU on a 2-core machine, much more under load). A safetensors folder holds all that
the CPU fast path (:mod:`pipeline.llm.fastlm`) needs in plain files: ``config.json``,
``tokenizer.json`` (read by the ``tokenizers`` library, which transformers itself wraps),
``tokenizer_config.json`` (special tokens) and the chat template (``chat_template.jinja``, or the
``chat_template`` key of older folders), rendered with jinja2 in a sandbox as transformers does.

:func:`lite_folder` says whether a folder can be read this way; a test checks token ids, decoded
text and rendered prompts against the transformers tokenizer.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

ARCHITECTURES = ("llama", "mistral", "qwen2")


def unsupported(config) -> str | None:
    """Why this config cannot run here, or None when it can."""
    if getattr(config, "model_type", None) not in ARCHITECTURES:
        return f"architecture {getattr(config, 'model_type', '?')!r} (fast path: {', '.join(ARCHITECTURES)})"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act}"
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        return f"rope scaling {rope.get('rope_type') or rope.get('type')}"
    if getattr(config, "use_sliding_window", False) or (
        getattr(config, "model_type", "") == "mistral" and getattr(config, "sliding_window", None)
        and config.sliding_window < config.max_position_embeddings
    ):
        return "sliding-window attention"
    if getattr(config, "mlp_bias", False):
        return "MLP biases"
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head_dim % 2:
        return "odd head dimension"
    return None


# Template features that need transformers' own renderer (assistant-token tracking).
_UNSUPPORTED_TEMPLATE = ("{% generation", "{%- generation")


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_config(folder: Path) -> SimpleNamespace:
    """``config.json`` as attributes (what :func:`pipeline.llm.fastlm.unsupported` and the decoder read)."""
    return SimpleNamespace(**_json(Path(folder) / "config.json"))


def _chat_template(folder: Path, tok_cfg: dict) -> str | None:
    path = folder / "chat_template.jinja"
    template = path.read_text(encoding="utf-8") if path.is_file() else tok_cfg.get("chat_template")
    if isinstance(template, list):  # several named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    return template


def lite_folder(folder: Path) -> bool:
    """Whether ``folder`` holds everything :class:`LiteTokenizer` and the fast path need."""
    folder = Path(folder)
    if not ((folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
            and any(folder.glob("*.safetensors"))):
        return False
    try:
        template = _chat_template(folder, _json(folder / "tokenizer_config.json")) or ""
    except (OSError, ValueError):
        return False
    return not any(tag in template for tag in _UNSUPPORTED_TEMPLATE)


def _token_text(value) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


class LiteTokenizer:
    """The part of a transformers tokenizer the LLM backend uses, on the ``tokenizers`` library."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok_cfg = _json(folder / "tokenizer_config.json")
        self.special_tokens_map = {name: text for name in ("bos_token", "eos_token", "unk_token", "pad_token")
                                   if (text := _token_text(tok_cfg.get(name))) is not None}
        self.eos_token_id = self._id(self.special_tokens_map.get("eos_token"))
        self.unk_token_id = self._id(self.special_tokens_map.get("unk_token"))
        self.chat_template = _chat_template(folder, tok_cfg)
        self._compiled = None

    def _id(self, token: str | None) -> int | None:
        return self._tok.token_to_id(token) if token is not None else None

    def convert_tokens_to_ids(self, token: str) -> int | None:
        found = self._tok.token_to_id(token)
        return found if found is not None else self.unk_token_id

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict], tokenize: bool = False, add_generation_prompt: bool = True) -> str:
        """The prompt for ``messages`` (text only: ``tokenize`` must be False)."""
        if tokenize:
            raise ValueError("LiteTokenizer renders text; encode it with encode()")
        if self._compiled is None:
            self._compiled = _compile(self.chat_template)
        return self._compiled.render(messages=[dict(m) for m in messages], tools=None, documents=None,
                                     add_generation_prompt=add_generation_prompt, **self.special_tokens_map)


def _compile(template: str):
    """The template in jinja2's immutable sandbox (chat templates come from model files: untrusted),
    with the helpers chat templates expect (as transformers provides them)."""
    from jinja2.exceptions import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # jinja's own tojson escapes HTML characters, which a prompt must keep
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: datetime.now().strftime(fmt))
    return env.from_string(template)


def eos_ids(value) -> tuple[int, ...]:
    """A generation config's ``eos_token_id`` (an id, a list of ids, or absent) as a tuple."""
    return tuple(value) if isinstance(value, list) else (value,) if isinstance(value, int) else ()


def generation_eos(folder: Path) -> tuple[int, ...]:
    """End-of-turn ids from ``generation_config.json`` (what ``_generation_eos`` reads from a model)."""
    return eos_ids(_json(Path(folder) / "generation_config.json").get("eos_token_id"))
