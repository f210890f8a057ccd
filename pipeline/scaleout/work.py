"""Ray actors that do the per-file work, and the driver loop that hands them files and takes the
results back.

Each worker is an actor: it loads its models once (Whisper, the embedder) and keeps them for every
file it is given. It asks the cluster for the resources the planner computed for its kind
(:func:`pipeline.scaleout.cluster.worker_shapes`), so Ray packs as many workers per GPU as fit.

Failures follow Ray's policy for actors: a worker process that dies (killed, out of memory, node
lost) is restarted up to ``MAX_RESTARTS`` times, rerunning its constructor, and the file it held is
given to it again up to ``MAX_TASK_RETRIES`` times (at-least-once actor tasks; see Ray's "Actor Fault
Tolerance"). A bad file raises nothing on the worker: its error comes back as the file's outcome and
is not retried, since it would fail the same way. Results are committed by the driver only when whole,
so nothing partial reaches the knowledge base.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.kb.types import IngestOutcome
from pipeline.progress import Progress
from syllabus_common.errors import SyllabusError

log = logging.getLogger(__name__)

MAX_RESTARTS = 2  # times a lost worker process is started again (its models reloaded)
MAX_TASK_RETRIES = 2  # times the file a lost worker held is handed to it again
FAULT_EXIT = "SYLLABUS_FAULT_EXIT"  # tests: a worker exits mid-task the first time it meets this file name
FAULT_DIR = "SYLLABUS_FAULT_DIR"  # ... remembering that it did in this folder (the restarted worker goes on)


def _fault_exit_once(name: str) -> None:
    """Fault injection for the tests: with SYLLABUS_FAULT_EXIT=<file name>, the worker process dies
    (``os._exit``, as a SIGKILL or an OOM kill would leave it) after doing that file's work and before
    answering, once. Unset, this does nothing."""
    if os.environ.get(FAULT_EXIT) != name:
        return
    marker = Path(os.environ.get(FAULT_DIR, "/tmp")) / f"syllabus-fault-{name}"
    if marker.exists():
        return
    marker.write_text(str(os.getpid()))
    os._exit(1)


def _portable(exc: BaseException) -> SyllabusError:
    """An error that travels back to the driver whatever library raised it (some do not pickle)."""
    if isinstance(exc, SyllabusError):
        return exc
    return SyllabusError(f"{type(exc).__name__}: {exc}")


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.access(folder, os.W_OK)
    except OSError:
        return False


class IngestWorker:
    """A Ray actor: file → document, chunks and embeddings (:func:`pipeline.kb.prepare.prepare_file`)."""

    def __init__(self, cfg):
        from pipeline.onnx_embed import embedder_for

        self.cfg = cfg
        self.embedder = embedder_for(cfg)
        self.embedder.encode(["warm up"])  # load now: once per worker, not in the first file's time

    def prepare(self, path: str, sha256: str, cache_dir: str):
        from pipeline.kb.prepare import prepare_file
        from pipeline.kb.writer import file_config
        from syllabus_common.models import user_cache_dir

        cache = Path(cache_dir)
        own = not _writable(cache)  # a node that does not see the KB's folder keeps its own cache ...
        if own:
            cache = user_cache_dir() / "ray-ingest-cache"
        try:
            prepared = prepare_file(Path(path), sha256, file_config(self.cfg, Path(path)), cache, self.embedder)
        except Exception as exc:
            return "error", _portable(exc)
        if own:  # ... and sends the transcript back with the result, for the KB's cache
            prepared.derived = {f"transcripts/{p.name}": p.read_text(encoding="utf-8")
                                for p in (cache / "transcripts").glob(f"{sha256}-*.json")}
        _fault_exit_once(Path(path).name)
        return "ok", prepared


class SpeechWorker:
    """A Ray actor for `transcribe --ray`: one loaded speech model, recordings → transcript files
    (:func:`pipeline.speech.transcribe_one`)."""

    def __init__(self, cfg, asr):
        from ingest.asr import load_backend, options_from_config

        self.cfg, self.asr = cfg, asr
        name, model_options, self.decode = options_from_config(asr, offline=cfg.offline)
        self.engine = load_backend(name, model_options)

    def transcribe(self, path: str, stem: str, settings: dict):
        from pipeline.speech import transcribe_one

        try:
            result = transcribe_one(Path(path), stem, self.engine, self.decode, self.cfg, self.asr,
                                    settings["output_dir"], settings["fmts"], settings["restart"], settings["slides"])
        except Exception as exc:
            return "error", _portable(exc)
        _fault_exit_once(Path(path).name)
        return "ok", result


@dataclass
class Job:
    index: int  # place in the batch
    path: Path
    kind: str  # "speech" | "documents"
    args: tuple  # for the actor's method after the path
    audio_seconds: float = 0.0  # a recording's length, for the progress over audio hours
    extra: object = None  # what the driver needs back with the result (the document replaced)


class Pool:
    """Actors per kind, one file in flight on each; a finished file frees its actor for the next."""

    def __init__(self, ray, actor_class, method: str, make_args: Callable[[str], tuple], counts: dict[str, int],
                 shapes: dict):
        remote = ray.remote(actor_class)
        self.ray, self.method = ray, method
        self.actors = {
            kind: [remote.options(**shapes[kind].ray_options(), max_restarts=MAX_RESTARTS,
                                  max_task_retries=MAX_TASK_RETRIES).remote(*make_args(kind)) for _ in range(n)]
            for kind, n in counts.items()
        }

    def run(self, jobs: list[Job], on_result: Callable[[Job, str, object], None]) -> None:
        """Every job to an actor of its kind; ``on_result(job, status, value)`` as each one finishes:
        ("ok", result), ("error", SyllabusError) for a bad file, ("lost", exception) for a worker
        that stayed lost after Ray's retries."""
        from ray.exceptions import RayError

        queues = {kind: [j for j in jobs if j.kind == kind] for kind in self.actors}
        flying: dict = {}

        def feed(kind: str, actor) -> None:
            if queues[kind]:
                job = queues[kind].pop(0)
                flying[getattr(actor, self.method).remote(str(job.path), *job.args)] = (job, kind, actor)

        try:
            for kind, actors in self.actors.items():
                for actor in actors:
                    feed(kind, actor)
            while flying:
                [ref], _ = self.ray.wait(list(flying), num_returns=1)
                job, kind, actor = flying.pop(ref)
                try:
                    status, value = self.ray.get(ref)
                except RayError as exc:  # the worker died and stayed dead after its restarts and retries
                    log.warning("worker lost on %s: %s", job.path, exc)
                    self.actors[kind].remove(actor)
                    on_result(job, "lost", exc)
                    if not self.actors[kind]:  # no worker of this kind left: the rest of its files fail
                        for left in queues[kind]:
                            on_result(left, "lost", exc)
                        queues[kind] = []
                    continue
                feed(kind, actor)  # the worker takes its next file while this result is committed
                on_result(job, status, value)
        finally:
            self.close()

    def close(self) -> None:
        for actors in self.actors.values():
            for actor in actors:
                self.ray.kill(actor)
        self.actors = {k: [] for k in self.actors}


