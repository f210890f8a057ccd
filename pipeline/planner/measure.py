"""Dry-run measurement: run the real architecture under PyTorch FakeTensorMode and record the memory
peak by category with MemTracker (torch.distributed._tools.mem_tracker). No memory is allocated and
no GPU is needed: fake tensors carry shapes and dtypes only.

What runs (the same setups the estimator describes):

- inference: a no-grad prefill of ``seq`` tokens with a KV cache (``use_cache=True``,
  ``logits_to_keep=1``), as ``generate()`` does.
- full: forward + backward + optimizer step. fp32: fp32 everywhere. bf16/fp16 with master weights
  (the default): fp32 parameters, 16-bit compute under ``torch.autocast`` (what the HF Trainer does
  with ``bf16=True``). Without master weights: parameters and optimizer state in 16 bit.
- lora: base weights in 16 bit and frozen, peft LoRA adapters in fp32, autocast compute.
- qlora: as lora, with the base linears replaced by a 4-bit stand-in that stores what bitsandbytes
  stores (packed uint8 weights and absmax constants) and dequantizes per call. bitsandbytes itself
  needs CUDA, so this emulates its memory layout rather than running it.

The optimizer state exists before the tracked step (one warm-up step on zero gradients), so the peak
is the steady-state one a real training run shows from step 2 on.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field

from syllabus_common.errors import ConfigError
from pipeline.planner.catalog import DecoderArch

CATEGORIES = ("Parameter", "Buffer", "Gradient", "Activation", "Temp", "Optstate", "Other")


@dataclass
class Measurement:
    """MemTracker's peak, by category (bytes), plus the snapshot right after the forward pass."""

    peak: dict[str, int]
    after_forward: dict[str, int]
    seconds: float
    setup: str
    notes: list[str] = field(default_factory=list)

    @property
    def peak_bytes(self) -> int:
        return self.peak.get("Total", sum(v for k, v in self.peak.items() if k != "Total"))

    def as_dict(self) -> dict:
        return {"peak_bytes": self.peak_bytes, "peak": self.peak, "after_forward": self.after_forward,
                "seconds": round(self.seconds, 2), "setup": self.setup, "notes": self.notes}


def hf_config(arch: DecoderArch, attention: str = "sdpa"):
    """A transformers config for the architecture (no hub: built from the numbers)."""
    import transformers as T

    common = dict(hidden_size=arch.hidden, num_hidden_layers=arch.layers, num_attention_heads=arch.heads,
                  num_key_value_heads=arch.kv_heads, intermediate_size=arch.intermediate, vocab_size=arch.vocab,
                  tie_word_embeddings=arch.tied, max_position_embeddings=max(arch.max_context, 16))
    builders = {
        "llama": lambda: T.LlamaConfig(head_dim=arch.hd, attention_bias=False, **common),
        "qwen2": lambda: T.Qwen2Config(**common),
        "mistral": lambda: T.MistralConfig(head_dim=arch.hd, sliding_window=None, **common),
        "phi3": lambda: T.Phi3Config(**common),
        "gemma2": lambda: T.Gemma2Config(head_dim=arch.hd, sliding_window=arch.sliding_window or 4096, **common),
        "gemma3_text": lambda: T.Gemma3TextConfig(head_dim=arch.hd, sliding_window=arch.sliding_window or 512, **common),
    }
    if arch.model_type not in builders:
        raise ConfigError(f"--measure cannot build model type {arch.model_type!r}; it builds: {', '.join(builders)}")
    cfg = builders[arch.model_type]()
    if arch.qkv_bias and arch.model_type == "llama":
        cfg.attention_bias = True
    cfg._attn_implementation = "eager" if attention == "eager" else "sdpa"
    return cfg


