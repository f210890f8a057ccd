"""`syllabus vram` and `syllabus plan` through the real CLI: exit codes, JSON, plots, seed rule, measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _json(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _cli(*args, env=None):
    e = dict(os.environ, **(env or {}))
    code = "import sys; from pipeline.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, env=e,
                          timeout=120)


def test_vram_json_has_a_breakdown_in_gib_and_gb():
    data = _json(["vram", "--model", "llama-2-7b", "--mode", "inference", "--precision", "bf16", "--context", "4096", "--json"])
    (est,) = data["estimates"]
    keys = {c["key"] for c in est["components"]}
    assert {"weights", "kv_cache", "activations", "cuda_context"} <= keys
    kv = next(c for c in est["components"] if c["key"] == "kv_cache")
    assert kv["bytes"] == 2 * 2**30 and kv["gib"] == 2.0 and kv["gb"] == pytest.approx(2.147, abs=1e-3)
    assert est["total_gib"] > 14


def test_vram_precision_all_and_plot(tmp_path):
    png = tmp_path / "mem.png"
    data = _json(["vram", "--model", "llama-3.1-8b", "--precision", "all", "--plot", str(png), "--json"])
    totals = {e["precision"]: e["total_bytes"] for e in data["estimates"]}
    assert totals["fp32"] > totals["bf16"] > totals["int8"] > totals["nf4"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vram_rule_seed_beside_the_estimate():
    data = _json(["vram", "--params", "7B", "--mode", "full", "--precision", "fp32", "--rule", "seed", "--json"])
    assert data["seed"]["low_gb"] == pytest.approx(112.0)
    assert data["seed"]["differences"]
    result = runner.invoke(app, ["vram", "--params", "7B", "--mode", "full", "--precision", "fp32", "--rule", "seed"])
    assert result.exit_code == 0 and "16X" in result.stdout and "why it differs" in result.stdout


def test_vram_fit_check_on_a_card():
    data = _json(["vram", "--model", "qwen2.5-7b", "--precision", "all", "--gpu", "T4", "--json"])
    assert data["fits"]["nf4"] is True and data["fits"]["fp32"] is False


def test_vram_measure_on_a_local_config(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "intermediate_size": 768, "vocab_size": 4096, "max_position_embeddings": 2048}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    data = _json(["vram", "--config", str(tmp_path / "config.json"), "--mode", "lora", "--seq", "256", "--measure", "--json"])
    assert abs(data["measure"]["error"]) < 0.10


def test_vram_reads_a_gguf_header():
    from syllabus_common.models import bundled_path

    data = _json(["vram", "--config", str(bundled_path("SmolLM2-135M-Instruct")), "--json"])
    (est,) = data["estimates"]
    assert est["precision"] == "Q4_1"
    assert est["components"][0]["bytes"] == 96_576_768


def test_plan_json_for_a_card():
    data = _json(["plan", "--gpu", "RTX 4090", "--context", "8192", "--json"])
    assert set(data["stages"]) == {"speech", "embedding", "llm"}
    assert data["sharing"] in ("shared", "sequential") and data["explanation"]
    assert data["device"]["name"] == "RTX 4090"


def test_user_errors_are_one_line_with_exit_code_2():
    r = _cli("vram", "--model", "no-such-model")
    assert r.returncode == 2
    assert "unknown model" in r.stderr and "llama-2-7b" in r.stderr and "Traceback" not in r.stderr
    r = _cli("vram", "--model", "llama-2-7b", "--precision", "int3")
    assert r.returncode == 2 and "valid" in r.stderr
    r = _cli("plan", "--gpu", "Voodoo 2")
    assert r.returncode == 2 and "RTX 4090" in r.stderr


def test_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from pipeline.cli import app; "
            "r = CliRunner().invoke(app, ['vram', '--help']); assert r.exit_code == 0, r.output; "
            "r = CliRunner().invoke(app, ['plan', '--help']); assert r.exit_code == 0; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
