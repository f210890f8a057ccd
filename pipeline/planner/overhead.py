"""Runtime overhead every GPU estimate ends with: the CUDA context (not tensor memory) and the
allocator's slack (PyTorch's caching allocator, or CTranslate2's cub allocator for faster-whisper)."""

from __future__ import annotations

from pipeline.planner.types import Component, Settings, _n

# CUDA context + module images + cuBLAS/cuDNN workspaces: not tensor memory, so
# torch.cuda.memory_allocated never shows it, but nvidia-smi does. With lazy module loading (CUDA >=
# 11.7, PyTorch's default) the bare context is 300-400 MiB (pytorch/pytorch#107667, #109888) and grows
# as a run loads kernels (attention, bitsandbytes, cuBLASLt workspaces); before CUDA 11.7 every kernel
# was loaded at start, "> 1000 MB" (#107667), 1105 MiB left after empty_cache in #60150. Published
# nvidia-smi figures for small models imply 1.0-1.4 GiB in total. Default: 1.0 GiB for a PyTorch
# process, the low end, the fit check's 10% margin covering the rest on cards of 8 GB and up;
# ``--cuda-context MIB`` sets it (1400 for eager loading). CTranslate2 (faster-whisper) loads cuBLAS but
# none of PyTorch's kernels: 0.5 GiB, which its published nvidia-smi rows in eval/vram_published.yaml
# bear out.
CUDA_CONTEXT_MIB = {"torch": 1024, "ctranslate2": 512}
CT2_MAX_CACHED = 200 * 2**20  # CTranslate2's cub caching allocator keeps at most this much cached
# The caching allocator rounds blocks up (512 B, 2 MiB segments) and keeps freed blocks cached, so
# reserved memory exceeds the allocated peak (PyTorch "CUDA semantics", memory management). Weights and
# optimizer state are allocated once and pack tightly; the slack comes from the short-lived tensors
# (activations, temporaries): 10% of those. A heuristic, checked in eval/.
ALLOCATOR_SLACK = 0.10


def cuda_context_bytes(st: Settings, runtime: str = "torch") -> int:
    """The CUDA context term: ``--cuda-context`` when given, else the runtime's default."""
    mib = st.cuda_context_mib if st.cuda_context_mib is not None else CUDA_CONTEXT_MIB[runtime]
    return int(mib) * 2**20


def runtime_components(components: list[Component], st: Settings, runtime: str = "torch",
                       cacheable: int | None = None) -> list[Component]:
    """CUDA context and allocator slack for a list of tensor components (nothing when overhead is off).
    ``cacheable`` (CTranslate2): the bytes of freed blocks its allocator can keep (whisper._ct2_cacheable);
    None: all the short-lived tensors."""
    if not st.overhead:
        return []
    transient = sum(c.bytes for c in components if c.category in ("Activation", "Temp"))
    # Fragmentation at large activations: the caching allocator serves each large tensor from one
    # contiguous segment and splits cached segments for smaller requests; when the freed memory is
    # scattered it cannot form a segment the size of the largest tensor (at long context the fp32
    # log-softmax, 4·b·s·V, half the "loss" component) and the next one OOMs with memory "free".
    # The slack is at least one such block (PyTorch CUDA semantics, "optimizing memory usage").
    largest = max((c.bytes // 2 for c in components if c.key == "loss"), default=0)
    slack = max(int(transient * ALLOCATOR_SLACK), largest)
    how = (f"max({ALLOCATOR_SLACK:.0%} of activations and temporaries, largest tensor {_n(largest)} B)",
           "PyTorch caching allocator (reserved > allocated; fragmentation)")
    if runtime == "ctranslate2":
        # CTranslate2's CUDA allocator is cub's CachingDeviceAllocator (src/cuda/allocator.cc: bin
        # growth 4, bins up to 4^12 = 16 MiB, max_cached_bytes 200 MiB): blocks above 16 MiB are
        # freed at once, smaller ones stay cached up to 200 MiB.
        held = transient if cacheable is None else cacheable
        slack = min(CT2_MAX_CACHED, held)
        how = (f"cached blocks ≤ 16 MiB: min({held / 2**20:.0f} MiB, max_cached_bytes = 200 MiB)",
               "CTranslate2 src/cuda/allocator.cc (cub caching allocator)")
    ctx = cuda_context_bytes(st, runtime)
    given = st.cuda_context_mib is not None
    return [
        Component("cuda_context", "CUDA context + libraries", ctx, "Runtime",
                  f"{ctx / 2**20:.0f} MiB ({'--cuda-context' if given else runtime + ' default'})",
                  "not tensor memory; published nvidia-smi figures 1.0–1.4 GiB for PyTorch (see overhead.CUDA_CONTEXT_MIB)"),
        Component("allocator", "allocator slack", slack, "Runtime", *how),
    ]