@contextlib.contextmanager
def _fake_safe_module_moves():
    """``Module.to()`` on fake parameters tries ``swap_tensors``, which fake tensors refuse (they are
    weakly referenced by their mode). peft moves adapters with ``.to()``; while this is active, a
    move replaces the Parameter object instead. Only used inside the dry run."""
    import torch
    from torch import nn

    original = nn.Module._apply

    def _apply(self, fn, recurse=True):
        if recurse:
            for child in self.children():
                child._apply(fn)
        for key, param in list(self._parameters.items()):
            if param is not None:
                with torch.no_grad():
                    moved = fn(param)
                if moved is not param:
                    self._parameters[key] = nn.Parameter(moved, requires_grad=param.requires_grad)
        for key, buf in list(self._buffers.items()):
            if buf is not None:
                self._buffers[key] = fn(buf)
        return self

    nn.Module._apply = _apply
    try:
        yield
    finally:
        nn.Module._apply = original


def _make_4bit_linear_class():
    """A stand-in for bitsandbytes Linear4bit with the same stored tensors: packed 4-bit weights
    (uint8, two per byte), absmax per 64 weights (fp32, or uint8 + second-level fp32 with double
    quantization); forward dequantizes to a temporary 16-bit matrix and does not keep it for backward
    (bitsandbytes MatMul4Bit dequantizes again in backward), but keeps its input whenever a gradient
    flows through it, as MatMul4Bit does (``ctx.tensors = (A, B)``)."""
    import torch
    from torch import nn

    class _Dequant(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, packed, out_features, in_features):
            ctx.save_for_backward(x if ctx.needs_input_grad[0] else None, packed)
            ctx.shape = (out_features, in_features)
            w = torch.empty(out_features, in_features, dtype=x.dtype, device=x.device)  # dequantized copy
            return x @ w.t()

        @staticmethod
        def backward(ctx, grad):
            w = torch.empty(*ctx.shape, dtype=grad.dtype, device=grad.device)
            return grad @ w, None, None, None

    class Linear4bitStandIn(nn.Linear):
        def __init__(self, in_features, out_features, bias, double_quant, compute_dtype):
            nn.Module.__init__(self)
            self.in_features, self.out_features = in_features, out_features
            n = in_features * out_features
            self.weight = nn.Parameter(torch.empty(math.ceil(n / 2), 1, dtype=torch.uint8), requires_grad=False)
            blocks = math.ceil(n / 64)
            if double_quant:
                self.register_buffer("absmax", torch.empty(blocks, dtype=torch.uint8))
                self.register_buffer("absmax2", torch.empty(math.ceil(blocks / 256), dtype=torch.float32))
            else:
                self.register_buffer("absmax", torch.empty(blocks, dtype=torch.float32))
            self.bias = nn.Parameter(torch.empty(out_features, dtype=compute_dtype), requires_grad=False) if bias else None
            self.compute_dtype = compute_dtype

        def forward(self, x):
            y = _Dequant.apply(x.to(self.compute_dtype), self.weight, self.out_features, self.in_features)
            return y + self.bias if self.bias is not None else y

    return Linear4bitStandIn


def _quantize_linears_4bit(model, double_quant: bool, compute_dtype) -> None:
    from torch import nn

    cls = _make_4bit_linear_class()
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Linear and child_name != "lm_head":
                setattr(module, child_name, cls(child.in_features, child.out_features, child.bias is not None,
                                                double_quant, compute_dtype))


class _Adam8bitStandIn:
    """Memory layout of bitsandbytes 8-bit AdamW (Dettmers et al. 2022): both moments as uint8 with one
    fp32 absmax per 256-value block. Only its memory is emulated (bitsandbytes needs CUDA)."""

    def __init__(self, params):
        import torch

        self.params = list(params)
        self.state = {}
        for p in self.params:
            blocks = math.ceil(p.numel() / 256)
            self.state[p] = [torch.empty_like(p, dtype=torch.uint8), torch.empty_like(p, dtype=torch.uint8),
                             torch.empty(blocks, dtype=torch.float32), torch.empty(blocks, dtype=torch.float32)]

    def step(self):
        pass

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None


