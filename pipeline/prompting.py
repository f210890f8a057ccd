"""Prompt templates from ``prompts/`` (or the user's folder), one per task and language.

A template is a plain-text file with a ``[system]`` part and a ``[user]`` part; ``{name}`` marks a
placeholder (``{{`` and ``}}`` are literal braces). Every template of a task is checked when it is
loaded: a missing required placeholder or an unknown one is an error then, not at the 300th chunk.

Language: the question's (``ask``) or the document's (``summarize``), detected from its script and
common words. Templates exist in English and Traditional Chinese; any other language uses the
English template, which asks for an answer in that language by name.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from syllabus_common.errors import ConfigError

# task → (required placeholders, optional placeholders)
RETIRED_TASKS = ("map", "reduce", "book")  # the map-reduce summary prompts of earlier releases
TASKS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "answer": (frozenset({"passages", "question"}), frozenset({"language"})),
    "not_found": (frozenset(), frozenset({"question", "language"})),
    # generation on selected evidence (pipeline.trusted) and summary prose from key points (pipeline.digest)
    "evidence_answer": (frozenset({"evidence", "question"}), frozenset({"language"})),
    "key_points": (frozenset({"points"}), frozenset({"title", "pages", "language", "kind", "parts"})),
    # a chat follow-up rewritten as a standalone question (pipeline.chat), when the model is able
    "condense": (frozenset({"history", "question"}), frozenset({"language"})),
}
TEMPLATE_LANGUAGES = ("en", "zh-TW")
# {kind} and {parts} in the summary templates: what is summarized, in the template's language.
DOCUMENT_WORDS = {
    "en": {"pdf": {"kind": "a book", "parts": "chapters"}, "media": {"kind": "a lecture", "parts": "time sections"}},
    "zh-TW": {"pdf": {"kind": "一本書", "parts": "章"}, "media": {"kind": "一場講座", "parts": "時段"}},
}
LANGUAGE_NAMES = {
    "en": "English", "zh-TW": "繁體中文", "zh-CN": "Simplified Chinese (简体中文)",
    "ja": "Japanese", "ko": "Korean", "ru": "Russian", "fr": "French", "de": "German", "es": "Spanish",
    "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
}
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
PLACEHOLDER = _PLACEHOLDER  # a template's {name}


@dataclass(frozen=True)
class Template:
    task: str
    language: str
    system: str
    user: str
    source: str  # file it came from, for messages

    def render(self, **values: str) -> list[dict]:
        """Chat messages with the placeholders filled in (values are inserted verbatim)."""
        required, optional = TASKS[self.task]
        missing = required - values.keys()
        if missing:
            raise ValueError(f"{self.source}: no value for {', '.join(sorted(missing))}")

        def fill(text: str) -> str:
            text = _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), text)
            return text.replace("{{", "{").replace("}}", "}")

        messages = []
        if self.system.strip():
            messages.append({"role": "system", "content": fill(self.system).strip()})
        messages.append({"role": "user", "content": fill(self.user).strip()})
        return messages


def parse_template(text: str, task: str, language: str, source: str) -> Template:
    if task not in TASKS:
        raise ConfigError(f"unknown prompt task {task!r}; valid: {', '.join(TASKS)}")
    parts: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        marker = line.strip().lower()
        if marker in ("[system]", "[user]"):
            current = marker[1:-1]
            parts[current] = []
        elif current is not None:
            parts[current].append(line)
        elif line.strip():
            raise ConfigError(f"{source}: text before the first [system] or [user] line")
    if "user" not in parts:
        raise ConfigError(f"{source}: no [user] part")
    system, user = "\n".join(parts.get("system", [])), "\n".join(parts["user"])
    found = set(_PLACEHOLDER.findall(system + "\n" + user))
    required, optional = TASKS[task]
    if required - found:
        raise ConfigError(f"{source}: missing placeholder {', '.join('{' + p + '}' for p in sorted(required - found))}")
    if found - required - optional:
        valid = ", ".join("{" + p + "}" for p in sorted(required | optional))
        raise ConfigError(f"{source}: unknown placeholder {', '.join('{' + p + '}' for p in sorted(found - required - optional))}; valid: {valid}")
    return Template(task, language, system, user, source)


class PromptSet:
    """All templates, loaded and checked up front; the user's folder overrides file by file."""

    def __init__(self, user_dir: Path | None = None):
        self.templates: dict[tuple[str, str], Template] = {}
        builtin = resources.files("prompts")
        for language in TEMPLATE_LANGUAGES:
            for task in TASKS:
                own = user_dir / language / f"{task}.txt" if user_dir is not None else None
                if own is not None and own.is_file():
                    text, source = own.read_text(encoding="utf-8"), str(own)
                else:
                    entry = builtin.joinpath(language, f"{task}.txt")
                    if not entry.is_file():
                        raise ConfigError(f"built-in prompt {language}/{task}.txt is missing (broken install?)")
                    text, source = entry.read_text(encoding="utf-8"), f"prompts/{language}/{task}.txt"
                self.templates[(task, language)] = parse_template(text, task, language, source)
        if user_dir is not None:
            if not user_dir.is_dir():
                raise ConfigError(f"prompts.dir {user_dir} is not a folder")
            for path in user_dir.glob("*/*.txt"):
                if path.stem in RETIRED_TASKS:  # an earlier release's prompt: nothing reads it now
                    print(f"syllabus: {path}: the '{path.stem}' prompt is no longer used "
                          "(summaries are built from key points); ignored", file=sys.stderr)
                    continue
                if path.stem not in TASKS:
                    raise ConfigError(f"{path}: unknown task {path.stem!r}; valid: {', '.join(TASKS)}")

    def get(self, task: str, language: str) -> Template:
        """The template for ``language``, or English for languages without their own templates."""
        return self.templates.get((task, language)) or self.templates[(task, "en")]

    def render(self, task: str, language: str, **values: str) -> list[dict]:
        values.setdefault("language", LANGUAGE_NAMES.get(language, language))
        return self.get(task, language).render(**values)

    def document_words(self, language: str, kind: str) -> dict[str, str]:
        """``{kind}``/``{parts}`` for a document kind ("pdf" | "media") in the language whose template is used."""
        template_language = self.get("key_points", language).language
        return dict(DOCUMENT_WORDS.get(template_language, DOCUMENT_WORDS["en"]).get(kind, DOCUMENT_WORDS["en"]["pdf"]))


