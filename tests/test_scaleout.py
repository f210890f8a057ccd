"""Scale-out on a local Ray instance (``ray.init(num_cpus=2)``, one per module): the per-file work on
Ray workers gives the same knowledge base as a local ingest, a worker killed mid-task is retried and
the KB stays whole, a bad file fails alone; and the cluster planner's arithmetic.

Ray is the optional extra `make test` installs (requirements-ray.txt); these tests do not skip
without it, they fail and say what to install."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

import pdfgen
from asr_fakes import MEDIA, asr_cache  # noqa: F401 (fixture)
from conftest import ROOT, run_cli

from pipeline.progress import Progress

GiB = 2**30
QUERIES = ["how much memory does a seven billion parameter model need", "How do bees tell each other where the flowers are?",
           "bytes per parameter for training with Adam"]


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory, asr_cache):  # noqa: F811
    """One local Ray instance for the module; its workers inherit the fault hook's settings (it fires
    only for a file named killed.m4a)."""
    try:
        import ray
    except ImportError:
        pytest.fail("Ray is not installed: run `make ray` (or pip install -r requirements-ray.txt)")
    from pipeline.scaleout.work import FAULT_DIR, FAULT_EXIT

    faults = tmp_path_factory.mktemp("faults")
    saved = {k: os.environ.get(k) for k in (FAULT_EXIT, FAULT_DIR)}
    os.environ.update({FAULT_EXIT: "killed.m4a", FAULT_DIR: str(faults)})  # local workers inherit the driver's env
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray, faults
    ray.shutdown()
    for k, v in saved.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def tiny_cfg():
    from pipeline.config import load_config

    return load_config(ROOT / "config.yaml", overrides={"asr.model": "tiny.en", "slides.enabled": False})


class Recorder(Progress):
    def __init__(self):
        self.done, self.audio_seen = [], []

    def file_done(self, outcome):
        self.done.append(outcome)

    def audio(self, done, total):
        self.audio_seen.append((done, total))


def _kb_view(kb) -> dict:
    docs = {Path(d.path).name: (d.kind, d.title, d.n_pages, d.n_chunks, d.sha256) for d in kb.documents()}
    chunks = sorted(tuple(r) for r in kb.catalog.db.execute(
        "SELECT d.title, c.ord, c.text, c.t_start, c.page_start FROM chunks c JOIN documents d ON d.id = c.doc_id"))
    hits = [[(Path(h.path).name, h.text) for h in kb.search(q, k=3)] for q in QUERIES]
    return {"docs": docs, "chunks": chunks, "hits": hits}


def test_ray_ingest_gives_the_same_kb_as_local_ingest(ray_session, tiny_cfg, topic_pdf, tmp_path):
    from pipeline.kb import KnowledgeBase

    files = [MEDIA / "clean.m4a", MEDIA / "noisy.m4a", MEDIA / "lecture.m4a", topic_pdf, ROOT / "tests" / "fixtures" / "gpu-memory-guide.pdf"]
    with KnowledgeBase(tiny_cfg, tmp_path / "local", create=True) as local:  # the same (ONNX) embedder as the workers
        assert all(o.status == "added" for o in local.ingest(files))
        expected = _kb_view(local)
    progress = Recorder()
    with KnowledgeBase(tiny_cfg, tmp_path / "ray", create=True) as kb:
        outcomes = kb.ingest(files, progress, ray="local")
        assert [o.status for o in outcomes] == ["added"] * 5, [o.message for o in outcomes]
        assert [Path(o.path).name for o in outcomes] == [f.name for f in files]  # reported in input order
        got = _kb_view(kb)
        assert got["docs"] == expected["docs"]
        assert got["chunks"] == expected["chunks"]
        assert got["hits"] == expected["hits"]
        # progress over files and audio hours, fed by finished tasks
        assert len(progress.done) == 5
        done, total = progress.audio_seen[-1]
        assert total > 60 and done == pytest.approx(total)
        # dedup by hash and resume are unchanged: a second run does nothing
        again = kb.ingest(files, ray="local")
        assert {o.status for o in again} == {"unchanged"}


def test_a_worker_killed_mid_task_is_retried_and_the_kb_stays_whole(ray_session, tiny_cfg, tmp_path):
    from pipeline.kb import KnowledgeBase

    ray, faults = ray_session
    killed = tmp_path / "killed.m4a"  # the fault hook makes the worker exit after this file's work, once
    shutil.copy(MEDIA / "noisy.m4a", killed)
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    book = pdfgen.topic_book(tmp_path / "book.pdf")
    twin = tmp_path / "twin.pdf"  # the same bytes twice in one batch: one document, as locally
    shutil.copy(book, twin)
    with KnowledgeBase(tiny_cfg, tmp_path / "kb", create=True) as kb:
        outcomes = {Path(o.path).name: o for o in kb.ingest([killed, broken, book, twin], ray="local")}
        assert outcomes["twin.pdf"].status == "duplicate"
        assert (faults / "syllabus-fault-killed.m4a").exists(), "the worker was not killed"
        assert outcomes["killed.m4a"].status == "added", outcomes["killed.m4a"].message
        assert outcomes["book.pdf"].status == "added"
        assert outcomes["broken.mp4"].status == "failed" and "broken.mp4" in outcomes["broken.mp4"].message
        docs = {Path(d.path).name: d for d in kb.documents()}
        assert set(docs) == {"killed.m4a", "book.pdf"}
        for name, d in docs.items():  # whole documents: every chunk of each, once
            assert d.n_chunks == outcomes[name].chunks > 0
            n = kb.catalog.db.execute("SELECT COUNT(*) FROM chunks WHERE doc_id=?", (d.id,)).fetchone()[0]
            assert n == d.n_chunks
        assert kb._indexes_current()
        assert kb.search("memory for a seven billion parameter model", k=1)[0].path == str(killed.resolve())


def test_transcribe_on_ray_writes_the_same_transcript(ray_session, tiny_cfg, tmp_path):
    from pipeline.scaleout.work import transcribe_runner
    from pipeline.speech import transcribe_batch

    here = transcribe_batch([MEDIA / "clean.m4a"], tiny_cfg, output_dir=tmp_path / "here", formats="txt")
    progress = Recorder()
    there = transcribe_batch([MEDIA / "clean.m4a"], tiny_cfg, output_dir=tmp_path / "ray", formats="txt",
                             progress=progress, runner=transcribe_runner("local", tiny_cfg))
    [r] = there.files
    assert r.status == "done" and r.duration == here.files[0].duration
    assert (tmp_path / "ray" / "clean.txt").read_text() == (tmp_path / "here" / "clean.txt").read_text()
    assert len(progress.done) == 1 and progress.audio_seen[-1][0] > 10


def test_plan_cluster_reads_the_cluster_and_prints_workers_and_hours(ray_session, tmp_path):
    import json

    ray, _ = ray_session
    address = ray.get_runtime_context().gcs_address  # the test's instance, reached as a cluster by address
    result = run_cli("plan", "--cluster", address, "--audio-hours", "100", "--pages", "5000", "--json", timeout=240)
    assert result.returncode == 0, result.stderr[-800:]
    data = json.loads(result.stdout)
    assert data["cluster"]["cpus"] == 2 and data["cluster"]["gpus"] == 0
    assert 1 <= data["workers"]["speech"] <= 2 and 1 <= data["workers"]["documents"] <= 2
    assert data["hours"]["speech"] > 0 and data["hours"]["total"] >= data["hours"]["speech"]


def test_ray_missing_is_one_line_naming_what_to_install(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    for args in (["ingest", str(MEDIA / "clean.m4a"), "--ray"], ["transcribe", str(MEDIA / "clean.m4a"), "--ray", "auto"],
                 ["plan", "--cluster"]):
        result = run_cli("--kb", str(tmp_path / "kb"), *args,
                         env={"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])})
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "pip install 'syllabus[ray]'" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "kb" / "catalog.sqlite").exists()


def test_everything_but_ray_runs_without_ray(topic_pdf, tmp_path):
    """Ray is an extra: only pipeline/scaleout imports it, and the make-run path works with it blocked."""
    importers = [str(p.relative_to(ROOT)) for base in ("pipeline", "ingest", "syllabus_common")
                 for p in (ROOT / base).rglob("*.py")
                 if "scaleout" not in p.parts and any(line.strip().startswith(("import ray", "from ray"))
                                                       for line in p.read_text().splitlines())]
    assert importers == []
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    kb = str(tmp_path / "kb")
    for args in (["ingest", str(topic_pdf)], ["search", "bees flowers", "-k", "2", "--json"], ["plan", "--json"]):
        result = run_cli("--kb", kb, *args, env=env)
        assert result.returncode == 0, (args, result.stderr[-1500:])
    assert "topics.pdf" in run_cli("--kb", kb, "list", "--json", env=env).stdout


def test_the_cli_reads_ray_without_an_address_as_local():
    from pipeline.cli import optional_values

    assert optional_values(["ingest", "--ray", "a.mp4"]) == ["ingest", "--ray=local", "a.mp4"]
    assert optional_values(["ingest", "a.mp4", "--ray"]) == ["ingest", "a.mp4", "--ray=local"]
    assert optional_values(["ingest", "--ray", "auto", "a.mp4"]) == ["ingest", "--ray", "auto", "a.mp4"]
    assert optional_values(["plan", "--cluster", "10.0.0.1:6379"]) == ["plan", "--cluster", "10.0.0.1:6379"]


def test_workers_are_packed_on_a_gpu_by_the_planners_estimate(cfg, tmp_path):
    from pipeline.scaleout.cluster import ClusterInfo, capacity, plan_cluster, split_workers, worker_shapes

    resources = {"CPU": 64.0, "GPU": 4.0, "memory": 256 * GiB, "accelerator_type:H100": 4.0}
    info = ClusterInfo.from_resources(resources, nodes=1)
    assert info.gpu_bytes > 79 * GiB
    shapes = worker_shapes(cfg, info)
    speech, docs = shapes["speech"], shapes["documents"]
    assert 0 < docs.num_gpus < speech.num_gpus < 0.2  # whisper + embedder on an 80 GB card: a small share
    per_gpu = int(1 / speech.num_gpus + 1e-9)
    assert capacity(speech, info) == min(64, per_gpu * 4, 256 * GiB // speech.memory)
    counts = split_workers(shapes, info, {"speech": 1000, "documents": 10})
    assert counts["documents"] >= 1 and counts["speech"] > counts["documents"]  # shared by files per worker
    assert sum(counts.values()) == 64  # every CPU busy (the GPUs would hold more)
    used = sum(shapes[k].num_gpus * n for k, n in counts.items())
    assert used <= 4 and sum(counts.values()) <= 64
    bench = tmp_path / "bench_ray.json"
    bench.write_text('{"per_worker": {"speech": {"rate": 10.0}, "speech_gpu": {"rate": 100.0}, "documents": {"rate": 50.0}}}')
    cp = plan_cluster(cfg, resources, 1, audio_hours=100, pages=0, bench=bench)
    assert cp.hours["speech"] == pytest.approx(100 * 3600 / (100.0 * cp.workers["speech"]) / 3600, abs=1e-3)
    cpu_only = plan_cluster(cfg, {"CPU": 2.0, "memory": 8 * GiB}, 1, audio_hours=1, pages=100, bench=bench)
    assert cpu_only.shapes["speech"].num_gpus == 0 and cpu_only.hours["total"] > 0


def test_a_worker_that_cannot_reach_the_kb_sends_the_transcript_back(tiny_cfg, asr_cache, tmp_path):  # noqa: F811
    import json

    from ingest.hashing import sha256_file
    from pipeline.scaleout.work import IngestWorker, _keep_derived

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the KB's cache/ would be: this worker cannot write there")
    sha = sha256_file(MEDIA / "clean.m4a")
    status, prepared = IngestWorker(tiny_cfg).prepare(str(MEDIA / "clean.m4a"), sha, str(blocked / "cache"))
    assert status == "ok" and prepared.chunks
    [name] = prepared.derived
    assert name.startswith(f"transcripts/{sha}-")
    _keep_derived(tmp_path / "kb" / "cache", prepared.derived)
    kept = json.loads((tmp_path / "kb" / "cache" / name).read_text())
    assert "memory" in " ".join(s["text"] for s in kept["segments"]).lower()
    _keep_derived(tmp_path / "kb" / "cache", {"../escape.json": "{}"})  # never outside the cache
    assert not (tmp_path / "kb" / "escape.json").exists()
