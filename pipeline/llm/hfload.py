"""Loading the ``transformers`` backend (:class:`pipeline.llm.hf.TransformersLLM`).

Two ways, the same model and the same answers:

- **lite** (a CPU and a Llama-family model in a local safetensors folder with ``tokenizer.json``: the
  bundled model once converted): the tokenizer, chat template and config are read without
  transformers (:mod:`pipeline.llm.lite`, a fraction of a second); PyTorch and the weights follow,
  packed once per machine (:mod:`pipeline.llm.packcache`) and only read afterwards. With
  ``LoadContext.background`` the weights load in a thread while the caller retrieves and shows the
  evidence; whatever needs them waits.
- **transformers** (CUDA, other architectures, hub ids): ``AutoTokenizer`` and
  ``AutoModelForCausalLM``, then the fast CPU decoder where it applies.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from syllabus_common.errors import ModelNotAvailable
from pipeline.llm.base import LoadContext

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8", "int4")


def cpu_has_bf16() -> bool:
    from pipeline.llm import quant

    return quant.cpu_has_bf16()


def resolve_precision(requested: str, device: str, gguf_4bit: bool, notify=None) -> str:
    """The precision to run, with a note whenever the request cannot be honoured as asked."""
    import torch

    say = notify or (lambda msg: log.warning(msg))
    if device.startswith("cuda"):
        half = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if requested == "auto":
            return half
        if requested in ("int8", "int4") and importlib.util.find_spec("bitsandbytes") is None:
            say(f"{requested} on CUDA needs bitsandbytes (pip install bitsandbytes); using {half} instead")
            return half
        return requested
    from pipeline.llm.quant import kernel_available

    if requested == "auto":
        if gguf_4bit and kernel_available("int4"):
            return "int4"
        return "bf16" if cpu_has_bf16() and kernel_available("bf16") else "fp32"
    if requested == "fp16":
        fallback = "bf16" if cpu_has_bf16() else "fp32"
        say(f"fp16 matrix products are slow on CPUs; using {fallback} instead")
        return fallback
    if requested in ("int4", "int8") and not kernel_available(requested):
        fallback = "int8" if requested == "int4" and kernel_available("int8") else "fp32"
        say(f"this PyTorch build has no CPU {requested} kernel; using {fallback} instead")
        return fallback
    if requested == "bf16" and not cpu_has_bf16():
        say("this CPU has no native bf16 (AVX512-BF16/AMX); bf16 will be slow")
    return requested


def _generation_eos(model) -> tuple[int, ...]:
    """End-of-turn ids from the model's generation config (e.g. Llama 3's <|eot_id|>)."""
    from pipeline.llm.lite import eos_ids

    return eos_ids(getattr(getattr(model, "generation_config", None), "eos_token_id", None))


def _cuda_kwargs(precision: str, device: str) -> dict:
    import torch

    kwargs: dict = {"device_map": device}
    if precision in ("int8", "int4"):
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_8bit=True) if precision == "int8"
            else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
        )
        kwargs["dtype"] = compute
    else:
        kwargs["dtype"] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return kwargs


def load(cls, llm_cfg, ctx: LoadContext):
    from pipeline.llm.convert import converted_gguf, resolve_source
    from pipeline.llm.lite import lite_folder, read_config, unsupported

    source = resolve_source(llm_cfg.model, llm_cfg.gguf_file, ctx.offline)
    gguf_4bit = source.gguf_4bit
    if source.kind == "gguf":
        folder, marker = converted_gguf(source, ctx.cache_dirs, ctx.notify)
        location, gguf_4bit = str(folder), bool(marker.get("gguf_4bit", gguf_4bit))
    else:
        location = source.location
    folder = Path(location)
    if not ctx.device.startswith("cuda") and folder.is_dir() and lite_folder(folder):
        config = read_config(folder)
        if unsupported(config) is None:
            return _lite(cls, llm_cfg, ctx, source.name, folder, config, gguf_4bit)
    return _with_transformers(cls, llm_cfg, ctx, source.name, location, gguf_4bit)


def _context(llm_cfg, config) -> int:
    window = int(getattr(config, "max_position_embeddings", 0) or 2048)
    return min(llm_cfg.context, window) if llm_cfg.context else window


def _lite(cls, llm_cfg, ctx: LoadContext, name: str, folder: Path, config, gguf_4bit: bool):
    from pipeline.llm.lite import LiteTokenizer, generation_eos

    try:
        tokenizer = LiteTokenizer(folder)
    except Exception as exc:  # a damaged tokenizer.json
        raise ModelNotAvailable(f"cannot load LLM {llm_cfg.model!r}: {type(exc).__name__}: {exc}") from None
    context = _context(llm_cfg, config)
    llm = cls(tokenizer, None, None, name, ctx.device, llm_cfg.precision, context, generation_eos(folder))

    def weights() -> dict:
        device, precision = _runtime(llm_cfg, ctx, gguf_4bit)
        if device.startswith("cuda"):
            model = _cuda_model(llm_cfg.model, str(folder), precision, device)
            return {"model": model, "fast": None, "device": device, "precision": precision}
        from pipeline.llm.packcache import load_decoder

        fast = load_decoder(folder, config, precision, context, ctx.cache_dirs)
        return {"model": None, "fast": fast, "device": device, "precision": precision}

    llm.load_weights(weights, background=ctx.background)
    return llm


def _runtime(llm_cfg, ctx: LoadContext, gguf_4bit: bool) -> tuple[str, str]:
    """(device, precision) to run on, after the configured thread count is applied."""
    import torch

    if llm_cfg.threads:
        torch.set_num_threads(llm_cfg.threads)
    device = ctx.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device, resolve_precision(llm_cfg.precision, device, gguf_4bit, ctx.notify)


def _cuda_model(model_name: str, location: str, precision: str, device: str):
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(location, **_cuda_kwargs(precision, device)).eval()
    except OSError as exc:
        raise ModelNotAvailable(f"cannot load LLM {model_name!r}: {exc}") from None


def _with_transformers(cls, llm_cfg, ctx: LoadContext, name: str, location: str, gguf_4bit: bool):
    import torch

    notify = ctx.notify
    device, precision = _runtime(llm_cfg, ctx, gguf_4bit)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        cpu_model = None if device.startswith("cuda") else AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32).eval()
    except OSError as exc:
        raise ModelNotAvailable(f"cannot load LLM {llm_cfg.model!r}: {exc}") from None
    model = cpu_model if cpu_model is not None else _cuda_model(llm_cfg.model, location, precision, device)
    context = _context(llm_cfg, model.config)
    fast = None
    eos_ids = _generation_eos(model)
    if not device.startswith("cuda"):
        from pipeline.llm.fastlm import FastDecoder, unsupported

        why = unsupported(model.config)
        if why is None:
            fast = FastDecoder(model, precision, context)
            model = None  # the decoder holds its own copy of the weights
        elif precision == "bf16":
            model = model.to(torch.bfloat16)
        elif precision != "fp32":
            (notify or log.warning)(f"{name}: {why} is not on the fast CPU path, which {precision} needs; "
                                    "running fp32 with model.generate")
            precision = "fp32"
    return cls(tokenizer, model, fast, name, device, precision, context, eos_ids)
