"""The torch-free query path: ONNX Runtime embeddings against PyTorch's, and what `search` imports."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

import pdfgen
from conftest import ROOT
from test_llm_support import onnx_embedder


@pytest.fixture(scope="module")
def onnx(cfg):
    return onnx_embedder()


@pytest.fixture(scope="module")
def topic_chunks(cfg, embedder, topic_pdf):
    from ingest.pdf import extract_pdf
    from pipeline.chunking import Chunker

    chunks = Chunker(embedder.count_tokens, cfg.chunking.size, cfg.chunking.overlap).chunk(extract_pdf(topic_pdf).spans)
    return [c.text for c in chunks]


def test_onnx_vectors_match_pytorch_on_the_test_chunks(onnx, embedder, topic_chunks):
    assert onnx.runtime == "onnx"
    texts = topic_chunks + [q for q, _page in pdfgen.QUESTIONS]
    ours = onnx.encode(texts)
    from sentence_transformers import SentenceTransformer  # fp32, no autocast: the reference

    from syllabus_common.models import bundled_path

    reference = SentenceTransformer(str(bundled_path("all-MiniLM-L6-v2")), device="cpu").encode(texts, normalize_embeddings=True)
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine.min()
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_onnx_tokenizer_counts_like_the_model_tokenizer(onnx, embedder, topic_chunks):
    for text in topic_chunks[:5] + ["", "read.table() 與 LoRA", "x" * 3000]:
        assert onnx.count_tokens(text) == embedder.count_tokens(text)
    assert (onnx.max_tokens, onnx.special_tokens, onnx.dim) == (embedder.max_tokens, embedder.special_tokens, embedder.dim)


def test_search_gives_the_same_results_on_onnx_and_pytorch(kb_factory, topic_pdf, onnx, embedder, cfg):
    from pipeline.embed import Embedder
    from pipeline.kb import KnowledgeBase

    kb = kb_factory()
    kb.ingest([topic_pdf])  # stored vectors come from PyTorch
    fp32 = Embedder(embedder.name, "cpu", precision="fp32")  # the reference (the default may autocast to bf16)
    fp32.model = embedder.model
    opened = [KnowledgeBase(cfg, kb.path, embedder=e) for e in (fp32, onnx)]
    try:
        for question, _page in pdfgen.QUESTIONS:
            for mode in ("rrf", "dense"):
                a, b = ([(h.chunk_id, round(h.score, 4)) for h in x.search(question, k=5, fusion=mode)] for x in opened)
                assert a == b, (question, mode)
    finally:
        for x in opened:
            x.close()


_PROBE = """
import json, sys
from pipeline.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = ('torch', 'transformers', 'sentence_transformers', 'fitz', 'pymupdf', 'faiss', 'bm25s', 'onnxruntime', 'numba')
print('MODULES', json.dumps([m for m in heavy if m in sys.modules]))
"""


def _imports(env, *args) -> set[str]:
    result = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=120)
    line = [x for x in result.stdout.splitlines() if x.startswith("MODULES ")]
    assert line, result.stderr[-2000:]
    return set(json.loads(line[-1].split(" ", 1)[1]))


def test_search_list_and_remove_import_no_torch(tmp_path, kb_factory, topic_pdf, onnx):
    import os

    from test_llm_support import cache_env

    kb = kb_factory()
    kb.ingest([topic_pdf])
    kb.close()
    env = dict(os.environ, **cache_env(tmp_path / "cache"))
    torch_family = {"torch", "transformers", "sentence_transformers", "fitz", "pymupdf"}
    searched = _imports(env, "--kb", str(kb.path), "search", "waggle dance", "--json")
    assert not searched & torch_family, searched
    assert {"onnxruntime", "faiss", "bm25s"} <= searched and "numba" not in searched
    assert not _imports(env, "--kb", str(kb.path), "search", "waggle dance", "--mode", "bm25") & torch_family
    listed = _imports(env, "--kb", str(kb.path), "list", "--json")
    assert not listed & (torch_family | {"faiss", "bm25s", "onnxruntime"}), listed
    removed = _imports(env, "--kb", str(kb.path), "remove", topic_pdf.name)
    assert not removed & torch_family, removed


def test_a_conversion_is_made_once_when_two_callers_race(tmp_path, monkeypatch):
    from syllabus_common.modelcache import build_once, read_marker

    monkeypatch.setenv("SYLLABUS_CACHE", str(tmp_path))
    builds, results = [], []

    def build(tmp):
        builds.append(1)
        threading.Event().wait(0.3)  # long enough for the other caller to arrive
        (tmp / "weights.bin").write_bytes(b"x" * 10)
        return {"made": True}

    target = tmp_path / "models" / "thing-0123"
    callers = [threading.Thread(target=lambda: results.append(build_once(target, build))) for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(builds) == 1 and len(results) == 3
    assert read_marker(target) == {"made": True} and (target / "weights.bin").read_bytes() == b"x" * 10
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_conversion_leaves_nothing_behind(tmp_path):
    from syllabus_common.modelcache import build_once

    def broken(tmp):
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    target = tmp_path / "models" / "thing"
    with pytest.raises(RuntimeError):
        build_once(target, broken)
    assert not target.exists() and not [p for p in target.parent.iterdir() if not p.name.endswith(".lock")]


def test_a_new_kb_finds_the_gguf_converted_for_another_copy_of_the_file(tmp_path, monkeypatch, cfg):
    """Keyed by content: a second KB, or the same GGUF installed elsewhere, does not convert again."""
    import shutil

    from pipeline.llm import context_for, convert

    monkeypatch.setenv("SYLLABUS_CACHE", str(tmp_path / "user-cache"))
    calls = []

    def fake_convert(gguf, out):  # the real conversion takes half a minute; the keying is what is tested
        calls.append(gguf)
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"")

    monkeypatch.setattr(convert, "_convert", fake_convert)
    source = convert.resolve_source("SmolLM2-135M-Instruct", None, True)
    copy = tmp_path / "elsewhere" / "model.gguf"
    copy.parent.mkdir()
    shutil.copyfile(source.location, copy)
    kbs = []
    for name in ("kb1", "kb2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "catalog.sqlite").write_bytes(b"")
        kbs.append(context_for(cfg, tmp_path / name).cache_dirs)
    first, _ = convert.converted_gguf(source, kbs[0])
    second, _ = convert.converted_gguf(convert.ModelSource("copy", "gguf", str(copy)), kbs[1])
    assert len(calls) == 1 and first == second
    assert first.parent == tmp_path / "user-cache" / "models"
