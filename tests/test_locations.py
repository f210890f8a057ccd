"""Places in the words of each format: paragraphs in notes files (stored with the chunks, shown in hits,
citations and `list`), slides, e-book locations and times in summaries' and citations' wording; and the
OCR recognizer's rewritten graph computing what the shipped one does."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli
from fixtures.make_formats import CHAPTERS

FORMATS = Path(__file__).parent / "fixtures" / "formats"
# Body blocks before chapter i's text: Markdown has a code block after every chapter's paragraph.
FIRST_PARA = {"notes.md": lambda i: 2 * i + 1, "notes.docx": lambda i: i + 1, "notes.html": lambda i: i + 1}


@pytest.fixture(scope="module")
def notes_kb(tmp_path_factory, embedder):
    from pipeline.config import load_config
    from pipeline.kb import KnowledgeBase

    path = tmp_path_factory.mktemp("notes") / "kb"
    kb = KnowledgeBase(load_config(ROOT / "config.yaml"), path, embedder=embedder, create=True)
    outcomes = kb.ingest([FORMATS / n for n in (*FIRST_PARA, "slides.pptx")])
    assert [o.status for o in outcomes] == ["added"] * 4, [o.message for o in outcomes]
    yield kb
    kb.close()


@pytest.mark.parametrize("name", list(FIRST_PARA))
def test_notes_hits_name_the_paragraph_the_phrase_is_in(notes_kb, name):
    for i, (title, body) in enumerate(CHAPTERS):
        phrase = " ".join(body.split(". ")[1].split()[:4])
        [hit] = notes_kb.search(phrase, k=1, docs=[name])
        assert hit.section.split(" > ")[-1] == title
        assert hit.para_start == FIRST_PARA[name](i), (name, phrase, hit.para_start, hit.para_end)
        assert hit.where.startswith(f"¶ {FIRST_PARA[name](i)}") and "p." not in hit.where
        assert hit.as_dict()["where"] == hit.where  # what `search --json` prints


def test_notes_citations_and_list_use_paragraphs_and_slides(notes_kb):
    from pipeline.ask import Citation
    from syllabus_common.places import extent

    [hit] = notes_kb.search("violin method of adapters", k=1, docs=["notes.md"])
    cite = Citation(n=1, doc=hit.title, path=hit.path, page_label=None, page=None, page_end=None, page_label_end=None,
                    section=hit.section, time=None, text=hit.text, similarity=1.0, doc_kind=hit.kind,
                    para_start=hit.para_start, para_end=hit.para_end)
    assert cite.where == "¶ 5–6"
    docs = {Path(d.path).name: d for d in notes_kb.documents()}
    assert docs["notes.md"].n_paras == 6 and docs["notes.docx"].n_paras == 3
    assert extent("md", docs["notes.md"].n_pages, docs["notes.md"].n_paras) == "6 ¶"
    assert extent("pptx", docs["slides.pptx"].n_pages) == "3 slides"
    assert extent("pdf", 1) == "1 page" and extent("epub", 40) == "40 loc." and extent("media", 0) == ""


def test_a_catalog_from_before_paragraphs_gains_the_columns(tmp_path):
    from pipeline.kb.catalog import Catalog

    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    db.execute("""CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, ord INTEGER NOT NULL,
                  text TEXT NOT NULL, section_path TEXT NOT NULL, page_start INTEGER, page_end INTEGER,
                  t_start REAL, t_end REAL, n_tokens INTEGER NOT NULL, embedding BLOB NOT NULL, kind TEXT)""")
    db.execute("INSERT INTO chunks VALUES (1, 1, 0, 'old text', 'A', NULL, NULL, NULL, NULL, 2, x'00', NULL)")
    db.commit()
    db.close()
    catalog = Catalog(tmp_path / "catalog.sqlite")
    [row] = catalog.chunks([1]).values()
    assert row.text == "old text" and row.para_start is None and row.para_end is None


def test_places_are_named_in_the_words_of_each_format():
    from syllabus_common.places import locate

    assert locate("pdf", 4, 9, "iv", "ix") == "pp. iv–ix (pdf pp. 4–9)"
    assert locate("pdf", 39, 40, "33", "34") == "pp. 33–34 (pdf pp. 39–40)"  # not "(pdf p. 39)": both pages
    assert locate("pdf", 12, 12, chunk_kind="ocr") == "p. 12, OCR"
    # A summary heading knows labels only: the same call serves it.
    assert locate("pdf", label="3", label_end="7") == "pp. 3–7"
    assert locate("epub", label="3", label_end="7") == "loc. 3–7"
    assert locate("pptx", label="12", label_end="12") == "slide 12"
    assert locate("pptx", 3, 5) == "slides 3–5"
    assert locate("media", t_start=750.0, t_end=845.0) == "12:30–14:05"
    assert locate("media", t_start=750.0, t_end=845.0, chunk_kind="slide") == "slide, 12:30–14:05"
    assert locate("md", para=7) == "¶ 7" and locate("docx", para=7, para_end=9) == "¶ 7–9"
    assert locate("md") == "" and locate("html", para=2, chunk_kind="ocr") == "¶ 2, OCR"


def test_search_cli_prints_paragraph_locations(notes_kb):
    result = run_cli("--kb", str(notes_kb.path), "search", "lighthouse rule", "-k", "1", "--doc", "notes.docx")
    assert result.returncode == 0, result.stderr
    assert "¶ 2" in result.stdout and "Optimizer State" in result.stdout
    listed = run_cli("--kb", str(notes_kb.path), "list", env={"COLUMNS": "200"})
    assert "3 slides" in listed.stdout and "6 ¶" in listed.stdout, listed.stdout
    lengths = {Path(d["path"]).name: d["length"] for d in json.loads(run_cli("--kb", str(notes_kb.path), "list", "--json").stdout)["documents"]}
    assert lengths == {"notes.md": "6 ¶", "notes.docx": "3 ¶", "notes.html": "3 ¶", "slides.pptx": "3 slides"}


def test_rewritten_recognizer_graph_computes_what_the_shipped_one_does():
    ort = pytest.importorskip("onnxruntime")
    rapid = pytest.importorskip("rapidocr_onnxruntime")
    from ingest.ocr_graph import fused_model

    path = Path(rapid.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"
    data, counts = fused_model(path)
    assert counts["affine folded into conv"] >= 20 and counts["hard-swish as HardSigmoid"] >= 20, counts
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    shipped = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    fused = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 320)).astype(np.float32)  # two text-line crops
    a, b = shipped.run(None, {"x": x})[0], fused.run(None, {"x": x})[0]  # (2, T, classes) probabilities
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
    assert (a.argmax(-1) == b.argmax(-1)).all()
    import onnx

    assert len(onnx.load_from_string(data).graph.node) < len(onnx.load(str(path)).graph.node) - 50
