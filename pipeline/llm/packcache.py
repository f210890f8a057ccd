"""The fast decoder's weights, quantized once per machine and kept in the user cache.

Building :class:`~pipeline.llm.fastlm.FastDecoder` quantizes every matrix (int4 groups, int8 rows,
bf16 prompt copies): ~5 s of CPU for SmolLM2-135M on a 2-core machine, paid by every new process.
The result is saved as one safetensors file (tensors plus a string table in its metadata; no pickle)
named by the source weights' content, the precision and the PyTorch build, so a later process only
reads it. It is written under a lock and renamed into place (:func:`syllabus_common.modelcache.cached_file`),
so two processes starting at once pack once and a crash leaves no half-written file.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path

log = logging.getLogger(__name__)

RECIPE = "fastlm-pack-v2"  # v2: the bf16 prompt copy covers the head too


def source_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("*.safetensors")) + [Path(folder) / "config.json"]


def pack_name(folder: Path, kind: str, prefill_copy: str | bool | None = None) -> str:
    """File name of the packed weights: by the source's content and everything that shapes the pack
    (``prefill_copy``: the kind of prompt copy of the int layers it holds, bf16 or fp32, which depends
    on the machine's CPU and memory; True: this machine's kind; False: none; None: decided here, as
    :func:`load_decoder` does)."""
    import torch

    from pipeline.llm.fastlm import copy_kind
    from pipeline.llm.lite import read_config
    from pipeline.llm.quant import kernel_available
    from syllabus_common.modelcache import content_key, read_marker

    copy = copy_kind(prefill_copy, read_config(folder), kind)
    recipe = (f"{RECIPE}|{kind}|bf16={kernel_available('bf16')}|torch={torch.__version__}|{platform.machine()}"
              + {"bf16": "|prefill-copy", "fp32": "|prefill-copy-fp32", None: ""}[copy])
    marker = read_marker(folder) or {}
    if len(marker.get("sha256", "")) == 64 and marker.get("recipe"):
        # A conversion we made: its source's hash and recipe name it (no need to hash 0.5 GB again).
        import hashlib

        key = hashlib.sha256(f"{recipe}|{marker['sha256']}|{marker['recipe']}".encode()).hexdigest()[:16]
    else:
        key = content_key(source_files(folder), recipe)
    return f"fastlm-{kind}-{key}.safetensors"


def _read_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    weights: dict = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        weights.update(load_file(str(path)))
    return weights


def load_decoder(folder: Path, config, kind: str, max_len: int, cache_dirs: tuple[Path, ...] = ()):
    """The fast decoder for the model in ``folder``: read from a packed file in any of ``cache_dirs``,
    else built from the folder's safetensors and packed into the first of them."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from pipeline.llm.fastlm import FastDecoder, prefill_copy_kind
    from syllabus_common.modelcache import cached_file, models_dir

    prefill_copy = prefill_copy_kind(config, kind)
    name = pack_name(folder, kind, prefill_copy or False)
    dirs = [Path(d) / "models" for d in cache_dirs] or [models_dir()]
    for base in dirs:
        path = base / name
        if path.is_file():
            try:
                with safe_open(str(path), framework="pt") as fh:  # one read: metadata and tensors
                    meta, tensors = fh.metadata(), {key: fh.get_tensor(key) for key in fh.keys()}
                return FastDecoder.from_packed(config, tensors, meta, max_len)
            except Exception as exc:  # damaged (safetensors raises its own error type) or foreign: pack again
                log.warning("packing again: %s is unreadable (%s)", path, exc)
                if base == dirs[0]:
                    path.unlink(missing_ok=True)
    decoder = FastDecoder.from_weights(config, _read_weights(folder), kind, max_len, prefill_copy=prefill_copy or False)
    tensors, meta = decoder.packed()
    try:
        cached_file(dirs[0] / name, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    except OSError as exc:  # a read-only cache only costs packing again next time
        log.warning("cannot keep packed weights in %s: %s", dirs[0], exc)
    return decoder
