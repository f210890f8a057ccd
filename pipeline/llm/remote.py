"""The ``openai`` backend: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, TGI, or another
machine's ``syllabus serve``) by base URL, model name and an API key read from the environment.

Timeouts and retries are the ``openai`` client's own (``llm.timeout`` seconds per request,
``llm.retries`` retries with backoff); a server that stays down or answers with an error becomes one
clear :class:`LLMUnavailable` message instead of a traceback.

Token counts use the server's ``/tokenize`` endpoint (vLLM's, which ``syllabus serve`` also offers)
so prompts are packed in the served model's own tokens; servers without one get a conservative
estimate (one token per 3 bytes of UTF-8), and a note says so once.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

from syllabus_common.errors import SyllabusError
from pipeline.llm.base import LLM, GenerationOptions, GenerationStats, LoadContext, Messages, TextStream, stream_with_stats

log = logging.getLogger(__name__)


class LLMUnavailable(SyllabusError):
    """The LLM server cannot be reached, timed out, or refused the request."""


def _explain(exc: Exception, base_url: str, timeout: float, retries: int, api_key_env: str) -> LLMUnavailable:
    import openai

    tries = f"{retries + 1} attempt{'s' if retries else ''}"
    if isinstance(exc, openai.APITimeoutError):
        msg = f"the LLM server at {base_url} did not answer within {timeout:g} s ({tries}); raise llm.timeout or check the server"
    elif isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        msg = (f"cannot reach the LLM server at {base_url} ({type(cause).__name__}: {cause}; {tries}); is it running? "
               "Start one with `syllabus serve`, or set llm.base_url")
    elif isinstance(exc, openai.AuthenticationError):
        msg = f"the LLM server at {base_url} rejected the API key; put the right key in ${api_key_env}"
    elif isinstance(exc, openai.NotFoundError):
        msg = f"the LLM server at {base_url} answered 404: {_message(exc)}"
    elif isinstance(exc, openai.APIStatusError):
        msg = f"the LLM server at {base_url} answered {exc.status_code}: {_message(exc)}"
    else:
        msg = f"LLM server at {base_url}: {type(exc).__name__}: {exc}"
    return LLMUnavailable(msg)


def _message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("detail"):
            return str(body["detail"])
    return str(getattr(exc, "message", exc))


class OpenAILLM(LLM):
    backend = "openai"

    def __init__(self, client, name: str, base_url: str, context: int, timeout: float, retries: int, api_key_env: str,
                 notify=None):
        self.client = client
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._context = context
        self.timeout, self.retries, self.api_key_env = timeout, retries, api_key_env
        self._notify = notify or log.warning
        self._exact: bool | None = None  # does the server tokenize for us? (probed on first count)
        self._count_cached = lru_cache(maxsize=8192)(self._count_uncached)

    @classmethod
    def load(cls, llm_cfg, ctx: LoadContext) -> "OpenAILLM":
        import openai

        key = os.environ.get(llm_cfg.api_key_env) if llm_cfg.api_key_env else None
        client = openai.OpenAI(base_url=llm_cfg.base_url, api_key=key or "not-needed", timeout=llm_cfg.timeout,
                               max_retries=llm_cfg.retries)
        args = (llm_cfg.base_url, llm_cfg.timeout, llm_cfg.retries, llm_cfg.api_key_env)
        try:
            served = list(client.models.list())
        except openai.OpenAIError as exc:
            raise _explain(exc, *args) from None
        ids = [m.id for m in served]
        if llm_cfg.model not in ids:
            raise LLMUnavailable(f"the LLM server at {llm_cfg.base_url} does not serve {llm_cfg.model!r}; it serves: "
                                 f"{', '.join(ids) or 'nothing'} (set llm.model)")
        card = next(m for m in served if m.id == llm_cfg.model)
        extra = getattr(card, "model_extra", None) or {}
        window = int(extra.get("max_model_len") or 0)
        context = min(llm_cfg.context, window) if (llm_cfg.context and window) else (llm_cfg.context or window or 4096)
        if not llm_cfg.context and not window:
            (ctx.notify or log.warning)(f"{llm_cfg.base_url} does not say {llm_cfg.model}'s context length; assuming 4096 (set llm.context)")
        return cls(client, llm_cfg.model, llm_cfg.base_url, context, llm_cfg.timeout, llm_cfg.retries, llm_cfg.api_key_env,
                   ctx.notify)

    @property
    def context_length(self) -> int:
        return self._context

    # ----- tokens
    def _root(self) -> str:
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def _tokenize(self, payload: dict) -> int | None:
        """vLLM-style POST /tokenize; None when the server has no such endpoint."""
        if self._exact is False:
            return None
        import httpx

        try:
            r = httpx.post(f"{self._root()}/tokenize", json=dict(payload, model=self.name), timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise LLMUnavailable(f"cannot reach the LLM server at {self.base_url} to count tokens: {exc}") from None
        if r.status_code in (404, 405, 501):
            if self._exact is None:
                self._notify(f"{self.base_url} has no /tokenize; estimating token counts (1 per 3 bytes)")
            self._exact = False
            return None
        if r.status_code >= 400:
            raise LLMUnavailable(f"the LLM server at {self.base_url} answered {r.status_code} to /tokenize: {r.text[:200]}")
        self._exact = True
        data = r.json()
        return int(data["count"]) if "count" in data else len(data.get("tokens", []))

    def _count_uncached(self, text: str) -> int:
        n = self._tokenize({"prompt": text, "add_special_tokens": False})
        return n if n is not None else -(-len(text.encode("utf-8")) // 3)

    def count_tokens(self, text: str) -> int:
        return self._count_cached(text) if text else 0

    def count_chat_tokens(self, messages: Messages) -> int:
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        n = self._tokenize({"messages": msgs, "add_generation_prompt": True})
        if n is not None:
            return n
        return sum(self.count_tokens(m["content"]) + 8 for m in msgs) + 8  # + role markers, conservatively

    def chat_template(self, messages: Messages) -> str:
        # The template runs on the server; this is the same conversation as plain text.
        return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"

    # ----- generation
    def stream(self, messages: Messages, options: GenerationOptions) -> TextStream:
        import openai

        args = (self.base_url, self.timeout, self.retries, self.api_key_env)
        request = dict(
            model=self.name, messages=[{"role": m["role"], "content": m["content"]} for m in messages], stream=True,
            max_tokens=options.max_new_tokens, temperature=options.temperature, top_p=options.top_p,
            stream_options={"include_usage": True},
        )
        if options.stop:
            request["stop"] = list(options.stop)
        if options.seed is not None:
            request["seed"] = options.seed
        if options.repetition_penalty != 1.0:
            request["extra_body"] = {"repetition_penalty": options.repetition_penalty}  # vLLM, llama.cpp, serve

        def produce(stats: GenerationStats):
            try:
                response = self.client.chat.completions.create(**request)
                pieces = 0
                for chunk in response:
                    if getattr(chunk, "usage", None):
                        stats.prompt_tokens = chunk.usage.prompt_tokens
                        stats.completion_tokens = chunk.usage.completion_tokens
                    for choice in chunk.choices or []:
                        delta = choice.delta.content if choice.delta else None
                        if delta:
                            pieces += 1
                            yield delta
                        if choice.finish_reason:
                            stats.finish_reason = "length" if choice.finish_reason == "length" else "stop"
                if not stats.completion_tokens:
                    stats.completion_tokens = pieces
            except openai.OpenAIError as exc:
                raise _explain(exc, *args) from None

        return stream_with_stats(produce)

    def close(self) -> None:
        self.client.close()