def _cluster(ray):
    from pipeline.scaleout.cluster import ClusterInfo

    return ClusterInfo.from_resources(ray.cluster_resources(), len([n for n in ray.nodes() if n.get("Alive")]))


def _audio_seconds(path: Path) -> float:
    from ingest.media import probe

    try:
        return probe(path).duration or 0.0
    except SyllabusError:
        return 0.0  # unreadable: the worker reports why


def ingest_runner(address: str | None) -> Callable:
    """A runner for :func:`pipeline.kb.writer.ingest_files` that does the files' work on Ray (the
    cluster at ``address``, or a local instance) and commits each result on this process."""
    from pipeline.scaleout import connect

    ray = connect(address)

    def run(kb, paths: list, progress: Progress) -> list[IngestOutcome]:
        return _ingest(ray, kb, paths, progress)

    return run


def _ingest(ray, kb, paths: list, progress: Progress) -> list[IngestOutcome]:
    from ingest.media import is_media
    from pipeline.kb.writer import commit, failure, known, triage
    from pipeline.scaleout.cluster import split_workers, worker_shapes
    from pipeline.speech import speech_config

    outcomes: dict[int, IngestOutcome] = {}
    tally = _Tally(progress, len(paths))
    jobs: list[Job] = []
    for i, raw in enumerate(paths):
        try:
            abspath, sha, skip, existing = triage(kb, Path(raw))
        except Exception as exc:
            skip = failure(raw, exc)
        if skip is not None:
            outcomes[i] = skip
            tally.done(raw, skip)
            continue
        media = is_media(Path(raw))
        jobs.append(Job(i, Path(raw), "speech" if media else "documents", (sha, str(kb.path / "cache")),
                        _audio_seconds(Path(raw)) if media else 0.0, existing))
    if not jobs:
        return [outcomes[i] for i in range(len(paths))]
    tally.expect_audio(sum(j.audio_seconds for j in jobs))
    info = _cluster(ray)
    shapes = worker_shapes(kb.cfg, info)
    counts = split_workers(shapes, info, {k: sum(j.kind == k for j in jobs) for k in shapes})
    log.info("ray: %s workers on %s", counts, info.as_dict())

    def on_result(job: Job, status: str, value) -> None:
        if status == "ok":
            _keep_derived(kb.path / "cache", value.derived)
            skip, existing = known(kb, value.path, value.sha256)  # a twin committed earlier in this batch
            outcome = skip or commit(kb, value, existing)
        elif status == "error":
            outcome = failure(job.path, value)  # a configuration error stops the batch, as locally
        else:
            outcome = IngestOutcome(str(job.path), "failed", f"{job.path}: worker lost ({type(value).__name__}) "
                                                           f"after {MAX_TASK_RETRIES} retries")
        outcomes[job.index] = outcome
        tally.done(job.path, outcome, job.audio_seconds)

    # Workers get the speech model the driver checked and sized them for (asr.model: auto resolved
    # here, once), not a choice of their own on another machine.
    worker_cfg = speech_config(kb.cfg) if any(j.kind == "speech" for j in jobs) else kb.cfg
    Pool(ray, IngestWorker, "prepare", lambda kind: (worker_cfg,), counts, shapes).run(jobs, on_result)
    return [outcomes[i] for i in range(len(paths))]


