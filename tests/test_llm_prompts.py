"""Prompt templates: built-ins for every task and language, user overrides, errors at load time."""

from __future__ import annotations

import pytest

from test_llm_support import llm_config

from syllabus_common.errors import ConfigError
from pipeline.prompting import TASKS, TEMPLATE_LANGUAGES, PromptSet, detect_language, load_prompts


def test_builtin_templates_exist_for_every_task_and_language():
    prompts = PromptSet()
    for language in TEMPLATE_LANGUAGES:
        for task in TASKS:
            assert prompts.get(task, language).language == language
    messages = prompts.render("answer", "en", passages="[1] Factors are vectors.", question="What is a factor?")
    assert messages[0]["role"] == "system" and "square brackets" in messages[0]["content"] and "English" in messages[0]["content"]
    assert "Question: What is a factor?" in messages[-1]["content"] and messages[-1]["content"].startswith("[1] Factors are vectors.")


def test_language_picks_the_template():
    prompts = PromptSet()
    zh = prompts.render("answer", detect_language("LoRA 微調 7B 模型需要多少顯存？"), passages="[1] x", question="q")
    assert "繁體中文" in zh[0]["content"] and "問題" in zh[-1]["content"]
    de = prompts.render("answer", detect_language("Wie viel Speicher braucht das Modell und warum ist das so?"), passages="", question="q")
    assert "German" in de[0]["content"]  # English template, German answer asked for by name


@pytest.mark.parametrize("text, expected", [
    ("How much VRAM does LoRA need for a 7B model?", "en"),
    ("LoRA 微調需要多少記憶體？", "zh-TW"),
    ("这个模型需要多少显存？", "zh-CN"),
    ("Comment est-ce que le modèle utilise la mémoire et pourquoi?", "fr"),
    ("", "en"),
])
def test_detect_language(text, expected):
    assert detect_language(text) == expected


def test_user_folder_overrides_one_file_and_keeps_the_rest(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "key_points.txt").write_text("[user]\nREWRITE {title}:\n{points}\n", encoding="utf-8")
    cfg = llm_config()
    cfg.prompts.dir = str(tmp_path)
    prompts = load_prompts(cfg)
    assert prompts.render("key_points", "en", points="[1] body", title="Ch 1")[-1]["content"] == "REWRITE Ch 1:\n[1] body"
    assert prompts.get("answer", "en").source == "prompts/en/answer.txt"


def test_missing_placeholder_is_an_error_at_load_not_at_use(tmp_path):
    (tmp_path / "zh-TW").mkdir()
    (tmp_path / "zh-TW" / "key_points.txt").write_text("[system]\n改寫重點。\n[user]\n{title}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key_points\.txt.*missing placeholder \{points\}"):
        PromptSet(tmp_path)


def test_unknown_placeholder_and_unknown_task_are_errors(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "answer.txt").write_text("[user]\n{passages}\n{question}\n{questoin}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown placeholder \{questoin\}"):
        PromptSet(tmp_path)
    (tmp_path / "en" / "answer.txt").unlink()
    (tmp_path / "en" / "anwser.txt").write_text("[user]\n{passages}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown task 'anwser'"):
        PromptSet(tmp_path)


def test_an_earlier_releases_summary_prompt_is_ignored_with_a_note(tmp_path, capsys):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "map.txt").write_text("[user]\n{text}\n", encoding="utf-8")
    PromptSet(tmp_path)
    assert "the 'map' prompt is no longer used" in capsys.readouterr().err


def test_literal_braces_survive_rendering(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "key_points.txt").write_text("[user]\nUse {{json}} like {{\"a\": 1}}.\n{points}\n", encoding="utf-8")
    text = PromptSet(tmp_path).render("key_points", "en", points="S")[-1]["content"]
    assert text == 'Use {json} like {"a": 1}.\nS'
