"""Evidence first, every claim checked: the verifier, evidence selection, key points, answer modes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.quantities import quantities, supports
from pipeline.sentences import split
from pipeline.verify import Faithfulness, verify
from test_llm_support import FakeLLM, fake_backend, llm_config, shared_llm

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "fixtures" / "gpu-memory-guide.pdf"
LORA_Q = "How much GPU memory does LoRA fine-tuning of a 7B model need?"
LORA_FACT = "LoRA fine-tuning of a 7B model fits in about 16 to 24 GB of GPU memory with 16-bit base weights."


# ----- verifier (no model)
@pytest.mark.parametrize("claim", [
    "LoRA fine-tuning of a 7B model needs 16–24 GB [1].",
    "LoRA fine-tuning of a 7B model needs 16-24GB. [1]",
    "LoRA fine-tuning of a 7B model fits in sixteen to twenty-four gigabytes [1].",
    "LoRA fine-tuning of a 7B model fits in between 16 and 24 GB of GPU memory [1].",
])
def test_formatting_variants_of_a_range_are_supported(claim):
    [v] = verify(claim, {1: LORA_FACT})
    assert v.supported, v.reason
    assert v.cited == [1] and v.matched == 1


@pytest.mark.parametrize("claim, why", [
    ("LoRA fine-tuning of a 7B model needs 100 to 140 GB [1].", "100 to 140 GB"),  # the full fine-tuning figure
    ("LoRA fine-tuning of a 7B model needs 16 to 24 TB [1].", "TB"),  # right numbers, wrong unit
    ("LoRA fine-tuning of a 7B model needs 16 to 24 GB.", "cites nothing"),
    ("LoRA fine-tuning of a 7B model needs 16 to 24 GB [4].", "not evidence"),
    ("Your iOS phone may overheat while fine-tuning [1].", "iOS"),
    ("LoRA fine-tuning of a 7B model does not fit in 16 to 24 GB [1].", "negates"),
])
def test_wrong_numbers_units_names_and_missing_citations_are_unsupported(claim, why):
    [v] = verify(claim, {1: LORA_FACT, 2: "Full fine-tuning of a 7B model needs roughly 100 to 140 GB."})
    assert not v.supported
    assert why in v.reason or why in " ".join(v.claims)


def test_numbers_match_across_writing_conventions():
    evidence = "The table has 1,000 rows and 25 percent of them are empty; a 7B model."
    ev = quantities(evidence)
    for claim in ("1000 rows", "25%", "7 billion", "一千", "百分之二十五"):
        assert all(supports(q, ev, evidence) for q in quantities(claim)) and quantities(claim), claim
    for claim in ("2000 rows", "52%", "70 billion"):
        assert not any(supports(q, ev, evidence) for q in quantities(claim)), claim


def test_traditional_chinese_sentence_is_checked_against_english_evidence():
    good = verify("用 LoRA 微調 7B 模型大約需要十六到二十四 GB 的記憶體 [1]。", {1: LORA_FACT})
    bad = verify("用 LoRA 微調 7B 模型大約需要一百到一百四十 GB [1]。", {1: LORA_FACT})
    alien = verify("用 QLoRA 微調 7B 模型大約需要 16 到 24 GB [1]。", {1: LORA_FACT})
    assert good[0].supported, good[0].reason
    assert not bad[0].supported and not alien[0].supported


def test_sentences_keep_code_lines_whole_and_drop_page_numbers():
    text = ("2.1 Vectors and assignment\nTo set up a vector named x, use the R\ncommand\n"
            "> x <- c(10.4, 5.6, 3.1, 6.4, 21.7)\n12\nThis is an assignment state-\nment. 訓練需要記憶體。每個參數 16 位元組。")
    got = split(text)
    kinds = [(s.kind, s.text) for s in got]
    assert ("code", "> x <- c(10.4, 5.6, 3.1, 6.4, 21.7)") in kinds
    assert ("prose", "This is an assignment statement.") in kinds
    assert ("prose", "訓練需要記憶體。") in kinds and not any(t == "12" for _, t in kinds)
    assert all(text[s.start:s.end].split()[0] == s.text.split()[0] for s in got)


def test_faithfulness_line_counts_checked_and_dropped(embedder):
    from ingest.types import Span
    from pipeline.keypoints import checked_prose, key_points

    chapter = ("Low-rank adaptation (LoRA) freezes the base model and trains two small matrices per adapted layer. "
               + LORA_FACT + " For a 70B model LoRA needs roughly 140 to 200 GB of memory in total.")
    points = key_points([Span(chapter, ("3 Fine-tuning",), page=5)], embedder, {5: "3"}, k=2)
    instructions = "You rewrite numbered key points into a short paragraph for a student. Use only the key points."
    prose = ("LoRA freezes the base model and trains two small matrices per adapted layer. "
             "LoRA fine-tuning of a 7B model fits in about 500 GB of GPU memory. "
             "Rewrite numbered key points into a short paragraph for a student.")
    total = Faithfulness()
    kept, verdicts = checked_prose(prose, points, chapter, instructions, total)
    assert total.checked == 3 and total.dropped == 2
    assert total.line == "claims checked: 3, unsupported dropped: 2"
    assert "500" not in kept and "Rewrite" not in kept and "freezes" in kept
    assert [v.supported for v in verdicts] == [True, False, False]


# ----- on the sample book (real embedder, real PDF, real KB)
@pytest.fixture(scope="module")
def sample_kb(cfg, embedder, tmp_path_factory):
    from pipeline.kb import KnowledgeBase

    kb = KnowledgeBase(cfg, tmp_path_factory.mktemp("trust") / "kb", embedder=embedder, create=True)
    kb.ingest([SAMPLE])
    yield kb
    kb.close()


def _passages(kb, question):
    from pipeline.evidence import Passage

    return [Passage.from_hit(h, i + 1) for i, h in enumerate(kb.search(question, k=5))]


def test_lying_model_sentence_is_dropped_and_evidence_printed(sample_kb, embedder):
    from pipeline.llm import load_llm
    from pipeline.llm.base import GenerationOptions, LoadContext
    from pipeline.prompting import PromptSet
    from pipeline.trusted import trusted_answer

    def lie(messages):  # states the full fine-tuning figure, citing the LoRA evidence, then a true sentence
        facts = dict(re.findall(r"^\[(\d+)\] (.+)$", messages[-1]["content"], re.M))
        n = next(k for k, t in facts.items() if "16 to 24" in t)
        return f"LoRA fine-tuning of a 7B model needs 100 to 140 GB [{n}]. {facts[n]} [{n}]"

    with fake_backend(FakeLLM(reply=lie)):
        llm = load_llm(llm_config(backend="fake").llm, LoadContext())
        out = trusted_answer(LORA_Q, _passages(sample_kb, LORA_Q), embedder, llm, PromptSet(),
                             GenerationOptions(max_new_tokens=80), mode="generative")
    assert [v.supported for v in out.verdicts] == [False, True]
    assert "100 to 140" not in out.answer and "16 to 24 GB" in out.answer
    assert out.faithfulness.dropped == 1
    printed = out.render()
    assert "16 to 24 GB" in printed.split("\n\n")[0]  # the evidence block comes first
    lora = next(e for e in out.evidence if "16 to 24" in e.text)
    assert lora.page_label == "3" and "p. 3" in printed
    marked = out.render(show_unsupported=True)
    assert "[unsupported]" in marked and "100 to 140" in marked
    data = out.as_dict()
    assert {"supported", "cited", "matched"} <= set(data["verdicts"][0]) and data["evidence"][0]["where"]


def test_traditional_chinese_question_gets_cited_evidence(sample_kb, embedder):
    from pipeline.trusted import trusted_answer

    q = "用 LoRA 微調 7B 模型需要多少 GPU 記憶體？"
    out = trusted_answer(q, _passages(sample_kb, q), embedder, mode="extractive")
    assert out.language == "zh-TW" and out.evidence
    assert all(e.page is not None and re.match(r"pp?\. ", e.where) for e in out.evidence)
    assert any("16 to 24 GB" in e.text and e.page_label == "3" for e in out.evidence)
    assert out.note and "證據" in out.render()


def test_summary_bullets_carry_pages_that_hold_their_sentences(embedder):
    import pymupdf

    from pipeline.evidence import squash
    from pipeline.keypoints import key_points
    from pipeline.outline import from_pdf

    doc = from_pdf(SAMPLE)
    points = key_points(doc.spans, embedder, doc.labels, k=6)
    assert len(points) == 6
    with pymupdf.open(SAMPLE) as pdf:
        pages = {i + 1: squash(p.get_text()) for i, p in enumerate(pdf)}
    for p in points:
        assert squash(p.text) in pages[p.page], (p.page, p.text)
        assert p.where == f"p. {doc.labels[p.page]}"
    spans_in_order = [p.page for p in points]
    assert spans_in_order == sorted(spans_in_order)  # reading order


# ----- answer modes
def test_auto_mode_is_measured_once_per_model_and_cached(tmp_path):
    from pipeline.ability import PROBES, resolve_mode
    from pipeline.llm.base import GenerationOptions
    from pipeline.prompting import PromptSet

    def copy_fact(messages):  # an able model: restates the fact that holds the question's subject
        text = messages[-1]["content"]
        facts = re.findall(r"^\[(\d+)\] (.+)$", text, re.M)
        return f"{facts[0][1]} [{facts[0][0]}]"

    able, unable = FakeLLM(reply=copy_fact, name="able"), FakeLLM(reply=lambda m: "It holds 5 litres [1].", name="unable")
    opts = GenerationOptions()
    assert resolve_mode("auto", able, PromptSet(), opts, tmp_path) == "generative"
    assert resolve_mode("auto", unable, PromptSet(), opts, tmp_path) == "extractive"
    assert len(able.calls) == len(PROBES) and (tmp_path / "ability.json").is_file()
    assert resolve_mode("auto", able, PromptSet(), opts, tmp_path) == "generative"
    assert len(able.calls) == len(PROBES)  # cached: not asked again
    assert resolve_mode("extractive", able, PromptSet(), opts, tmp_path) == "extractive"


def test_bundled_model_answer_holds_the_right_range(sample_kb, embedder, tmp_path):
    from pipeline.ability import resolve_mode
    from pipeline.llm.base import GenerationOptions
    from pipeline.prompting import PromptSet
    from pipeline.trusted import trusted_answer

    llm, prompts, opts = shared_llm(), PromptSet(), GenerationOptions(max_new_tokens=48)
    mode = resolve_mode("auto", llm, prompts, opts, tmp_path)
    out = trusted_answer(LORA_Q, _passages(sample_kb, LORA_Q), embedder, llm, prompts, opts, mode=mode)
    printed = out.render()
    assert "16 to 24 GB" in printed and "p. 3" in printed
    assert all(v.supported for v in out.verdicts if v.text in out.answer)
    for q in quantities(out.answer):  # no number in the printed answer that its evidence lacks
        assert any(supports(q, quantities(e.text), e.text) for e in out.evidence), q


def test_prompts_hold_no_example_sentence_to_copy():
    paths = sorted((ROOT / "prompts").glob("*/*.txt"))
    assert {p.parent.name for p in paths} == {"en", "zh-TW"} and len(paths) >= 8
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"like this|for example|for instance|e\.g\.|such as|例如|比如|像是", text, re.I), path
        # no quoted sentence ("Factors store categories as integer codes [2].") a model could copy
        assert not re.search(r"[\"“「][^\"”」\n]*\w+ \w+ \w+[^\"”」\n]*[\"”」]|「[^」{}]{6,}」", text), path


def test_a_sentence_cut_by_a_page_break_is_one_key_point_on_its_first_page():
    from ingest.types import Span
    from pipeline.keypoints import _sentences

    where = ("2 Spreadsheet-like data", "Variations on read.table")
    spans = [Span(text="Set colClasses. It will help to give nrows, the number", section_path=where, page=14),
             Span(text="of rows to be read. See the examples.", section_path=where, page=15),
             Span(text="A list item without a stop", section_path=where, page=16),
             Span(text="Another page starts a sentence.", section_path=where, page=17),
             Span(text="A table ends here", section_path=("3 Other",), page=18),
             Span(text="then a new section goes on.", section_path=("4 Next",), page=19)]
    got = [(span.page, s.text) for span, s in _sentences(spans)]
    assert (14, "It will help to give nrows, the number of rows to be read.") in got
    assert (15, "See the examples.") in got and not any(t.startswith("of rows") for _, t in got)
    # Not joined: the next page starts a sentence of its own, or another section goes on
    assert (16, "A list item without a stop") in got and (17, "Another page starts a sentence.") in got
    assert (18, "A table ends here") in got and (19, "then a new section goes on.") in got
