"""The analytic memory estimator: one function per component, each citing where its formula comes from.

Units: bytes everywhere; b = batch, s = tokens per sequence, h = hidden size, I = MLP width,
V = vocabulary, L = layers, p = bytes per activation element (2 in 16-bit compute, 4 in fp32).

The training and inference formulas count the tensors that the Hugging Face transformers
implementation (the runtime this project uses) keeps alive, following the method of Korthikanti et
al. 2022, "Reducing Activation Recomputation in Large Transformer Models" (arXiv:2205.05198), §4.1:
per operation, the inputs its backward needs. Their GPT layer gives sbh(34 + 5as/h) bytes in 16 bit
(``korthikanti_gpt_layer``); the Llama-style layer (RMSNorm computed in fp32, SwiGLU MLP, grouped-query
attention, no dropout) gives the terms in ``train_layer_activations``. The dry run (``measure.py``)
checks them.
"""


from __future__ import annotations

# Besides estimate(), the estimator's public names stay importable from here (noqa: re-exports).
from pipeline.planner.catalog import Arch, EncDecArch, EncoderArch, WhisperArch
from pipeline.planner.inference import (estimate_inference, kv_cache_bytes, logits_bytes_inference,  # noqa: F401
                                        prefill_working_set, weight_bytes)
from pipeline.planner.overhead import ALLOCATOR_SLACK, CUDA_CONTEXT_MIB, cuda_context_bytes, runtime_components  # noqa: F401
from pipeline.planner.terms import (korthikanti_gpt_layer, lora_params, optimizer_bytes, resolve_targets,  # noqa: F401
                                    train_layer_activations)
from pipeline.planner.types import (ALL_LINEAR, ATTENTION, LOSSES, MODES, OFFLOAD, OPTIMIZERS, RUNTIMES,  # noqa: F401
                                    SHARDING, Component, Estimate, Settings)


def estimate(arch: Arch, settings: Settings) -> Estimate:
    """The peak memory of running ``arch`` as ``settings`` says, component by component (per GPU)."""
    if isinstance(arch, WhisperArch):
        from pipeline.planner.whisper import estimate_whisper

        return estimate_whisper(arch, settings)
    if isinstance(arch, (EncoderArch, EncDecArch)):
        from pipeline.planner.others import estimate_encoder

        est = estimate_encoder(arch, settings)
    elif settings.mode == "inference":
        est = estimate_inference(arch, settings)
    else:
        from pipeline.planner.training import estimate_training

        est = estimate_training(arch, settings)
    est.components += runtime_components(est.components, settings)
    return est
