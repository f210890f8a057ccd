"""An OpenAI-compatible HTTP API over any loaded backend (``syllabus serve``).

Endpoints: ``POST /v1/chat/completions`` (``stream`` true or false; server-sent events ending with
``data: [DONE]``, usage in the last chunk when ``stream_options.include_usage``), ``GET /v1/models``
(with ``max_model_len``, as vLLM reports it), ``POST /tokenize`` (vLLM's shape: a prompt or chat
messages → ``count``) and ``GET /health`` (answers while a generation runs).

One generation runs at a time (:mod:`pipeline.llm.scheduler`); others wait their turn in arrival
order, up to ``serve.max_queue`` of them for at most ``serve.queue_timeout`` seconds (then 429 / 503
with Retry-After). A client that disconnects cancels its generation at the next token. Every error,
422 included, has OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
There is no authentication: bind to 127.0.0.1 (the default) unless the network is trusted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Optional, Union

from fastapi import Request  # resolved by name in the endpoint signatures (postponed annotations)
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

from pipeline.llm.base import LLM, GenerationOptions
from pipeline.llm.scheduler import SHUTDOWN, TIMED_OUT, DONE, GenerationQueue, Job, QueueFull

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeLimits:
    """``serve:`` in config.yaml: how many requests may wait, and for how long (seconds)."""

    max_queue: int = 16
    queue_timeout: float = 60.0
    request_timeout: float = 300.0
    shutdown_grace: float = 3.0


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: Union[str, list[dict[str, Any]], None] = None

    def text(self) -> str:
        if isinstance(self.content, list):  # [{"type": "text", "text": ...}, ...]
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI fields (tools, logprobs...) are ignored
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    temperature: Optional[float] = Field(default=None, ge=0, le=5)
    top_p: Optional[float] = Field(default=None, gt=0, le=1)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    repetition_penalty: Optional[float] = Field(default=None, ge=1, le=3)
    stream_options: Optional[StreamOptions] = None


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: Optional[str] = None
    prompt: Optional[str] = None
    messages: Optional[list[ChatMessage]] = None
    add_special_tokens: bool = False
    add_generation_prompt: bool = True


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
           param: str | None = None, headers: dict | None = None):
    """Every error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, headers=headers,
                        content={"error": {"message": message, "type": kind, "param": param, "code": code}})


def _busy(queue: GenerationQueue, status: int, message: str, code: str):
    return _error(status, message, "server_error" if status == 503 else "rate_limit_error", code,
                  headers={"Retry-After": str(queue.retry_after())})


def _install_error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        problems = exc.errors()
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or None
        text = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', '')}"
                         for e in problems[:5]) or "invalid request"
        code = "invalid_json" if first.get("type") == "json_invalid" else "invalid_request"
        return _error(422, text, param=where, code=code)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, str(exc.detail), code=codes.get(exc.status_code), headers=getattr(exc, "headers", None))


