"""An OpenAI-compatible HTTP API over any loaded backend (``syllabus serve``).

Endpoints: ``POST /v1/chat/completions`` (``stream`` true or false; server-sent events ending with
``data: [DONE]``, usage in the last chunk when ``stream_options.include_usage``), ``GET /v1/models``
(with ``max_model_len``, as vLLM reports it), ``POST /tokenize`` (vLLM's shape: a prompt or chat
messages → ``count``) and ``GET /health``. One generation runs at a time; others wait their turn.
There is no authentication: bind to 127.0.0.1 (the default) unless the network is trusted.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Iterator, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from pipeline.llm.base import LLM, GenerationOptions

log = logging.getLogger(__name__)


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


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "param": None, "code": code}})


def create_app(llm: LLM, defaults: GenerationOptions):
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI(title="Syllabus LLM server", version="1")
    created = int(time.time())

    def card() -> dict:
        return {"id": llm.name, "object": "model", "created": created, "owned_by": "syllabus",
                "max_model_len": llm.context_length, "backend": llm.backend}

    @app.get("/health")
    def health():
        return {"status": "ok", "model": llm.name}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [card()]}

    @app.get("/v1/models/{model_id:path}")
    def model(model_id: str):
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
            return _error(400, "give prompt or messages")
        return {"count": count, "max_model_len": llm.context_length}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        if req.model != llm.name:
            return _error(404, f"model {req.model!r} not found; this server has {llm.name!r}", code="model_not_found")
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        prompt_tokens = llm.count_chat_tokens(messages)
        room = llm.context_length - prompt_tokens
        if room < 1:
            return _error(400, f"the prompt has {prompt_tokens} tokens; the model's context is {llm.context_length}",
                          code="context_length_exceeded")
        wanted = req.max_completion_tokens or req.max_tokens or defaults.max_new_tokens
        stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
        options = GenerationOptions(
            max_new_tokens=min(wanted, room),
            temperature=defaults.temperature if req.temperature is None else req.temperature,
            top_p=defaults.top_p if req.top_p is None else req.top_p,
            repetition_penalty=defaults.repetition_penalty if req.repetition_penalty is None else req.repetition_penalty,
            stop=stop, seed=req.seed if req.seed is not None else defaults.seed,
        )
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if not req.stream:
            result = llm.generate(messages, options)
            return {
                "id": cid, "object": "chat.completion", "created": int(time.time()), "model": llm.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "finish_reason": result.stats.finish_reason}],
                "usage": _usage(result.stats.prompt_tokens or prompt_tokens, result.stats.completion_tokens),
            }
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(_events(llm, messages, options, cid, prompt_tokens, include_usage), media_type="text/event-stream")

    return app


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _events(llm: LLM, messages: list[dict], options: GenerationOptions, cid: str, prompt_tokens: int,
            include_usage: bool) -> Iterator[str]:
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> str:
        body: dict = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": llm.name,
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
        if include_usage:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    stream = llm.stream(messages, options)
    yield chunk({"role": "assistant", "content": ""})
    try:
        for delta in stream:
            yield chunk({"content": delta})
    except Exception as exc:  # the response has started: report in-band, as OpenAI-compatible servers do
        log.exception("generation failed")
        yield f"data: {json.dumps({'error': {'message': f'{type(exc).__name__}: {exc}', 'type': 'server_error'}})}\n\n"
        yield "data: [DONE]\n\n"
        return
    finally:
        stream.close()
    yield chunk({}, stream.stats.finish_reason)
    if include_usage:
        yield chunk({}, usage=_usage(stream.stats.prompt_tokens or prompt_tokens, stream.stats.completion_tokens), choices=False)
    yield "data: [DONE]\n\n"
