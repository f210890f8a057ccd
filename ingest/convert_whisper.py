"""Convert CTranslate2 Whisper weights into an openai-whisper checkpoint (``.pt``).

Offline, the only Whisper weights on a machine may be the bundled CTranslate2 ones; openai-whisper
loads ``{"dims": ..., "model_state_dict": ...}`` checkpoints. CTranslate2's ``model.bin`` (binary
version 6) is a header, then named tensors, then aliases::

    u32 version | str spec name | u32 revision | u32 n_variables
    n × (str name | u8 rank | rank × u32 dim | u8 dtype id | u32 n_bytes | n_bytes of data)
    u32 n_aliases | n × (str alias | str target)          str = u16 length incl. NUL, bytes, NUL

Self-attention q/k/v are fused in ``linear_0`` ((3·d, d) → three (d, d)), cross-attention k/v in
``linear_1`` ((2·d, d) → two). openai-whisper's key projections have no bias; CTranslate2 stores a
zero bias there, and even a non-zero one adds the same amount to every score of a query, which the
softmax cancels, so dropping it is exact. fp16 weights become fp32 (``dtype``) for CPU inference.
The result is checked by transcribing the same audio with both (tests/test_convert_whisper.py).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from syllabus_common.errors import SyllabusError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # 5 = bfloat16, handled apart
SUPPORTED_VERSIONS = (6,)


class ConversionError(SyllabusError):
    """The input is not a CTranslate2 Whisper model this converter understands."""


@dataclass
class CT2Model:
    spec: str  # "WhisperSpec"
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]
    config: dict


def _read_string(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<H", buf, pos)
    pos += 2
    return bytes(buf[pos:pos + n - 1]).decode("utf-8"), pos + n


def read_ct2(model_dir: str | Path) -> CT2Model:
    """Parse ``model.bin`` (+ ``config.json``) without CTranslate2. Tensors are views of a memory map."""
    model_dir = Path(model_dir)
    path = model_dir / "model.bin"
    if not path.is_file():
        raise ConversionError(f"{model_dir}: no model.bin; give a CTranslate2 model folder")
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    buf = memoryview(raw)
    try:
        (version,) = struct.unpack_from("<I", buf, 0)
        if version not in SUPPORTED_VERSIONS:
            raise ConversionError(f"{path}: CTranslate2 binary version {version}; supported: {SUPPORTED_VERSIONS}")
        spec, pos = _read_string(buf, 4)
        revision, n_vars = struct.unpack_from("<II", buf, pos)
        pos += 8
        variables: dict[str, np.ndarray] = {}
        for _ in range(n_vars):
            name, pos = _read_string(buf, pos)
            (rank,) = struct.unpack_from("<B", buf, pos)
            shape = struct.unpack_from(f"<{rank}I", buf, pos + 1)
            pos += 1 + 4 * rank
            dtype_id, n_bytes = struct.unpack_from("<BI", buf, pos)
            pos += 5
            data = raw[pos:pos + n_bytes]
            pos += n_bytes
            if dtype_id == 5:  # bfloat16: the top half of a float32
                wide = np.zeros(n_bytes // 2, np.uint32)
                wide[:] = data.view(np.uint16).astype(np.uint32) << 16
                variables[name] = wide.view(np.float32).reshape(shape)
            elif dtype_id in _DTYPES:
                variables[name] = data.view(_DTYPES[dtype_id]).reshape(shape)
            else:
                raise ConversionError(f"{path}: tensor {name} has unknown dtype id {dtype_id}")
        (n_aliases,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        aliases = {}
        for _ in range(n_aliases):
            alias, pos = _read_string(buf, pos)
            target, pos = _read_string(buf, pos)
            aliases[alias] = target
    except struct.error:
        raise ConversionError(f"{path}: truncated or not a CTranslate2 model") from None
    if spec != "WhisperSpec":
        raise ConversionError(f"{path}: a {spec} model, not Whisper")
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    return CT2Model(spec, revision, variables, aliases, config)


def _layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    parts = (k.split("/") for k in variables if k.startswith(prefix + "/layer_"))
    return len({p[1] for p in parts if p[1][len("layer_"):].isdigit()})


def to_openai(ct2: CT2Model, dtype=np.float32) -> tuple[dict, dict[str, np.ndarray]]:
    """(dims, state_dict) in openai-whisper's names and layout; arrays in ``dtype``."""
    v = ct2.variables
    if any(k.endswith("weight_scale") for k in v):
        raise ConversionError("quantized (int8) CTranslate2 weights are not supported; convert a float16/float32 model")
    n_enc, n_dec = _layers(v, "encoder"), _layers(v, "decoder")
    embed = v["decoder/embeddings/weight"]  # (n_vocab, d)
    dims = dict(
        n_mels=int(v["encoder/conv1/weight"].shape[1]),
        n_audio_ctx=int(v["encoder/position_encodings/encodings"].shape[0]),
        n_audio_state=int(v["encoder/conv1/weight"].shape[0]),
        n_audio_head=int(v["encoder/num_heads"]),
        n_audio_layer=n_enc,
        n_vocab=int(embed.shape[0]),
        n_text_ctx=int(v["decoder/position_encodings/encodings"].shape[0]),
        n_text_state=int(embed.shape[1]),
        n_text_head=int(v["decoder/num_heads"]),
        n_text_layer=n_dec,
    )
    sd: dict[str, np.ndarray] = {}

    def put(name: str, array: np.ndarray) -> None:
        sd[name] = np.array(array, dtype=dtype, order="C", copy=True)  # off the read-only memory map

    def linear(dst: str, src: str, bias: bool = True) -> None:
        put(f"{dst}.weight", v[f"{src}/weight"])
        if bias:
            put(f"{dst}.bias", v[f"{src}/bias"])

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", v[f"{src}/gamma"])
        put(f"{dst}.bias", v[f"{src}/beta"])

    def fused(dsts: list[str], src: str) -> None:
        """Split a fused projection: weight (k·d, d) → k × (d, d); keys get no bias."""
        weights = np.split(v[f"{src}/weight"], len(dsts), axis=0)
        biases = np.split(v[f"{src}/bias"], len(dsts), axis=0)
        for dst, w, b in zip(dsts, weights, biases):
            put(f"{dst}.weight", w)
            if not dst.endswith(".key"):
                put(f"{dst}.bias", b)

    def block(dst: str, src: str, cross: bool) -> None:
        """One residual block: self-attention (q/k/v fused), cross-attention in the decoder (k/v fused), MLP."""
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused([f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            fused([f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"], f"{src}/attention/linear_1")
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    for conv in ("conv1", "conv2"):
        linear(f"encoder.{conv}", f"encoder/{conv}")  # (out, in, kernel) in both
    put("encoder.positional_embedding", v["encoder/position_encodings/encodings"])
    for i in range(n_enc):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")

    put("decoder.token_embedding.weight", embed)  # also the output projection (tied; an alias in CT2)
    put("decoder.positional_embedding", v["decoder/position_encodings/encodings"])
    for i in range(n_dec):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")
    projection = ct2.aliases.get("decoder/projection/weight")
    if projection not in (None, "decoder/embeddings/weight") or "decoder/projection/weight" in v and not np.array_equal(
        v["decoder/projection/weight"], embed
    ):
        raise ConversionError("the output projection is not tied to the token embedding; openai-whisper needs it tied")
    return dims, sd


@dataclass
class ConversionReport:
    source: str
    output: str
    dims: dict
    tensors: int
    parameters: int
    dtype: str
    bytes: int


def convert(ct2_dir: str | Path, out_path: str | Path, dtype: str = "float32") -> ConversionReport:
    """Write an openai-whisper checkpoint for a CTranslate2 model folder (atomically).

    The checkpoint also carries the model's cross-attention ``alignment_heads`` (from config.json)
    for word timestamps; :func:`ingest.asr.openai_whisper.load_checkpoint` applies them.
    """
    import torch

    from syllabus_common.atomic import atomic_path

    if dtype not in ("float32", "float16"):
        raise ConversionError(f"dtype must be float32 or float16, not {dtype!r}")
    ct2 = read_ct2(ct2_dir)
    dims, sd = to_openai(ct2, np.float32 if dtype == "float32" else np.float16)
    _check_against_model(dims, sd)
    state = {name: torch.from_numpy(array) for name, array in sd.items()}
    checkpoint = {"dims": dims, "model_state_dict": state}
    heads = ct2.config.get("alignment_heads")
    if heads:
        checkpoint["alignment_heads"] = torch.tensor(heads, dtype=torch.int64)  # (n, 2): (layer, head)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        torch.save(checkpoint, tmp)
    return ConversionReport(str(ct2_dir), str(out_path), dims, len(state), sum(a.size for a in sd.values()), dtype,
                            out_path.stat().st_size)


def _check_against_model(dims: dict, sd: dict[str, np.ndarray]) -> None:
    """Every name and shape must match what openai-whisper builds for these dims (no silent gaps)."""
    import torch
    from whisper.model import AudioEncoder, TextDecoder

    d = dims
    # Built like Whisper.__init__ builds them, on the meta device: shapes only, no memory. (The whole
    # Whisper cannot be built there: its alignment-heads buffer is a sparse tensor.)
    with torch.device("meta"):
        parts = {
            "encoder": AudioEncoder(d["n_mels"], d["n_audio_ctx"], d["n_audio_state"], d["n_audio_head"], d["n_audio_layer"]),
            "decoder": TextDecoder(d["n_vocab"], d["n_text_ctx"], d["n_text_state"], d["n_text_head"], d["n_text_layer"]),
        }
    reference = {f"{part}.{name}": t for part, module in parts.items() for name, t in module.state_dict().items()}
    missing = sorted(set(reference) - set(sd))
    extra = sorted(set(sd) - set(reference))
    if missing or extra:
        raise ConversionError(f"name mismatch with openai-whisper: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, tensor in reference.items():
        if tuple(tensor.shape) != sd[name].shape:
            raise ConversionError(f"{name}: shape {sd[name].shape}, openai-whisper expects {tuple(tensor.shape)}")
