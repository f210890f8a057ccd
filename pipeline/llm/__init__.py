"""Language models behind one small contract (see :mod:`pipeline.llm.base`).

    from pipeline.llm import load_llm, options_from_config
    llm = load_llm(cfg.llm, LoadContext(cache_dirs=(kb_dir / "cache",)))
    for delta in llm.stream([{"role": "user", "content": "Hi"}], options_from_config(cfg.llm)):
        print(delta, end="")

Importing this package loads no model library; backends import theirs when a model is loaded.
"""

from pipeline.llm.base import (  # noqa: F401
    LLM,
    Completion,
    GenerationOptions,
    GenerationStats,
    LoadContext,
    TextStream,
    options_from_config,
    stream_with_stats,
)
from pipeline.llm.registry import available_backends, load_llm, register_backend, unregister_backend  # noqa: F401


def context_for(cfg, kb_path=None, notify=None, background: bool = False) -> LoadContext:
    """Where converted models live: the user cache, shared by all KBs (written); a KB's cache/ is
    searched too, for conversions made there before; the device from the config."""
    from pathlib import Path

    from syllabus_common.models import user_cache_dir

    dirs = [user_cache_dir()]
    if kb_path is not None and (Path(kb_path) / "catalog.sqlite").exists():
        dirs.append(Path(kb_path) / "cache")
    return LoadContext(cache_dirs=tuple(dirs), device=cfg.device, offline=cfg.offline, notify=notify,
                       background=background)


def load_model(cfg, kb_path=None, notify=None, background: bool = False) -> LLM:
    """The configured LLM (``llm.model: auto`` resolved by the planner), converted models cached in the
    user cache; ``load_seconds`` records how long loading took. ``background``: the backend may load
    the weights in a thread (generation waits for them; ``load_seconds`` is then the time until the
    tokenizer was ready)."""
    import time

    started = time.perf_counter()
    llm = load_llm(cfg.llm, context_for(cfg, kb_path, notify=notify, background=background))
    llm.load_seconds = round(time.perf_counter() - started, 3)
    return llm
