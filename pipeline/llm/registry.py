"""LLM backends by name (``llm.backend``), in the registry shape every backend kind shares
(:class:`syllabus_common.registry.Registry`). A factory takes ``(llm_config, LoadContext)`` and returns the loaded
:class:`~pipeline.llm.base.LLM`. Built-ins register through the same call as plugins (simonw/llm's
habit): a test registers a fake the same way and ``llm.backend: fake`` picks it.
"""

from __future__ import annotations

import logging
from typing import Callable

from syllabus_common.registry import Registry
from pipeline.llm.base import LLM, LoadContext

log = logging.getLogger(__name__)

Factory = Callable[..., LLM]  # factory(llm_config, ctx: LoadContext) -> LLM
BACKENDS = Registry("LLM backend", "llm.backend")


def register_backend(name: str, factory: Factory, description: str = "", replace: bool = False) -> None:
    """Make ``llm.backend: <name>`` load models through ``factory(llm_config, ctx)``."""
    BACKENDS.register(name, factory, description, replace)


def unregister_backend(name: str) -> None:
    BACKENDS.unregister(name)


def available_backends() -> list[str]:
    return BACKENDS.names()


def load_llm(llm_cfg, ctx: LoadContext | None = None) -> LLM:
    """Load the model ``llm_cfg`` (the config's ``llm`` section) describes with its backend."""
    factory = BACKENDS.entry(llm_cfg.backend).factory
    ctx = ctx or LoadContext()
    if llm_cfg.model == "auto" and llm_cfg.backend == "transformers":
        llm_cfg = llm_cfg.model_copy(update={"model": planned_llm(ctx.offline)})
    return factory(llm_cfg, ctx)


def planned_llm(offline: bool = True) -> str:
    """``llm.model: auto``: the model the resource planner picks for this machine (`syllabus plan`)."""
    from pipeline.planner.plan import resolve_auto

    choice = resolve_auto("llm", offline=offline)
    log.info("llm model auto: %s", choice["explanation"])
    return choice["config_value"]


# Built-ins register through the same path as plugins; their modules (torch, openai) load lazily.
def _transformers(llm_cfg, ctx: LoadContext) -> LLM:
    from pipeline.llm.hf import TransformersLLM

    return TransformersLLM.load(llm_cfg, ctx)


def _openai(llm_cfg, ctx: LoadContext) -> LLM:
    from pipeline.llm.remote import OpenAILLM

    return OpenAILLM.load(llm_cfg, ctx)


register_backend("transformers", _transformers, "local Hugging Face models, GGUF dequantized")
register_backend("openai", _openai, "any OpenAI-compatible server: vLLM, llama.cpp, Ollama, TGI")