def create_app(llm: LLM, defaults: GenerationOptions, limits: Optional[ServeLimits] = None):
    """The FastAPI app. ``app.state.queue`` is its :class:`GenerationQueue`; call ``app.state.queue.drain``
    on SIGTERM (``serve`` does) so in-flight work ends within the grace period."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    limits = limits or ServeLimits()
    queue = GenerationQueue(llm, limits.max_queue, limits.queue_timeout, limits.request_timeout)

    @asynccontextmanager
    async def lifespan(app):
        yield
        queue.close()

    app = FastAPI(title="Syllabus LLM server", version="1", lifespan=lifespan)
    app.state.queue = queue
    _install_error_handlers(app)
    created = int(time.time())

    def card() -> dict:
        return {"id": llm.name, "object": "model", "created": created, "owned_by": "syllabus",
                "max_model_len": llm.context_length, "backend": llm.backend}

    @app.get("/health")
    async def health():  # on the event loop: answers while a generation runs
        return {"status": "ok", "model": llm.name, "busy": queue.busy, "waiting": queue.waiting}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != llm.name:
            return _error(404, f"model {model_id!r} not found; this server has {llm.name!r}", code="model_not_found")
        return card()

    @app.post("/tokenize")
    def tokenize(req: TokenizeRequest):
        if req.model not in (None, llm.name):
            return _error(404, f"model {req.model!r} not found; this server has {llm.name!r}", code="model_not_found")
        if req.messages is not None:
            count = llm.count_chat_tokens([{"role": m.role, "content": m.text()} for m in req.messages])
        elif req.prompt is not None:
            count = llm.count_tokens(req.prompt)
        else:
            return _error(400, "give prompt or messages", code="invalid_request")
        return {"count": count, "max_model_len": llm.context_length}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request):
        if req.model != llm.name:
            return _error(404, f"model {req.model!r} not found; this server has {llm.name!r}", code="model_not_found")
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        prompt_tokens = llm.count_chat_tokens(messages)
        room = llm.context_length - prompt_tokens
        if room < 1:
            return _error(400, f"the prompt has {prompt_tokens} tokens; the model's context is {llm.context_length}",
                          param="messages", code="context_length_exceeded")
        try:
            job = queue.submit(messages, _options(req, defaults, room))
        except QueueFull as exc:
            return _busy(queue, 429, f"server busy: {exc}; retry later", "queue_full")
        if not await _wait_start(job, request, queue.queue_timeout):
            job.cancel.set()
            if job.stopped == SHUTDOWN:
                return _busy(queue, 503, "the server is shutting down", "shutting_down")
            return _busy(queue, 503, f"no generation slot within {queue.queue_timeout:g} s (serve.queue_timeout); retry later",
                         "queue_timeout")
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return _JobStream(job, _events(llm.name, job, cid, prompt_tokens, include_usage), media_type="text/event-stream")
        return await _complete(llm.name, job, request, cid, prompt_tokens)

    return app


def _options(req: ChatRequest, defaults: GenerationOptions, room: int) -> GenerationOptions:
    wanted = req.max_completion_tokens or req.max_tokens or defaults.max_new_tokens
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    return GenerationOptions(
        max_new_tokens=min(wanted, room),
        temperature=defaults.temperature if req.temperature is None else req.temperature,
        top_p=defaults.top_p if req.top_p is None else req.top_p,
        repetition_penalty=defaults.repetition_penalty if req.repetition_penalty is None else req.repetition_penalty,
        stop=stop, seed=req.seed if req.seed is not None else defaults.seed,
    )


async def _wait_start(job: Job, request, timeout: float) -> bool:
    """Wait for the worker to take the job; False when the client left, the wait timed out or the
    server is shutting down."""
    deadline = time.monotonic() + timeout
    while not job.started.is_set():
        if job.out.qsize() and job.stopped:  # refused by a closing server
            return False
        left = deadline - time.monotonic()
        if left <= 0 or await request.is_disconnected():
            return False
        try:
            await asyncio.wait_for(job.started.wait(), timeout=min(left, _POLL_S))
        except asyncio.TimeoutError:
            continue
    return True


_POLL_S = 0.25  # how often a waiting request checks whether its client is still there


async def _complete(model: str, job: Job, request, cid: str, prompt_tokens: int):
    parts: list[str] = []
    while True:
        try:
            item = await asyncio.wait_for(job.out.get(), timeout=_POLL_S)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancel.set()
                return _error(499, "client closed the request", code="client_closed")
            continue
        if item is DONE:
            break
        parts.append(item)
    if job.error is not None:
        return _error(500, f"generation failed: {type(job.error).__name__}: {job.error}", "server_error", "generation_failed")
    if job.stopped == SHUTDOWN:
        return _error(503, "the server is shutting down", "server_error", "shutting_down")
    if job.stopped == TIMED_OUT:
        return _error(504, "generation ran past serve.request_timeout", "server_error", "request_timeout")
    stats = job.stats
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                     "finish_reason": stats.finish_reason}],
        "usage": _usage(stats.prompt_tokens or prompt_tokens, stats.completion_tokens),
    }


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _JobStream(StreamingResponse):
    """A server-sent-events response that cancels its job however the response ends: the client
    disconnecting (watched on ``receive`` for every ASGI version), a send failing, or the server
    cancelling the task at shutdown."""

    def __init__(self, job: Job, events, media_type: str):
        super().__init__(events, media_type=media_type)
        self.job = job

    async def __call__(self, scope, receive, send) -> None:
        async def watch() -> None:
            await self.listen_for_disconnect(receive)
            self.job.cancel.set()
            streaming.cancel()

        watcher = asyncio.ensure_future(watch())
        streaming = asyncio.ensure_future(self.stream_response(send))
        try:
            await streaming
        except (asyncio.CancelledError, OSError):
            if not self.job.cancel.is_set() and not watcher.done():
                raise
        finally:
            self.job.cancel.set()  # a no-op when the job already ended
            watcher.cancel()
            streaming.cancel()


async def _events(model: str, job: Job, cid: str, prompt_tokens: int, include_usage: bool) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> str:
        body: dict = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
        if include_usage:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def failure(message: str, kind: str, code: str) -> str:
        return f"data: {json.dumps({'error': {'message': message, 'type': kind, 'param': None, 'code': code}})}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    while (item := await job.out.get()) is not DONE:
        yield chunk({"content": item})
    # The response has started: problems are reported in-band, as OpenAI-compatible servers do.
    if job.error is not None:
        yield failure(f"{type(job.error).__name__}: {job.error}", "server_error", "generation_failed")
    elif job.stopped in (SHUTDOWN, TIMED_OUT):
        yield failure("the server is shutting down" if job.stopped == SHUTDOWN else "generation ran past serve.request_timeout",
                      "server_error", "shutting_down" if job.stopped == SHUTDOWN else "request_timeout")
    else:
        yield chunk({}, job.stats.finish_reason)
        if include_usage:
            yield chunk({}, usage=_usage(job.stats.prompt_tokens or prompt_tokens, job.stats.completion_tokens), choices=False)
    yield "data: [DONE]\n\n"


def bind_socket(host: str, port: int):
    """The listening socket, bound now so that a busy port is one clear error (exit 3) before the
    model loads or anything claims to be serving."""
    import socket

    from syllabus_common.errors import EnvironmentProblem

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno in (98, 48, 10048) else f"cannot be bound ({exc.strerror})"
        raise EnvironmentProblem(f"port {port} on {host} {why}; choose another with --port") from None
    sock.set_inheritable(True)
    return sock


def run_server(app, sock, shutdown_grace: float, log_level: str = "warning") -> None:
    """uvicorn on ``sock``. SIGTERM/Ctrl-C: stop accepting, let the running generation finish for
    ``shutdown_grace`` seconds, then stop it (streams end with an in-band ``shutting_down`` error)."""
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            app.state.queue.drain(shutdown_grace)
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=int(shutdown_grace) + 1)
    _Server(config).run(sockets=[sock])
