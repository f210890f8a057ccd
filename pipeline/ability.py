"""Whether a model can write answers from evidence: measured, not guessed from its name.

``ask.mode: auto`` asks :func:`resolve_mode`. The first time a model (backend, model, precision)
is seen, it answers two questions on known facts through the real evidence prompt, and its answers go
through the real verifier. It is *able* when every answer keeps the right number, cites the fact, and
no sentence is unsupported. The result is cached per model and prompt in the user cache
(``ability.json``), so the check runs once (a few seconds on a small model).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from syllabus_common.atomic import atomic_write_text
from pipeline.evidence import Evidence, evidence_block
from pipeline.quantities import quantities
from pipeline.verify import to_traditional, verify

log = logging.getLogger(__name__)

# Facts no model knows by heart, so it must read them; the expected number must survive verbatim.
PROBES = (
    (["The Harlow reservoir holds 37 million litres of water.", "The Harlow dam was finished in 1962."],
     "How much water does the Harlow reservoir hold?", 37e6),
    (["A Kestrel 9 battery lasts 14 hours on one charge.", "The Kestrel 9 weighs 410 grams."],
     "How long does the Kestrel 9 battery last?", 14.0),
)
CHECK_TOKENS = 48


def generate_on_evidence(llm, prompts, options, question: str, language: str, evidence: list[Evidence],
                         stats: list | None = None) -> str:
    """The model's answer written from the evidence alone (a short prompt a small model can read);
    its :class:`~pipeline.llm.base.GenerationStats` are appended to ``stats``."""
    messages = prompts.render("evidence_answer", language, evidence=evidence_block(evidence, cite=False), question=question)
    stream = llm.stream(messages, options)
    text = stream.text().strip()
    if stats is not None:
        stats.append(stream.stats)
    return to_traditional(text) if language == "zh-TW" else text  # Taiwanese users read Traditional


def _probe_evidence(facts: list[str]) -> list[Evidence]:
    return [Evidence(n=i + 1, text=t, passage=1, doc="probe", path="", section="", page=1, page_end=1,
                     page_label="1", t_start=None, t_end=None, score=1.0, cosine=1.0, lexical=1.0)
            for i, t in enumerate(facts)]


def self_check(llm, prompts, options) -> tuple[bool, list[dict]]:
    """Run the probes; (able, per-probe record)."""
    from dataclasses import replace

    opts = replace(options, max_new_tokens=CHECK_TOKENS, temperature=0.0)
    records, able = [], True
    for facts, question, expected in PROBES:
        evidence = _probe_evidence(facts)
        text = generate_on_evidence(llm, prompts, opts, question, "en", evidence)
        verdicts = verify(text, {e.n: e.text for e in evidence})
        right = any(v.supported and any(expected in (q.lo, q.hi) for q in quantities(v.text)) for v in verdicts)
        clean = bool(verdicts) and all(v.supported for v in verdicts)
        records.append({"question": question, "answer": text, "right": right, "all_supported": clean})
        able = able and right and clean
    return able, records


def _key(llm, prompts) -> str:
    info = llm.describe()
    template = prompts.get("evidence_answer", "en")
    digest = hashlib.sha256((template.system + template.user).encode()).hexdigest()[:12]
    return f"{info.get('backend')}|{info.get('model')}|{info.get('precision')}|{digest}"


_MEMO: dict[str, bool] = {}  # this process's answers, so a long-lived server checks once even without a cache


def model_is_able(llm, prompts, options, cache_dir: Path | None) -> bool:
    """Cached :func:`self_check` (in ``cache_dir``/ability.json, and in memory for this process)."""
    key = _key(llm, prompts)
    if key in _MEMO:
        return _MEMO[key]
    path = cache_dir / "ability.json" if cache_dir is not None else None
    table: dict = {}
    if path is not None and path.is_file():
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            table = {}
        if key in table:
            _MEMO[key] = bool(table[key]["able"])
            return _MEMO[key]
    able, records = self_check(llm, prompts, options)
    _MEMO[key] = able
    log.info("model self-check %s: %s", key, "able" if able else "not able", extra={"records": records})
    if path is not None:
        table[key] = {"able": able, "probes": records}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(table, indent=2, ensure_ascii=False))
    return able


def resolve_mode(mode: str, llm, prompts, options, cache_dir: Path | None) -> str:
    """``extractive`` or ``generative``; ``auto`` by the model's measured ability."""
    if mode in ("extractive", "generative"):
        return mode
    if mode != "auto":
        from syllabus_common.errors import ConfigError

        raise ConfigError(f"unknown ask mode {mode!r}; valid: auto, extractive, generative")
    if llm is None:
        return "extractive"
    return "generative" if model_is_able(llm, prompts, options, cache_dir) else "extractive"
