"""`model: auto` in config.yaml resolves through the resource planner for every stage."""

from __future__ import annotations

from pipeline.config import load_config


def test_auto_resolves_each_stage_to_a_local_model(tmp_path):
    f = tmp_path / "auto.yaml"
    f.write_text("embedding:\n  model: auto\nasr:\n  model: auto\nllm:\n  model: auto\n")
    cfg = load_config(f)

    from ingest.asr import options_from_config
    from pipeline.embed import embedding_model_name
    from pipeline.llm.registry import planned_llm
    from pipeline.speech import speech_config
    from syllabus_common.models import BUNDLED

    assert embedding_model_name(cfg) == "all-MiniLM-L6-v2"
    resolved = speech_config(cfg)  # what ingest/ is given: the planner's choice, not "auto"
    assert options_from_config(resolved.asr, offline=cfg.offline)[1].model in ("whisper-base", "whisper-tiny.en")
    llm = planned_llm(cfg.offline)
    assert llm in BUNDLED and BUNDLED[llm].role == "llm"


def test_auto_embedding_is_what_the_kb_records(tmp_path, topic_pdf):
    from pipeline.kb import KnowledgeBase

    f = tmp_path / "auto.yaml"
    f.write_text("embedding:\n  model: auto\n")
    cfg = load_config(f)
    kb = KnowledgeBase(cfg, tmp_path / "kb", create=True)
    try:
        assert kb.embed_model_name == "all-MiniLM-L6-v2"
    finally:
        kb.close()
