"""Per-GPU memory under data parallelism with sharded states (DDP, ZeRO-1/2/3, FSDP) and CPU offload.

Rajbhandari et al. 2020 ("ZeRO", §5.1-5.3, Figure 1): with N data-parallel GPUs, stage 1 splits the
optimizer state (with mixed precision the fp32 master copy is part of it: K = 12 bytes per parameter
in the paper), stage 2 also the gradients, stage 3 also the parameters; activations are never split
(each GPU runs its own micro-batch). PyTorch FSDP FULL_SHARD is stage 3 (Zhao et al. 2023, "PyTorch
FSDP", §3). What sharding adds back:

- FSDP gathers one unit's full parameters (in the compute dtype) before its forward and backward and
  prefetches the next (``backward_prefetch=BACKWARD_PRE``): two units at once, a unit being a
  transformer layer or the embedding/output matrix, whichever is larger; its gradient exists
  unsharded until the reduce-scatter. DeepSpeed ZeRO-3 keeps gathered parameters alive up to
  ``stage3_max_live_parameters`` (default 1e9 parameters, DeepSpeed config docs): min(all, 1e9).
  That limit stops prefetching, not a fetch: a parameter whose next use is within
  ``stage3_max_reuse_distance`` (default 1e9 parameters) is not released, and the output layer's
  backward follows its forward at once (distance 0), so at the turn from forward to backward the
  output matrix stays gathered while the last layer is fetched: max(min(all, 1e9), head + layer)
  (PartitionedParameterCoordinator: release_sub_module / __params_to_release, prefetch budget).
- Parameter offload adds the shard's trip: a unit whose shard is in CPU RAM is first copied to the
  GPU, then all-gathered into the full buffer (DeepSpeed ``all_gather_coalesced``:
  ``param.ds_tensor.to(device)``; FSDP ``FlatParamHandle.pre_unshard``: ``flat_param_to(device)``),
  so the largest fetched unit exists once more, divided by N, while it is gathered.
- DeepSpeed ZeRO-2/3 reduce gradients through a bucket of ``reduce_bucket_size`` elements (default
  5e8) in the gradient dtype; ZeRO-3 allocates it whole (contiguous_gradients), ZeRO-2 at most the
  gradients' size.
- DDP keeps gradient buckets beside ``.grad`` (``gradient_as_bucket_view=False``, the default): one
  more gradient copy (torch DistributedDataParallel docs, gradient_as_bucket_view).

Offload (ZeRO-Offload, Ren et al. 2021 §4; DeepSpeed ``offload_optimizer``; FSDP ``CPUOffload``):
``optimizer`` moves the optimizer state, the fp32 master weights and the step to CPU RAM;
``params`` (ZeRO-3 ``offload_param`` / FSDP) also the parameter shards. The GPU keeps the gradients
(they are produced there before each copy) — counted in full, the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.planner.types import Component, Settings

DS_MAX_LIVE_PARAMETERS = 10**9  # DeepSpeed stage3_max_live_parameters default
DS_REDUCE_BUCKET = 5 * 10**8  # DeepSpeed reduce_bucket_size default (elements)


@dataclass
class Units:
    """What sharding needs to know of a model besides its components."""

    unit_params: int  # parameters of the largest FSDP unit (a layer, or the embedding matrix)
    trainable_unit: int  # its trainable parameters (their gradient is unsharded until reduce-scatter)
    grad_b: int  # bytes per gradient element
    grads_total: int  # bytes of all gradients (DDP buckets)
    total_params: int
    compute_b: int = 2  # bytes per gathered parameter (the compute dtype)
    head_params: int = 0  # the output matrix (the embedding when tied): the last forward use, the first backward one
    layer_params: int = 0  # the largest layer

# Components each sharding stage divides by N (keys as in training.py / whisper.py / others.py).
_STAGE = {
    "zero1": {"optimizer", "master"},
    "zero2": {"optimizer", "master", "gradients", "step_temp"},
    "zero3": {"optimizer", "master", "gradients", "step_temp", "weights", "upcast", "adapters", "weight_casts"},
}
_OFFLOADED = {"optimizer": {"optimizer", "master", "step_temp"},
              "params": {"optimizer", "master", "step_temp", "weights", "upcast", "adapters"}}


def stage(st: Settings) -> str:
    return "zero3" if st.shard == "fsdp" else st.shard


def shard(components: list[Component], st: Settings, u: Units) -> tuple[list[Component], list[Component]]:
    """(per-GPU components, CPU components) of one moment of a training step."""
    n, kind = st.gpus, stage(st)
    split = _STAGE.get(kind, set())
    off = _OFFLOADED.get(st.offload, set())
    gpu: list[Component] = []
    cpu: list[Component] = []
    for c in components:
        key = "master" if c.key == "weights" and "master" in c.label else c.key
        b = c.bytes // n if key in split else c.bytes
        formula = f"{c.formula} ÷ {n} GPUs" if key in split else c.formula
        moved = Component(c.key, c.label, b, c.category, formula, c.source + ("; ZeRO §5" if key in split else ""))
        (cpu if key in off else gpu).append(moved)
    if kind == "zero3":
        if st.shard == "fsdp":
            live, what, src = 2 * u.unit_params, f"2 units × {u.unit_params:,}", "FSDP all-gather with backward prefetch"
            trip = live // n if st.offload == "params" else 0
        else:
            live = max(min(u.total_params, DS_MAX_LIVE_PARAMETERS), u.head_params + u.layer_params)
            what = f"max(min(all, 1e9), head + layer) = {live:,}"
            src = "DeepSpeed stage3_max_live_parameters, stage3_max_reuse_distance (defaults 1e9)"
            largest = max(u.head_params, u.layer_params) or u.unit_params
            trip = largest // n if st.offload == "params" else 0
        if trip:
            what += f" + {trip:,} (offloaded shard copied in)"
            src += "; parameter offload: shard copied to the GPU before the all-gather"
        gathered = (live + trip) * u.compute_b + u.trainable_unit * u.grad_b
        gpu.append(Component("gathered", "gathered parameters + one unsharded gradient", gathered, "Temp",
                             f"{what} params × {u.compute_b} B + {u.trainable_unit:,} × {u.grad_b} B", src))
    if st.shard in ("zero2", "zero3"):  # DeepSpeed (FSDP reduce-scatters per unit, counted above)
        bucket = min(DS_REDUCE_BUCKET * u.grad_b, u.grads_total) if st.shard == "zero2" else DS_REDUCE_BUCKET * u.grad_b
        gpu.append(Component("reduce_bucket", "DeepSpeed gradient reduce bucket", bucket, "Temp",
                             f"reduce_bucket_size 5e8 elements × {u.grad_b} B",
                             "DeepSpeed ZeRO config (reduce_bucket_size default 5e8; contiguous_gradients)"))
    if st.shard == "ddp":  # buckets are allocated when DDP wraps the model: both moments
        gpu.append(Component("ddp_buckets", "DDP gradient buckets", u.grads_total, "Temp", "one more gradient copy",
                             "torch DDP gradient_as_bucket_view=False (default)"))
    return gpu, cpu


def describe(st: Settings) -> str | None:
    """One line for the notes: what the per-GPU figure assumes."""
    if st.gpus == 1 and st.offload == "none":
        return None
    what = {"none": "replicated", "ddp": "DDP (replicated states)", "zero1": "ZeRO-1 (optimizer state split)",
            "zero2": "ZeRO-2 (optimizer state and gradients split)", "zero3": "ZeRO-3 (all states split)",
            "fsdp": "FSDP FULL_SHARD (all states split)"}[st.shard]
    text = f"per GPU, {st.gpus} GPUs, {what}; activations are per GPU (each runs its own micro-batch of {st.batch})"
    if st.offload != "none":
        text += f"; {st.offload} offloaded to CPU RAM (ZeRO-Offload): the step runs there, slower"
    return text
