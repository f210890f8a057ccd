"""Per-GPU memory under data parallelism with sharded states (DDP, ZeRO-1/2/3, FSDP) and CPU offload.

Rajbhandari et al. 2020 ("ZeRO", §5.1-5.3, Figure 1): with N data-parallel GPUs, stage 1 splits the
optimizer state (with mixed precision the fp32 master copy is part of it: K = 12 bytes per parameter
in the paper), stage 2 also the gradients, stage 3 also the parameters; activations are never split
(each GPU runs its own micro-batch). PyTorch FSDP FULL_SHARD is stage 3 (Zhao et al. 2023, "PyTorch
FSDP", §3). What sharding adds back:

- ZeRO-3 / FSDP gather one unit's full 16-bit parameters before its forward and backward and prefetch
  the next (FSDP ``backward_prefetch=BACKWARD_PRE``, DeepSpeed ``stage3_prefetch_bucket_size``): two
  units at once, a unit being a transformer layer or the embedding/output matrix, whichever is larger;
  its gradient exists unsharded until the reduce-scatter. DeepSpeed's ``stage3_max_live_parameters``
  (default 1e9) may keep more alive: set it to a unit's size to match this count.
- DDP keeps gradient buckets beside ``.grad`` (``gradient_as_bucket_view=False``, the default): one
  more gradient copy (torch DistributedDataParallel docs, gradient_as_bucket_view).

Offload (ZeRO-Offload, Ren et al. 2021 §4; DeepSpeed ``offload_optimizer``; FSDP ``CPUOffload``):
``optimizer`` moves the optimizer state, the fp32 master weights and the step to CPU RAM;
``params`` (ZeRO-3 ``offload_param`` / FSDP) also the parameter shards. The GPU keeps the gradients
(they are produced there before each copy) — counted in full, the safe side.
"""

from __future__ import annotations

from pipeline.planner.estimator import Component, Settings

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


def shard(components: list[Component], st: Settings, unit_params: int, trainable_unit: int,
          grad_b: int, grads_total: int) -> tuple[list[Component], list[Component]]:
    """(per-GPU components, CPU components) of one moment of a training step.

    ``unit_params``: parameters of the largest FSDP/ZeRO-3 unit; ``trainable_unit``: its trainable
    parameters (its unsharded gradient before the reduce-scatter)."""
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
        gathered = 2 * unit_params * 2 + trainable_unit * grad_b
        gpu.append(Component("gathered", "gathered parameters (2 units) + one unsharded gradient", gathered, "Temp",
                             f"2 × {unit_params:,} params × 2 B + {trainable_unit:,} × {grad_b} B",
                             "FSDP all-gather with backward prefetch; DeepSpeed stage3_prefetch_bucket_size"))
    if st.shard == "ddp":  # buckets are allocated when DDP wraps the model: both moments
        gpu.append(Component("ddp_buckets", "DDP gradient buckets", grads_total, "Temp", "one more gradient copy",
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
