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
    available_backends,
    load_llm,
    options_from_config,
    register_backend,
    stream_with_stats,
    unregister_backend,
)


def context_for(cfg, kb_path=None, notify=None) -> LoadContext:
    """Where converted models live: the user cache, shared by all KBs (written); a KB's cache/ is
    searched too, for conversions made there before; the device from the config."""
    from pathlib import Path

    from pipeline.models import user_cache_dir

    dirs = [user_cache_dir()]
    if kb_path is not None and (Path(kb_path) / "catalog.sqlite").exists():
        dirs.append(Path(kb_path) / "cache")
    return LoadContext(cache_dirs=tuple(dirs), device=cfg.device, offline=cfg.offline, notify=notify)