def dry_run(arch: DecoderArch, settings) -> Measurement:
    """Run the step that ``settings`` describes under fake tensors; the peak by category, in bytes.

    ``settings`` is an ``estimator.Settings``; only decoder architectures can be measured.
    """
    if not isinstance(arch, DecoderArch):
        raise ConfigError("--measure runs decoder LLMs only (Whisper and the embedder are estimated, not measured)")
    try:
        import torch
        from torch._subclasses.fake_tensor import FakeTensorMode
        from transformers import AutoModelForCausalLM
    except ImportError as exc:  # pragma: no cover - torch is a hard dependency
        raise ConfigError(f"--measure needs torch and transformers: {exc}") from None
    from pipeline.planner.precision import parse_precision

    mode = settings.mode
    prec = parse_precision(settings.precision, double_quant=settings.double_quant, mode=mode)
    half = torch.float16 if prec.name == "fp16" else torch.bfloat16
    notes: list[str] = []
    if mode in ("inference", "lora") and prec.kind != "float":
        raise ConfigError(f"--measure runs fp32/bf16/fp16 weights (qlora emulates nf4); not {prec.label} in {mode} mode")
    if mode == "full" and prec.kind != "float":
        raise ConfigError("full fine-tuning needs fp32/bf16/fp16 weights")
    amp = mode in ("lora", "qlora") or (mode == "full" and prec.name != "fp32" and settings.master_weights)
    if mode == "inference":
        param_dtype = torch.float32 if prec.name == "fp32" else half
    elif mode == "full":
        param_dtype = torch.float32 if (prec.name == "fp32" or amp) else half
    else:
        param_dtype = half
    cfg = hf_config(arch, settings.attention)
    started = time.perf_counter()
    torch.manual_seed(0)
    with FakeTensorMode(allow_non_fake_inputs=True), _fake_safe_module_moves():
        previous = torch.get_default_dtype()
        torch.set_default_dtype(param_dtype)
        try:
            model = AutoModelForCausalLM.from_config(cfg)
        finally:
            torch.set_default_dtype(previous)
        ids = torch.randint(0, arch.vocab, (settings.batch, settings.seq))
        if mode == "inference":
            mt, after_forward, setup = _prefill(model, ids, settings, param_dtype)
        else:
            mt, after_forward, setup = _train_step(model, ids, arch, settings, prec, half, amp, param_dtype, notes)
        peak = mt.get_tracker_snapshot("peak")
    seconds = time.perf_counter() - started
    return Measurement(_flatten(peak), _flatten(after_forward), seconds, setup, notes)


def _prefill(model, ids, settings, param_dtype):
    """No-grad prefill with the KV cache on: (tracker, snapshot after the forward pass, description)."""
    import torch

    model.eval()
    mt = _tracker()
    mt.track_external(model)
    with mt, torch.no_grad():
        model(input_ids=ids, use_cache=True, logits_to_keep=1)
        after_forward = mt.get_tracker_snapshot("current")
    return mt, after_forward, f"no-grad prefill of {settings.seq} tokens × batch {settings.batch}, KV cache on, {param_dtype}"


def _train_step(model, ids, arch, settings, prec, half, amp: bool, param_dtype, notes: list[str]):
    """One forward + backward + optimizer step after a warm-up step (so the optimizer state exists):
    (tracker, snapshot after the forward pass, description)."""
    import torch

    from pipeline.planner.terms import resolve_targets

    mode = settings.mode
    if mode == "qlora":
        _quantize_linears_4bit(model, prec.double_quant, half)
        notes.append("4-bit base linears are a stand-in with bitsandbytes' storage layout")
    if mode in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(r=settings.lora_rank, lora_alpha=2 * settings.lora_rank, lora_dropout=0.0,
                          target_modules=list(resolve_targets(arch, settings.lora_targets)))
        model = get_peft_model(model, lcfg)
    model.train()
    if settings.grad_ckpt:
        with warnings.catch_warnings():  # renamed in transformers 5; same behaviour
            warnings.simplefilter("ignore", FutureWarning)
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if mode in ("lora", "qlora"):
            model.enable_input_require_grads()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(settings.optimizer, trainable, notes)
    for p in trainable:  # warm-up: the optimizer state exists before the measured step
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    mt = _tracker()
    mt.track_external(model, opt) if not isinstance(opt, _Adam8bitStandIn) else mt.track_external(model)
    autocast = torch.autocast("cpu", dtype=half) if amp else contextlib.nullcontext()
    with mt:
        if isinstance(opt, _Adam8bitStandIn):
            for states in opt.state.values():
                for s in states:
                    mt._track(_opt_reftype(), s)
        with autocast:
            # Like the HF Trainer's compute_loss: only the loss outlives the forward pass.
            loss = model(input_ids=ids, labels=ids).loss
        after_forward = mt.get_tracker_snapshot("current")
        loss.backward()
        del loss
        opt.step()
        opt.zero_grad(set_to_none=True)
    what = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA"}[mode]
    setup = (f"{what}: forward+backward+{settings.optimizer} step, {settings.seq} tokens × batch "
             f"{settings.batch}, params {param_dtype}{', autocast ' + str(half) if amp else ''}"
             f"{', gradient checkpointing' if settings.grad_ckpt else ''}")
    return mt, after_forward, setup


