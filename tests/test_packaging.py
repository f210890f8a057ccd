"""A non-editable install finds its defaults (config.yaml, prompts/) as package data, from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_ships_config_and_runs_from_elsewhere(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "-w", str(wheels), str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    assert "Warning" not in built.stderr, built.stderr[-2000:]  # setuptools says nothing about our metadata
    [wheel] = list(wheels.glob("syllabus-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "syllabus_data/config.yaml" in names and "syllabus_common/errors.py" in names
    assert "prompts/en/answer.txt" in names and "prompts/zh-TW/answer.txt" in names
    assert "pipeline/cli.py" in names and "ingest/pdf.py" in names and "prompts/__init__.py" in names
    assert not any(n.startswith("tests/") for n in names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("SYLLABUS_CONFIG", None)
    code = ("import pipeline, sys; from pipeline.cli import main; print(pipeline.__file__, file=sys.stderr); "
            "main(['config', '--json'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stderr  # the installed copy, not the source tree
    assert '"fusion": "rrf"' in result.stdout and "built-in config.yaml" in result.stdout