def load_prompts(cfg) -> PromptSet:
    return PromptSet(cfg.prompts.path)


# ----- language detection (script first, then frequent words for Latin-script languages)
_STOPWORDS = {
    "en": "the and is of to in what how does why which that are can",
    "fr": "le la les des est une un et que comment pourquoi quel quelle dans du",
    "de": "der die das und ist nicht wie warum was ein eine den mit für",
    "es": "el la los las es una un y que cómo por qué cuál en del",
    "it": "il lo la gli le è una un e che come perché quale nel del",
    "pt": "o a os as é uma um e que como por qual no do não",
    "nl": "de het een en is niet hoe waarom wat van in dat",
}
_STOPSETS = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}


def detect_language(text: str) -> str:
    """``en``, ``zh-TW``, ``zh-CN``, ``ja``, ``ko``, ``ru`` or a Latin-script language; English when unsure."""
    sample = text[:4000]
    han = sum(1 for c in sample if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    kana = sum(1 for c in sample if "\u3040" <= c <= "\u30ff")
    hangul = sum(1 for c in sample if "\uac00" <= c <= "\ud7af")
    cyrillic = sum(1 for c in sample if "\u0400" <= c <= "\u04ff")
    letters = sum(1 for c in sample if c.isalpha()) or 1
    if kana > 0.1 * letters:
        return "ja"
    if hangul > 0.3 * letters:
        return "ko"
    if han > 0.3 * letters:
        return "zh-CN" if _looks_simplified(sample) else "zh-TW"
    if cyrillic > 0.3 * letters:
        return "ru"
    words = re.findall(r"[a-zà-ÿ]+", sample.lower())
    if not words:
        return "en"
    scores = {lang: sum(w in stops for w in words) for lang, stops in _STOPSETS.items()}
    best = max(scores, key=lambda lang: (scores[lang], lang == "en"))
    return best if scores[best] > scores["en"] else "en"


# Characters whose Simplified and Traditional forms differ, frequent in running text.
_SIMPLIFIED = set("这们个说为来时会过对还发后问题么样现实经进种学习数据内存显卡训练")
_TRADITIONAL = set("這們個說為來時會過對還發後問題麼樣現實經進種學習數據內存顯卡訓練")


def _looks_simplified(text: str) -> bool:
    simp = sum(c in _SIMPLIFIED and c not in _TRADITIONAL for c in text)
    trad = sum(c in _TRADITIONAL and c not in _SIMPLIFIED for c in text)
    return simp > trad
