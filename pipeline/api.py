"""The Python API: one function per use case, each returning a dataclass (what the CLI renders,
``eval/`` scores and the tests check).

    from pipeline.api import KnowledgeBase, answer, load_config, load_model
    cfg = load_config()                                   # config.yaml, defaults merged
    with KnowledgeBase(cfg, "my-kb", create=True) as kb:
        kb.ingest(["book.pdf", "lecture.mp4"])            # → [IngestOutcome]
        hits = kb.search("LoRA memory", k=5)              # → [Hit]
        llm = load_model(cfg, kb.path)
        result = answer(kb, llm, "How much memory does LoRA need?", on_delta=print)   # → Answer

=====================  ======================================================================
``answer``             a cited answer from a knowledge base, streamed through ``on_delta``
``summarize``          a PDF, a recording or a KB document, chapter by chapter → BookSummary
``transcribe_batch``   recordings → SRT/VTT/TXT/JSON files, resumable → TranscribeBatch
``estimate``           GPU memory to run or train a model, component by component → VramReport
``plan``               the models and precisions that fit this machine → MachinePlan
``finetune``           how to fine-tune a model on the GPUs at hand, ranked → FinetunePlan
``KnowledgeBase``      ingest, search, list and remove documents (``ingest(..., ray=ADDRESS)``: on a Ray cluster)
``cluster_plan``       workers per stage on a Ray cluster and the hours a job takes there → ClusterPlan
``summarize_many``     several books at once, ``llm.concurrency`` model calls in flight → [BookSummary]
=====================  ======================================================================

Importing this module loads no model library; each call imports what it needs.
"""

from __future__ import annotations

from pipeline.ask import Answer, Citation, answer
from pipeline.config import Config, load_config
from pipeline.fanout import summarize_many
from pipeline.kb import IngestOutcome, KnowledgeBase
from pipeline.kb.store import Hit
from pipeline.llm import load_model
from pipeline.planner.finetune import FinetunePlan
from pipeline.planner.usecases import MachinePlan, VramReport, estimate, finetune, plan
from pipeline.progress import Progress
from pipeline.scaleout.cluster import ClusterPlan, cluster_plan
from pipeline.speech import FileTranscript, TranscribeBatch, transcribe_batch
from pipeline.summarize import BookSummary, summarize

__all__ = [
    "Answer", "BookSummary", "Citation", "ClusterPlan", "Config", "FileTranscript", "FinetunePlan", "Hit", "IngestOutcome",
    "KnowledgeBase", "MachinePlan", "Progress", "TranscribeBatch", "VramReport", "answer", "cluster_plan", "estimate", "finetune",
    "load_config", "load_model", "plan", "summarize", "summarize_many", "transcribe_batch",
]