def _keep_derived(cache: Path, files: dict[str, str]) -> None:
    """Derived files a worker made in its own cache, written into the KB's (atomically, never over one
    already there)."""
    from syllabus_common.atomic import atomic_write_text

    for relative, text in files.items():
        target = cache / relative
        if target.parent.resolve().is_relative_to(cache.resolve()) and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, text)


class _Tally:
    """Progress over the files and the hours of audio, fed by finished tasks."""

    def __init__(self, progress: Progress, total: int):
        self.progress, self.total, self.finished = progress, total, 0
        self.audio_done, self.audio_total = 0.0, 0.0

    def expect_audio(self, seconds: float) -> None:
        self.audio_total = seconds
        if seconds:
            self.progress.audio(0.0, seconds)  # the bar over audio hours shows from the start

    def done(self, path, outcome, audio_seconds: float = 0.0) -> None:
        self.progress.file_started(str(path), self.finished, self.total)
        self.finished += 1
        self.progress.file_done(outcome)
        if audio_seconds:
            self.audio_done += audio_seconds
            self.progress.audio(self.audio_done, self.audio_total)


def transcribe_runner(address: str | None, cfg) -> Callable:
    """A runner for :func:`pipeline.speech.transcribe_batch`: one speech model per Ray worker."""
    from pipeline.scaleout import connect

    ray = connect(address)

    def run(paths: list[Path], stems: dict, settings: dict, progress: Progress) -> list:
        from pipeline.scaleout.cluster import split_workers, worker_shapes
        from pipeline.speech import FileTranscript

        tally = _Tally(progress, len(paths))
        jobs = [Job(i, p, "speech", (stems[p], {k: v for k, v in settings.items() if k != "asr"}), _audio_seconds(p))
                for i, p in enumerate(paths)]
        tally.expect_audio(sum(j.audio_seconds for j in jobs))
        info = _cluster(ray)
        shapes = worker_shapes(cfg, info)
        counts = split_workers(shapes, info, {"speech": len(jobs)})
        results: dict[int, FileTranscript] = {}

        def on_result(job: Job, status: str, value) -> None:
            if status == "ok":
                result = value
            elif status == "error":
                if not isinstance(value, SyllabusError) or getattr(value, "exit_code", 1) != 1:
                    raise value  # configuration: every file would fail the same way
                result = FileTranscript(str(job.path), "failed", error=str(value))
            else:
                result = FileTranscript(str(job.path), "failed", error=f"{job.path}: worker lost ({type(value).__name__})")
            results[job.index] = result
            tally.done(job.path, result, job.audio_seconds)

        Pool(ray, SpeechWorker, "transcribe", lambda kind: (cfg, settings["asr"]), counts, shapes).run(jobs, on_result)
        return [results[i] for i in range(len(paths))]

    return run
