"""Config: defaults, merging, and errors that name the key and the file (exit code 2)."""

from __future__ import annotations

import pytest

from conftest import run_cli
from pipeline.config import load_config
from syllabus_common.errors import ConfigError


def test_defaults_load_and_validate():
    cfg = load_config()
    assert cfg.embedding.model == "all-MiniLM-L6-v2"
    assert cfg.retrieval.fusion == "rrf"
    assert cfg.chunking.overlap < cfg.chunking.size


def test_partial_user_file_merges_over_defaults(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("retrieval:\n  k: 9\n")
    cfg = load_config(f)
    assert cfg.retrieval.k == 9
    assert cfg.retrieval.rrf_k == 60  # untouched default
    assert cfg.source == str(f)


def test_unknown_key_names_key_and_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("retrieval:\n  kk: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert "retrieval.kk" in str(info.value) and str(f) in str(info.value)


def test_wrong_type_names_key(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("chunking:\n  size: lots\n")
    with pytest.raises(ConfigError, match="chunking.size"):
        load_config(f)


def test_overlap_must_be_below_size(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("chunking:\n  size: 64\n  overlap: 64\n")
    with pytest.raises(ConfigError, match="overlap"):
        load_config(f)


def test_invalid_yaml_is_one_clear_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("retrieval: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)


def test_cli_config_error_exit_code_2_without_traceback(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("embedding:\n  modle: x\n")
    result = run_cli("config", env={"SYLLABUS_CONFIG": str(f)})
    assert result.returncode == 2
    assert "embedding.modle" in result.stderr and str(f) in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_config_json_reflects_env_file(tmp_path):
    import json

    f = tmp_path / "mine.yaml"
    f.write_text("retrieval:\n  k: 7\n")
    result = run_cli("config", "--json", env={"SYLLABUS_CONFIG": str(f)})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["retrieval"]["k"] == 7 and data["source"] == str(f)


def test_a_retired_key_is_ignored_with_a_note(tmp_path, capsys):
    from pipeline.config import load_config

    path = tmp_path / "old.yaml"
    path.write_text("summarize:\n  chunk_tokens: 1200\n", encoding="utf-8")
    cfg = load_config(path)
    assert "chunk_tokens" not in cfg.summarize.model_dump()
    assert "'summarize.chunk_tokens' is no longer used" in capsys.readouterr().err
    path.write_text("summarize:\n  chunk_tokenz: 1200\n", encoding="utf-8")  # a typo still fails
    with pytest.raises(Exception, match="unknown key 'summarize.chunk_tokenz'"):
        load_config(path)