def _tracker():
    """MemTracker that also accepts frozen parameters (LoRA's base weights: upstream installs a
    gradient hook on every parameter, which fails on tensors that do not require grad) and keeps
    only the global peak."""
    import torch
    from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType

    class _Tracker(MemTracker):
        def _update_peak_stats(self, peak_state) -> None:
            # Only the global peak is reported; upstream also walks every tracked module on every op,
            # which makes LoRA models (hundreds of small modules) quadratic in time.
            for dev, dev_snap in self._curr_mem_snap.items():
                if self._peak_mem.get(dev, 0) < dev_snap["Total"]:
                    self._peak_mem[dev] = dev_snap["Total"]
                    self._peak_mem_snap[dev] = dict(dev_snap)

        def _track_module_params_and_buffers(self, module, install_grad_hooks=True):
            def _grad_hook(grad: torch.Tensor) -> None:
                self._update_and_maybe_create_winfos(grad, _MemRefType.GRAD)

            param_memory = 0
            for param in module.parameters():
                winfos = self._update_and_maybe_create_winfos(param, _MemRefType.PARAM)
                param_memory += sum(w.mem_consumed for w in winfos)
                if param.grad is not None:
                    self._update_and_maybe_create_winfos(param.grad, _MemRefType.GRAD)
                if param.requires_grad and install_grad_hooks and self._param_to_grad_hook_handles.get(param) is None:
                    self._param_to_grad_hook_handles[param] = (
                        param.register_hook(_grad_hook),
                        param.register_post_accumulate_grad_hook(lambda p: _grad_hook(p.grad)),
                    )
            buffer_memory = 0
            for buffer in module.buffers():
                winfos = self._update_and_maybe_create_winfos(buffer, _MemRefType.BUFFER)
                buffer_memory += sum(w.mem_consumed for w in winfos)
            return param_memory, buffer_memory

    return _Tracker()


def _opt_reftype():
    from torch.distributed._tools.mem_tracker import _MemRefType

    return _MemRefType.OPT


def measured_settings(settings):
    """The estimator's description of what the dry run does: fused AdamW, only the loss outliving
    the forward pass (as the HF Trainer's compute_loss), no peft k-bit preparation, no LoRA dropout,
    and transformers' model code (the dry run builds the HF model, whatever --framework says)."""
    from dataclasses import replace

    return replace(settings, fused_optimizer=True, keep_outputs=False, kbit_prep=False, lora_dropout=0.0, framework="hf")


def _optimizer(name: str, params, notes: list[str]):
    import torch

    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-4, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=1e-3, relative_step=False, scale_parameter=False, warmup_init=False)
    if name == "adamw8bit":
        notes.append("8-bit AdamW is a stand-in with bitsandbytes' state layout")
        return _Adam8bitStandIn(params)
    raise ConfigError(f"unknown optimizer {name!r}; valid: adamw, adamw8bit, sgd, adafactor")


def _flatten(snapshot) -> dict[str, int]:
    """MemTracker snapshot {device: {category: bytes}} → {category: bytes} summed over devices."""
    out: dict[str, int] = {}
    for per_device in snapshot.values():
        for key, value in per_device.items():
            name = str(getattr(key, "value", key))
            out[name] = out.get(name, 0) + int(value)
    return out
