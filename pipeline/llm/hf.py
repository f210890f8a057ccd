"""The ``transformers`` backend: the bundled GGUF, any Hugging Face model folder or hub id, any GGUF.

On a CPU, Llama-family models decode through :mod:`pipeline.llm.fastlm` (static KV cache, weight-only
int4/int8/bf16 kernels); anything else, and every CUDA device, uses ``model.generate`` with a
streamer. Precision (``llm.precision``):

- ``auto``: CPU: int4 when the source is a ≤ 4-bit GGUF (the file's own precision: its layers are
  already 4-bit, the int4 kernels keep its 32-value groups), else bf16 when the CPU computes bf16
  natively, else fp32. CUDA: bf16, or fp16 on cards without bf16.
- ``fp32``, ``bf16``, ``fp16``: dense weights. fp16 matrix products are slow on CPUs: bf16 is used
  instead, with a note.
- ``int8``, ``int4``: weight-only quantization. CPU: PyTorch's int8/int4 kernels (fast path only);
  CUDA: bitsandbytes LLM.int8 / NF4 when installed, else bf16/fp16 with a note.

Loading, the precision choice and the transformers-free cold path live in :mod:`pipeline.llm.hfload`;
the weights may arrive from a background thread (:meth:`TransformersLLM.load_weights`).
"""

from __future__ import annotations

import logging
import threading
from typing import Iterator

from pipeline.llm.base import LLM, GenerationOptions, GenerationStats, LoadContext, Messages, TextStream, stream_with_stats
from pipeline.llm.hfload import PRECISIONS, cpu_has_bf16, resolve_precision, _generation_eos  # noqa: F401  (public here too)

log = logging.getLogger(__name__)

def _loaded(name: str) -> property:
    """An attribute set by the weights' loader: reading it waits for a background load to finish."""

    def get(self):
        self._weights()
        return getattr(self, "_" + name)

    return property(get, lambda self, value: setattr(self, "_" + name, value))


