"""Query expansion: the LLM answers the question first, and the search matches its answer too.

A question says what the user wants in their words; the book says it in its own: "how do I run a
file of commands" against ``source()``, "join matrices side by side" against ``cbind``. A model
that knows the subject names the book's words in its answer, right or wrong in the details, and
the search matches them (Wang, Yang & Wei, "Query2doc: Query Expansion with Large Language
Models", EMNLP 2023; Gao et al., "Precise Zero-Shot Dense Retrieval without Relevance Labels",
ACL 2023). The answer steers retrieval only: it is never shown as an answer, the re-ranker still
reads the question, and what ``ask`` prints comes from the passages found.

``retrieval.expand.method``: ``none`` (the default) or ``llm`` (the configured LLM, any backend:
a served model answers too). Measured in eval/results/query_expansion_*.md: it gains questions on
the book the settings were chosen on, not on held-out ones (and with the bundled 135M model it
loses more of those than it gains), so it is opt-in.
"""

from __future__ import annotations

import hashlib
import logging
import time
from abc import ABC, abstractmethod
from typing import Callable

from syllabus_common.registry import Registry

log = logging.getLogger(__name__)

# The prompt names no subject: the question carries it.
SYSTEM = ("Answer the question in two sentences. Name the specific functions, commands, options or terms "
          "involved.")


class Expander(ABC):
    name = "expander"

    @abstractmethod
    def expand(self, question: str) -> str:
        """Text to match beside ``question`` ("" for none)."""


class NoExpansion(Expander):
    name = "none"

    def expand(self, question: str) -> str:
        return ""


class LLMExpander(Expander):
    """The LLM's short answer to the question (greedy), kept in ``cache`` (a :class:`SummaryCache`
    or None) under the model, the prompt and the question, so a repeated question costs nothing."""

    name = "llm"

    def __init__(self, llm, options=None, cache=None):
        from pipeline.llm.base import GenerationOptions

        self.llm = llm
        self.options = options or GenerationOptions(max_new_tokens=64)  # greedy by default
        self.cache = cache
        self.seconds = 0.0  # time of the last expansion (0 when cached)
        self.last = ""  # the last expansion (``search --json`` shows it)

    def _key(self, question: str) -> str:
        info = self.llm.describe()
        blob = "\n".join([str(info.get("backend")), str(info.get("model")), str(info.get("precision")),
                          repr(self.options), SYSTEM, question])
        return "expand:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def expand(self, question: str) -> str:
        key = self._key(question)
        if self.cache is not None and (found := self.cache.get(key)) is not None:
            self.seconds, self.last = 0.0, found
            return found
        started = time.perf_counter()
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        text = " ".join(self.llm.generate(messages, self.options).text.split())
        self.seconds, self.last = time.perf_counter() - started, text
        if self.cache is not None:
            self.cache.put(key, "expand", text, "", self.seconds)
        log.info("query expanded in %.1f s", self.seconds, extra={"question": question, "expansion": text})
        return text


# ----- registry

Factory = Callable[..., Expander]  # factory(cfg, llm=None, cache=None) -> Expander
_EXPANDERS = Registry("query expander", "retrieval.expand.method")


def register_expander(name: str, factory: Factory, replace: bool = False) -> None:
    """Make ``retrieval.expand.method: <name>`` expand queries through ``factory(cfg, llm, cache)``."""
    _EXPANDERS.register(name, factory, replace=replace)


unregister_expander = _EXPANDERS.unregister
available_expanders = _EXPANDERS.names


def load_expander(cfg, method: str | None = None, llm=None, cache=None) -> Expander:
    """The expander ``method`` (default: ``retrieval.expand.method``); ``llm``: a model the caller
    has loaded already (else the configured one is loaded)."""
    return _EXPANDERS.create(method or cfg.retrieval.expand.method, cfg, llm=llm, cache=cache)


def _llm(cfg, llm=None, cache=None) -> Expander:
    if llm is None:
        from pipeline.llm import load_model

        llm = load_model(cfg)
    from pipeline.llm.base import options_from_config

    options = options_from_config(cfg.llm, max_new_tokens=cfg.retrieval.expand.max_new_tokens, temperature=0.0)
    return LLMExpander(llm, options, cache)


register_expander("none", lambda cfg, llm=None, cache=None: NoExpansion())
register_expander("llm", _llm)
