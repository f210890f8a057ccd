"""CLI behaviour: instant help, one-line errors, --verbose tracebacks."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, run_cli


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from pipeline.cli import app\n"
        "try:\n    app(['--help'], prog_name='syllabus')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'pymupdf', 'sentence_transformers', 'bm25s') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "Usage" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout[-300:]


def test_every_command_has_help_with_an_example():
    for command in ("ingest", "list", "search", "remove", "config"):
        result = run_cli(command, "--help")
        assert result.returncode == 0
        assert "syllabus " in result.stdout.split("Usage", 1)[1], command


def test_missing_kb_error_is_one_line(tmp_path):
    result = run_cli("--kb", str(tmp_path / "none"), "search", "anything")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and "no knowledge base" in result.stderr
    assert "Traceback" not in result.stderr


def test_verbose_shows_traceback(tmp_path):
    result = run_cli("--verbose", "--kb", str(tmp_path / "none"), "list")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_bad_mode_is_usage_error(tmp_path):
    result = run_cli("--kb", str(tmp_path), "search", "x", "--mode", "magic")
    assert result.returncode == 2 and "rrf, dense or bm25" in result.stderr
    result = run_cli("--kb", str(tmp_path), "search", "x", "--rerank", "magic")
    assert result.returncode == 2 and "--rerank must be one of" in result.stderr and "llm" in result.stderr
    assert "Traceback" not in result.stderr


def test_ingest_expands_folders_to_supported_files(tmp_path):
    from ingest.document import expand_inputs

    (tmp_path / "sub").mkdir()
    for name in ("b.pdf", "sub/a.PDF", "sub/talk.m4a", "data.csv", "deck.pptx", ".hidden.pdf"):
        (tmp_path / name).write_bytes(b"x")
    single = tmp_path / "data.csv"
    got = expand_inputs([tmp_path, single])
    assert got == [tmp_path / "b.pdf", tmp_path / "deck.pptx", tmp_path / "sub/a.PDF", tmp_path / "sub/talk.m4a", single]


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path):
    for args, says in ((["search"], "Missing argument 'query'"), (["search", "x", "--kbb", "d"], "No such option: --kbb"),
                       (["search", "x", "-k", "many"], "Invalid value for '-k'"), (["bogus"], "No such command 'bogus'")):
        result = run_cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("error:") and says in lines[0] and "--help" in lines[0], lines[0]
    bare = run_cli()
    assert bare.returncode == 2 and "Usage" in bare.stdout and not bare.stderr.strip()


def test_global_options_may_follow_the_command(tmp_path):
    from pipeline.cli import app, hoist_globals
    import typer.main

    group = typer.main.get_command(app)
    assert hoist_globals(["search", "x", "-k", "2", "--kb", "d", "-q"], group) == ["--kb", "d", "-q", "search", "x", "-k", "2"]
    assert hoist_globals(["-v", "ask", "q", "--config=c.yaml"], group) == ["-v", "--config=c.yaml", "ask", "q"]
    # vram has its own --config (a model's config.json); a value and what follows `--` are not options
    assert hoist_globals(["vram", "--config", "m.json", "-q"], group) == ["-q", "vram", "--config", "m.json"]
    assert hoist_globals(["search", "--doc", "--kb", "x"], group) == ["search", "--doc", "--kb", "x"]
    assert hoist_globals(["search", "--", "--kb"], group) == ["search", "--", "--kb"]
    result = run_cli("search", "anything", "--kb", str(tmp_path / "none"), "-q")
    assert result.returncode == 1 and "no knowledge base" in result.stderr and str(tmp_path / "none") in result.stderr


def test_ctrl_c_says_interrupted_and_exits_130(tmp_path, monkeypatch, capsys):
    import pytest

    import pipeline.api
    from pipeline.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.api, "KnowledgeBase", interrupted)  # Ctrl-C while the command runs
    with pytest.raises(SystemExit) as stop:
        main(["--kb", str(tmp_path), "list"])
    assert stop.value.code == 130 and "interrupted" in capsys.readouterr().err