class TransformersLLM(LLM):
    backend = "transformers"

    def __init__(self, tokenizer, model, fast, name: str, device: str, precision: str, context: int,
                 eos_ids: tuple[int, ...] = ()):
        self._pending = None  # (thread, result box) while the weights load in the background
        self._failed: BaseException | None = None
        self._settling = threading.Lock()
        self.tokenizer = tokenizer
        self.model = model
        self.fast = fast
        self.name = name
        self.device = device
        self.precision = precision
        self._context = context
        self._lock = threading.Lock()  # one generation at a time: the KV cache is shared state
        eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "</s>", "<|endoftext|>"):
            tid = tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
                eos.add(tid)
        eos.update(eos_ids or _generation_eos(model))
        self.eos_ids = eos

    # ----- loading
    @classmethod
    def load(cls, llm_cfg, ctx: LoadContext) -> "TransformersLLM":
        from pipeline.llm.hfload import load

        return load(cls, llm_cfg, ctx)

    def load_weights(self, build, background: bool = False) -> None:
        """Take the weights from ``build()`` (a dict of model, fast, device, precision), now or in a
        background thread; everything that needs them waits for them (:meth:`_weights`). The
        tokenizer, template and context are usable meanwhile (count tokens, pack a prompt)."""
        box: dict = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["weights"] = build()
            except BaseException as exc:  # raised to whoever waits for the weights
                box["error"] = exc
            finally:
                done.set()

        if not background:
            run()
            self._settle(box)
            return
        # Waiting is on the event, not Thread.join: a join that Ctrl-C interrupts can later return
        # before the thread ends (seen on CPython 3.11: the next use found no weights), an event wait cannot.
        self._pending = (done, box)
        threading.Thread(target=run, name="llm-weights", daemon=True).start()

    def _settle(self, box: dict) -> None:
        if "error" in box:
            self._failed = box["error"]  # every later use fails the same way
            raise self._failed
        for key, value in box["weights"].items():
            setattr(self, "_" + key, value)

    def _weights(self) -> None:
        with self._settling:
            if self._pending is not None:
                done, box = self._pending
                done.wait()  # a Ctrl-C here leaves the load pending: the next use waits for it again
                self._pending = None
                self._settle(box)
            elif self._failed is not None:
                raise self._failed

    model = _loaded("model")  # None when the fast decoder holds the weights
    fast = _loaded("fast")
    device = _loaded("device")
    precision = _loaded("precision")

    # ----- contract
    @property
    def context_length(self) -> int:
        return self._context

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_template(self, messages: Messages) -> str:
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        # A base model without a template: plain text turns.
        return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in msgs) + "Assistant:"

    def count_chat_tokens(self, messages: Messages) -> int:
        return len(self._prompt_ids(messages))

    def _prompt_ids(self, messages: Messages) -> list[int]:
        # The template already carries the special tokens (BOS, <|im_start|>): add none.
        return self.tokenizer.encode(self.chat_template(messages), add_special_tokens=False)

    def describe(self) -> dict:
        info = super().describe()
        info.update(device=self.device, precision=self.precision, fast_path=self.fast is not None)
        if self.fast is not None:
            info["weight_mb"] = round(self.fast.weight_bytes / 1e6, 1)
            info["decode_weight_mb"] = round(self.fast.decode_weight_bytes / 1e6, 1)
        return info

    def stream(self, messages: Messages, options: GenerationOptions) -> TextStream:
        ids = self._prompt_ids(messages)
        return self.stream_ids(ids, options)

    def stream_ids(self, ids: list[int], options: GenerationOptions) -> TextStream:
        if len(ids) >= self._context:
            from pipeline.packing import DoesNotFit

            raise DoesNotFit(f"a prompt of {len(ids)} tokens does not fit the model's context of {self._context}")
        budget = min(options.max_new_tokens, self._context - len(ids))

        def produce(stats: GenerationStats) -> Iterator[str]:
            stats.prompt_tokens = len(ids)
            with self._lock:
                tokens = self._fast_tokens(ids, budget, options) if self.fast is not None else self._hf_tokens(ids, budget, options)
                yield from _detokenize(self.tokenizer, tokens, options.stop, stats, budget)

        return stream_with_stats(produce)

    def reply_logprob(self, messages: Messages, reply: str) -> float:
        import torch

        prefix = self._prompt_ids(messages)
        target = self.tokenizer.encode(reply, add_special_tokens=False)
        if not target:
            return 0.0
        if len(prefix) + len(target) > self._context:
            from pipeline.packing import DoesNotFit

            raise DoesNotFit(f"{len(prefix) + len(target)} tokens do not fit the model's context of {self._context}")
        with self._lock, torch.inference_mode():
            if self.fast is not None:
                last = self.fast.prefill(prefix)  # predicts the reply's first token
                rest = self.fast.forward(target[:-1], every=True) if len(target) > 1 else last.new_empty(0, last.numel())
                logits = torch.cat([last[None], rest])
            else:
                ids = torch.tensor([prefix + target], device=self.model.device)
                logits = self.model(ids).logits[0, len(prefix) - 1 : -1].float().cpu()
        logp = torch.log_softmax(logits, dim=-1)
        return float(logp[torch.arange(len(target)), torch.tensor(target)].sum())

    # ----- decoding
    def _fast_tokens(self, ids: list[int], budget: int, options: GenerationOptions) -> Iterator[int]:
        import torch

        generator = torch.Generator().manual_seed(options.seed) if options.seed is not None else None
        logits = self.fast.prefill(ids)
        produced: list[int] = []
        for _ in range(budget):
            token = _pick(logits, produced, options, generator)
            if token in self.eos_ids:
                return
            produced.append(token)
            yield token
            if len(produced) < budget:
                logits = self.fast.step(token)

    def _hf_tokens(self, ids: list[int], budget: int, options: GenerationOptions) -> Iterator[int]:
        """``model.generate`` in a thread, tokens handed over through a queue (CUDA, other architectures)."""
        import queue

        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        handoff: "queue.Queue[object]" = queue.Queue()
        cancelled = threading.Event()
        done = object()

        class _Relay(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                handoff.put(int(input_ids[0, -1]))
                return torch.tensor([cancelled.is_set()], device=input_ids.device)

        kwargs = dict(max_new_tokens=budget, do_sample=options.temperature > 0, pad_token_id=self.tokenizer.eos_token_id,
                      eos_token_id=sorted(self.eos_ids) or None, stopping_criteria=StoppingCriteriaList([_Relay()]))
        if options.temperature > 0:
            kwargs.update(temperature=options.temperature, top_p=options.top_p)
        if options.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = options.repetition_penalty
        if options.seed is not None:
            torch.manual_seed(options.seed)
        inputs = torch.tensor([ids], device=self.model.device)
        failure: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode():
                    self.model.generate(inputs, attention_mask=torch.ones_like(inputs), **kwargs)
            except BaseException as exc:  # surfaced in the consumer
                failure.append(exc)
            finally:
                handoff.put(done)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            while (item := handoff.get()) is not done:
                if item in self.eos_ids:
                    continue
                yield item  # type: ignore[misc]
        finally:
            cancelled.set()
            worker.join()
        if failure:
            raise failure[0]

    def close(self) -> None:
        self.model = None
        self.fast = None


def _pick(logits, produced: list[int], options: GenerationOptions, generator) -> int:
    """Next token from last-position logits (vocab,) fp32: greedy or temperature + top-p sampling."""
    import torch

    if options.repetition_penalty != 1.0 and produced:
        # Penalize tokens of the answer so far (CTRL, Keskar et al. 2019), not the prompt: answers
        # should be free to quote the passages they cite.
        seen = torch.tensor(sorted(set(produced)), dtype=torch.long)
        vals = logits[seen]
        logits = logits.clone()
        logits[seen] = torch.where(vals > 0, vals / options.repetition_penalty, vals * options.repetition_penalty)
    if options.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / options.temperature, dim=-1)
    if options.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < options.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


def _detokenize(tokenizer, tokens: Iterator[int], stop: tuple[str, ...], stats: GenerationStats, budget: int) -> Iterator[str]:
    """Token ids → text deltas. A delta is held back while it may be the start of a stop string or an
    incomplete UTF-8 character; a stop string ends the text (and is not part of it)."""
    ids: list[int] = []
    sent = 0  # characters already yielded
    hold = max((len(s) for s in stop), default=1) - 1
    stats.finish_reason = "stop"
    for token in tokens:
        ids.append(token)
        stats.completion_tokens = len(ids)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            continue
        cut = min((i for i in (text.find(s, max(0, sent - hold)) for s in stop) if i >= 0), default=-1)
        if cut >= 0:
            if cut > sent:
                yield text[sent:cut]
            return
        safe = len(text) - hold if stop else len(text)
        if safe > sent:
            yield text[sent:safe]
            sent = safe
    if len(ids) >= budget:
        stats.finish_reason = "length"
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if len(text) > sent:
        yield text[sent:]
