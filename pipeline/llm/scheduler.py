"""One generation at a time, in arrival order, and always cancellable: the queue behind ``serve``.

A local model has one KV cache, so generations run one after another on a single worker thread.
Each request becomes a :class:`Job`; the worker streams its text deltas into an asyncio queue owned
by the request's event loop. Between two tokens the worker checks whether the job was cancelled
(the client went away), ran past its time limit, or the server is draining. Whatever ends a job,
the worker closes the model's stream itself, so the model is released before the next job starts:
a client that walks away can never hold it (a suspended generator held the model lock before).

Limits (``serve:`` in config.yaml): ``max_queue`` jobs may wait (beyond that: 429), a job that
waits longer than ``queue_timeout`` seconds is given up (503), and one that runs longer than
``request_timeout`` seconds is stopped. Both answers carry a Retry-After estimate.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.llm.base import LLM, GenerationOptions, GenerationStats, Messages

log = logging.getLogger(__name__)

# Why a job ended early (``Job.stopped``); None when the model finished by itself.
CANCELLED, TIMED_OUT, SHUTDOWN = "cancelled", "timeout", "shutdown"


class QueueFull(Exception):
    """More jobs are waiting than ``max_queue`` allows."""


@dataclass(eq=False)
class Job:
    messages: Messages
    options: GenerationOptions
    deadline: float  # time.monotonic() past which the worker stops the job
    loop: asyncio.AbstractEventLoop
    out: "asyncio.Queue[Any]" = field(default_factory=asyncio.Queue)  # str deltas, then DONE
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancel: threading.Event = field(default_factory=threading.Event)
    stats: GenerationStats = field(default_factory=GenerationStats)
    stopped: str | None = None  # CANCELLED | TIMED_OUT | SHUTDOWN
    error: BaseException | None = None  # the model failed

    def _post(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:  # the request's loop is closed: nobody listens any more
            self.cancel.set()


DONE = object()  # end of a job's deltas


class GenerationQueue:
    """A FIFO of generation jobs served by one daemon thread."""

    def __init__(self, llm: LLM, max_queue: int = 16, queue_timeout: float = 60.0, request_timeout: float = 300.0):
        self.llm = llm
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.request_timeout = request_timeout
        self._pending: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._running: Job | None = None
        self._drain_at: float | None = None  # monotonic time at which running work is stopped
        self._closed = False
        self._durations: collections.deque[float] = collections.deque(maxlen=20)  # seconds per finished job
        self._worker = threading.Thread(target=self._serve, name="syllabus-generation", daemon=True)
        self._worker.start()

    # ----- the request side (event loop)
    def submit(self, messages: Messages, options: GenerationOptions) -> Job:
        job = Job(messages, options, deadline=math.inf, loop=asyncio.get_running_loop())
        with self._cond:
            if self._closed or self._drain_at is not None:
                raise QueueFull("the server is shutting down")
            if len(self._pending) >= self.max_queue and (self._running is not None or self._pending):
                raise QueueFull(f"{len(self._pending)} requests are already waiting (serve.max_queue)")
            self._pending.append(job)
            self._cond.notify()
        return job

    def retry_after(self) -> int:
        """Seconds a client should wait before trying again: the queue ahead times the mean job time."""
        mean = sum(self._durations) / len(self._durations) if self._durations else 5.0
        with self._cond:
            ahead = len(self._pending) + (self._running is not None)
        return max(1, math.ceil(mean * max(ahead, 1)))

    @property
    def waiting(self) -> int:
        return len(self._pending)

    @property
    def busy(self) -> bool:
        return self._running is not None

    def drain(self, grace: float) -> None:
        """Stop taking jobs; the running one may go on for ``grace`` seconds, waiting ones are refused."""
        with self._cond:
            self._drain_at = time.monotonic() + max(0.0, grace)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._drain_at = time.monotonic()
            self._cond.notify_all()
        self._worker.join(timeout=10)

    # ----- the worker thread
    def _next(self) -> Job | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait(timeout=1.0)
            if not self._pending:
                return None
            job = self._pending.popleft()
            self._running = job
            return job

    def _serve(self) -> None:
        while (job := self._next()) is not None:
            try:
                self._run(job)
            except BaseException as exc:  # never let one job kill the worker
                log.exception("generation failed")
                job.error = exc
            finally:
                with self._cond:
                    self._running = None
                job._post(DONE)
        # Closed: whoever still waits gets a clean refusal.
        with self._cond:
            left, self._pending = list(self._pending), collections.deque()
        for job in left:
            job.stopped = SHUTDOWN
            job._post(DONE)

    def _stop_reason(self, job: Job) -> str | None:
        if job.cancel.is_set():
            return CANCELLED
        now = time.monotonic()
        if self._drain_at is not None and now >= self._drain_at:
            return SHUTDOWN
        if now >= job.deadline:
            return TIMED_OUT
        return None

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():  # gave up while waiting (client gone, queue time-out)
            job.stopped = CANCELLED
            return
        if self._drain_at is not None:
            job.stopped = SHUTDOWN
            return
        started = time.monotonic()
        job.deadline = started + self.request_timeout
        job.loop.call_soon_threadsafe(job.started.set)
        stream = self.llm.stream(job.messages, job.options)
        try:
            for delta in stream:
                if (reason := self._stop_reason(job)) is not None:
                    job.stopped = reason
                    break
                job._post(delta)
        finally:
            stream.close()  # releases the model, whoever ends the job
            job.stats = stream.stats
            self._durations.append(time.monotonic() - started)
