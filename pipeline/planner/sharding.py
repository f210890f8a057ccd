"""Per-GPU memory under data parallelism with sharded states (DDP, ZeRO-1/2/3, FSDP) and CPU offload.

Rajbhandari et al. 2020 ("ZeRO", §5.1-5.3, Figure 1): with N data-parallel GPUs, stage 1 splits the
optimizer state (with mixed precision the fp32 master copy is part of it: K = 12 bytes per parameter
in the paper), stage 2 also the gradients, stage 3 also the parameters; activations are never split
(each GPU runs its own micro-batch). PyTorch FSDP FULL_SHARD is stage 3 (Zhao et al. 2023, "PyTorch
FSDP", §3). What sharding adds back:

- FSDP gathers one unit's full parameters (in the compute dtype) before its forward and backward and
  prefetches the next (``backward_prefetch=BACKWARD_PRE``): two units at once, a unit being a
  transformer layer or the embedding/output matrix, whichever is larger; its gradient exists
  unsharded until the reduce-scatter.
- DeepSpeed ZeRO-3 is counted at the bounds its configuration sets (``DS_*`` below: the DeepSpeed
  defaults, ``deepspeed/runtime/zero/config.py``; accelerate's DeepSpeed plugin without a config file,
  as in PEFT's examples, leaves them at these defaults). These are upper bounds, the safe side: a real
  run may stay below them. See ``deepspeed_zero3`` for each buffer, its formula and its source.
- Parameter offload adds the shard's trip: a unit whose shard is in CPU RAM is first copied to the
  GPU, then all-gathered into the full buffer (DeepSpeed ``all_gather_coalesced``:
  ``param.ds_tensor.to(device)``; FSDP ``FlatParamHandle.pre_unshard``: ``flat_param_to(device)``),
  so the largest fetched unit exists once more, divided by N, while it is gathered (on one GPU
  DeepSpeed may copy straight into place, ``_no_gather_coalesced``: then this is an over-count).
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

# DeepSpeed ZeRO config defaults (deepspeed/runtime/zero/config.py, DeepSpeedZeroConfig), in elements.
DS_MAX_LIVE_PARAMETERS = 10**9  # stage3_max_live_parameters
DS_MAX_REUSE_DISTANCE = 10**9  # stage3_max_reuse_distance
DS_PREFETCH_BUCKET = 5 * 10**7  # stage3_prefetch_bucket_size (inside the live bound: prefetch stops at it)
DS_REDUCE_BUCKET = 5 * 10**8  # reduce_bucket_size
DS_PERSISTENCE_THRESHOLD = 10**5  # stage3_param_persistence_threshold: smaller tensors stay whole on every GPU
DS_SUB_GROUP = 10**9  # sub_group_size: the optimizer step's tile


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
    small_bytes: int = 0  # tensors under DS_PERSISTENCE_THRESHOLD elements (norms, small LoRA matrices), bytes

# Components each sharding stage divides by N (keys as in training.py / whisper.py / others.py).
_STAGE = {
    "zero1": {"optimizer", "master"},
    "zero2": {"optimizer", "master", "gradients", "step_temp"},
    "zero3": {"optimizer", "master", "gradients", "step_temp", "weights", "upcast", "adapters", "weight_casts"},
}
_OFFLOADED = {"optimizer": {"optimizer", "master", "step_temp"},
              "params": {"optimizer", "master", "step_temp", "weights", "upcast", "adapters"}}


def persistent_bytes(static: list[Component], st: Settings, hidden: int, norm_params: int, norm_b: int) -> int:
    """Bytes of the tensors DeepSpeed ZeRO-3 never partitions (under 1e5 elements): the norms, and the
    LoRA matrices when r × hidden is under the threshold (all of them counted then, the safe side)."""
    small_lora = st.lora_rank * hidden < DS_PERSISTENCE_THRESHOLD
    return sum(c.bytes for c in static if c.key == "adapters" and small_lora) + norm_params * norm_b


def stage(st: Settings) -> str:
    return "zero3" if st.shard == "fsdp" else st.shard


def shard(components: list[Component], st: Settings, u: Units,
          step: bool = False) -> tuple[list[Component], list[Component]]:
    """(per-GPU components, CPU components) of one moment of a training step (``step``: the optimizer's)."""
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
    if st.shard == "fsdp":
        live = 2 * u.unit_params
        trip = live // n if st.offload == "params" else 0
        what = f"2 units × {u.unit_params:,}" + (f" + {trip:,} (offloaded shard copied in)" if trip else "")
        src = "FSDP all-gather with backward prefetch"
        if trip:
            src += "; parameter offload: shard copied to the GPU before the all-gather"
        gathered = (live + trip) * u.compute_b + u.trainable_unit * u.grad_b
        gpu.append(Component("gathered", "gathered parameters + one unsharded gradient", gathered, "Temp",
                             f"{what} params × {u.compute_b} B + {u.trainable_unit:,} × {u.grad_b} B", src))
    elif st.shard == "zero3":
        gpu.extend(deepspeed_zero3(st, u, step))
    if st.shard == "zero2":  # DeepSpeed (FSDP reduce-scatters per unit, counted above)
        gpu.append(Component("reduce_bucket", "DeepSpeed gradient reduce bucket", min(DS_REDUCE_BUCKET * u.grad_b,
                             u.grads_total), "Temp", f"min(reduce_bucket_size 5e8 elements × {u.grad_b} B, gradients)",
                             "DeepSpeed ZeRO config (reduce_bucket_size default 5e8)"))
    if st.shard == "ddp":  # buckets are allocated when DDP wraps the model: both moments
        gpu.append(Component("ddp_buckets", "DDP gradient buckets", u.grads_total, "Temp", "one more gradient copy",
                             "torch DDP gradient_as_bucket_view=False (default)"))
    return gpu, cpu


BOUND = "configured bound, upper"  # label suffix: the buffer is counted at the limit DeepSpeed's config sets


def deepspeed_zero3(st: Settings, u: Units, step: bool) -> list[Component]:
    """DeepSpeed ZeRO-3's GPU-side buffers, each at the bound its configuration sets (the defaults).

    Pinned CPU buffers (offloaded parameter and gradient partitions, the CPU optimizer's tiles) are
    host memory and are not counted here; the offloaded states are listed as CPU components. The
    contiguous gradient partition buffer (stage3.py grad_partitions_flat_buffer: every trainable
    partition) is the "gradients ÷ N" line, kept on the GPU even with optimizer offload (the safe side).
    ``allgather_bucket_size`` is not a ZeRO-3 buffer: stage 3 gathers per module through the
    parameter coordinator (bounded below); the bucket is ZeRO-1/2's all-gather of updated partitions.
    """
    n = st.gpus
    trainable = u.grads_total // max(u.grad_b, 1)
    largest = max(u.head_params, u.layer_params) or u.unit_params
    # Gathered parameters (PartitionedParameterCoordinator.fetch_sub_module / __params_to_release):
    # the prefetcher stops once the gathered total reaches stage3_max_live_parameters (its
    # stage3_prefetch_bucket_size steps lie inside that), but the module about to run is fetched
    # whatever the total, and a parameter used again within stage3_max_reuse_distance elements of the
    # trace is not released (the scan stops only after a whole module, so one more module may be
    # kept). Hence: min(all, max(max_live, max_reuse) + 2 × the largest module).
    live = min(u.total_params, max(DS_MAX_LIVE_PARAMETERS, DS_MAX_REUSE_DISTANCE) + 2 * largest)
    what = f"min(all, max(max_live 1e9, max_reuse 1e9) + 2 × largest module {largest:,}) = {live:,}"
    src = ("DeepSpeed PartitionedParameterCoordinator (fetch_sub_module, __params_to_release); "
           "stage3_max_live_parameters, stage3_max_reuse_distance 1e9, stage3_prefetch_bucket_size 5e7 (defaults)")
    trip = largest // n if st.offload == "params" else 0
    if trip:
        what += f" + {trip:,} (offloaded shard copied in)"
        src += "; parameter offload: partition_parameters all_gather_coalesced copies ds_tensor to the GPU first"
    out = [Component("gathered", f"gathered parameters + one unsharded gradient ({BOUND})",
                     (live + trip) * u.compute_b + u.trainable_unit * u.grad_b, "Temp",
                     f"{what} params × {u.compute_b} B + {u.trainable_unit:,} × {u.grad_b} B", src)]
    # Gradients: stage3.py keeps one contiguous bucket of reduce_bucket_size elements (contiguous_gradients,
    # allocated whole), and reduce_scatter_coalesced (coalesced_collectives.py) concatenates the bucket's
    # gradients into a second flat buffer before the reduce-scatter: at most the bucket, at most the
    # trainable parameters.
    flat = min(DS_REDUCE_BUCKET, trainable)
    out.append(Component("reduce_bucket", f"DeepSpeed gradient reduce bucket + reduce-scatter copy ({BOUND})",
                         (DS_REDUCE_BUCKET + flat) * u.grad_b, "Temp",
                         f"(reduce_bucket_size 5e8 + min(5e8, {trainable:,} trainable)) elements × {u.grad_b} B",
                         "DeepSpeed stage3.py (contiguous_gradients bucket), coalesced_collectives."
                         "reduce_scatter_coalesced (torch.cat); reduce_bucket_size default 5e8"))
    # Persistent parameters: tensors under stage3_param_persistence_threshold (1e5 elements) are never
    # partitioned or offloaded (ds_persist), so each GPU holds them whole; stage3_model_persistence_threshold
    # (default sys.maxsize) puts no cap on their total. They are counted again here beside their share
    # in the weight/adapter lines, the safe side.
    if u.small_bytes:
        out.append(Component("persistent", f"DeepSpeed persistent small parameters ({BOUND})", u.small_bytes,
                             "Parameter", "tensors under 1e5 elements, whole on every GPU",
                             "DeepSpeed stage3_param_persistence_threshold 1e5 (default), ds_persist"))
    # The optimizer step without optimizer offload: each sub-group's gradient partition is flattened
    # into an fp32 copy for the optimizer (stage3.py _prepare_fp32_grad_for_sub_group), at most
    # sub_group_size elements. With offload the gradients are copied to pinned host memory instead.
    if step and st.offload == "none":
        tile = min(DS_SUB_GROUP, trainable // n)
        out.append(Component("sub_group", f"DeepSpeed fp32 gradient of one optimizer sub-group ({BOUND})", tile * 4,
                             "Temp", f"min(sub_group_size 1e9, {trainable // n:,} trainable ÷ {n} GPUs) × 4 B",
                             "DeepSpeed stage3.py _prepare_fp32_grad_for_sub_group; sub_group_size default 1e9"))
    return out


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
    if st.shard == "zero3":
        text += ("; DeepSpeed buffers counted at the bounds its config sets (defaults: stage3_max_live_parameters "
                 "and stage3_max_reuse_distance 1e9, reduce_bucket_size 5e8, sub_group_size 1e9, "
                 "stage3_param_persistence_threshold 1e5): an upper bound, a real run may use less")
    return text
