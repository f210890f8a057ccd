"""Sentence embeddings with ONNX Runtime and the ``tokenizers`` library: no torch on the query path.

The configured sentence-transformers model is exported once (``torch.onnx``, the only place torch is
imported) into the user cache, keyed by the SHA-256 of its weights, config and tokenizer. The ONNX
graph holds the transformer; pooling (mean, CLS or max, per the model's ``1_Pooling/config.json``) and
the final unit-length normalisation are a few lines of numpy. The export is checked against PyTorch
when it is made (cosine ≥ 0.9999 on sentences of mixed lengths, so padding is exercised too).

Models with modules beyond Transformer → Pooling → Normalize (a Dense head, say) are not exported;
:func:`embedder_for` then falls back to the PyTorch embedder and says so.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

RECIPE = "onnx-export-v2|opset17|transformer-last-hidden-state|ort-extended"
MIN_COSINE = 0.9999  # ONNX vs PyTorch fp32, checked at export
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
_SUPPORTED_MODULES = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                      "sentence_transformers.models.Normalize")
_CHECK_SENTENCES = [
    "Hi.",
    "How much GPU memory does LoRA fine-tuning of a 7B model need?",
    "The read.table() function reads an entire data frame directly from a file; " * 12,
    "在 R 中如何讀取表格？",
]


class NotExportable(Exception):
    """This model cannot go through the ONNX path (the reason is the message)."""


@dataclass(frozen=True)
class ModelLayout:
    folder: Path
    weights: Path
    pooling: str  # "mean" | "cls" | "max"
    max_seq_length: int

    @property
    def sources(self) -> list[Path]:
        """Files whose content names the export (weights, architecture, tokenizer, pooling)."""
        extra = [self.folder / n for n in ("config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json",
                                           "1_Pooling/config.json")]
        return [self.weights] + [p for p in extra if p.is_file()]


def read_layout(folder: Path) -> ModelLayout:
    """What the ONNX path needs from a sentence-transformers folder; NotExportable when it cannot run it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotExportable(f"{folder} is not a local folder")
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
    if weights is None or not (folder / "tokenizer.json").is_file():
        raise NotExportable(f"{folder} has no model.safetensors/pytorch_model.bin or no tokenizer.json")
    pooling = "mean"  # sentence-transformers' default for a plain transformers folder
    if (folder / "modules.json").is_file():
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        odd = [m.get("type") for m in modules if m.get("type") not in _SUPPORTED_MODULES]
        if odd:
            raise NotExportable(f"modules {odd} are not on the ONNX path")
        pool_dir = next((m.get("path") for m in modules if m.get("type", "").endswith(".Pooling")), None)
        if pool_dir and (folder / pool_dir / "config.json").is_file():
            pool_cfg = json.loads((folder / pool_dir / "config.json").read_text(encoding="utf-8"))
            modes = [name for key, name in _POOLING_KEYS.items() if pool_cfg.get(key)]
            others = [k for k, v in pool_cfg.items() if k.startswith("pooling_mode") and v and k not in _POOLING_KEYS]
            if len(modes) != 1 or others:
                raise NotExportable(f"pooling {pool_cfg} is not one of mean, cls, max")
            pooling = modes[0]
    max_len = None
    sbert = folder / "sentence_bert_config.json"
    if sbert.is_file():
        max_len = json.loads(sbert.read_text(encoding="utf-8")).get("max_seq_length")
    if not max_len:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        max_len = config.get("max_position_embeddings", 512)
    return ModelLayout(folder, weights, pooling, int(max_len))


def pool(hidden: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    """(B, T, H) token vectors + (B, T) mask → (B, H) unit-length sentence vectors."""
    m = mask[..., None].astype(np.float32)
    if how == "cls":
        vec = hidden[:, 0]
    elif how == "max":
        vec = np.where(m > 0, hidden, np.float32(-1e9)).max(axis=1)
    else:
        vec = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    return (vec / np.clip(norm, 1e-12, None)).astype(np.float32)


def export(layout: ModelLayout, out: Path) -> dict:
    """Write ``out/model.onnx`` (ORT-optimised) for ``layout``; returns the marker. Imports torch."""
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(layout.folder), device="cpu", local_files_only=True)
    st.eval()
    transformer = st[0].auto_model.eval()
    probe = st.tokenizer(["a b", "a longer probe sentence"], padding=True, return_tensors="pt")
    names = [n for n in _INPUTS if n in probe]

    class LastHidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(**dict(zip(names, tensors))).last_hidden_state

    raw = out / "raw.onnx"
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"last_hidden_state": {0: "batch", 1: "tokens"}}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape-dependent branches fixed by the mask
        torch.onnx.export(LastHidden(transformer), tuple(probe[n] for n in names), str(raw), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # portable across CPUs
    options.optimized_model_filepath = str(out / "model.onnx")
    # Weights in a side file: ORT maps it instead of parsing 90 MB of protobuf (0.15 s vs 0.4 s to load).
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "model.data")
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
    raw.unlink()
    reference = st.encode(_CHECK_SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    got = OnnxSession(out / "model.onnx", layout).encode(_CHECK_SENTENCES)
    cosine = float((got * reference).sum(axis=1).min())
    if cosine < MIN_COSINE:
        raise NotExportable(f"ONNX export disagrees with PyTorch (min cosine {cosine:.6f} < {MIN_COSINE})")
    return {"source": str(layout.folder), "weights_sha256": None, "inputs": names, "pooling": layout.pooling,
            "max_seq_length": layout.max_seq_length, "dim": int(reference.shape[1]), "recipe": RECIPE,
            "torch": torch.__version__, "onnxruntime": ort.__version__, "min_cosine_vs_torch": round(cosine, 7)}


class OnnxSession:
    """An ONNX Runtime session plus the model's own tokenizer (``tokenizers``), padded per batch."""

    def __init__(self, model_file: Path, layout: ModelLayout, inputs: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per physical core
        # Idle threads sleep instead of spinning: a query's few small batches gain nothing from spinning,
        # and on a busy machine spinning threads steal the cores (evidence for a cold `ask` under load:
        # 0.47-0.75 s wall vs 1.19 s, 0.22 vs 0.41 CPU s; 2-core Xeon).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # the file is optimised
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.inputs = inputs or [i.name for i in self.session.get_inputs()]
        self.layout = layout
        # tokenizer.json may carry its own truncation/padding (MiniLM's: 128, fixed); ours are the
        # model's reading window and padding to the longest text of the batch, as sentence-transformers.
        self.tokenizer = Tokenizer.from_file(str(layout.folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(layout.max_seq_length)
        pad = self.tokenizer.padding or {}
        self.tokenizer.enable_padding(pad_id=pad.get("pad_id", 0), pad_type_id=pad.get("pad_type_id", 0),
                                      pad_token=pad.get("pad_token", "[PAD]"))

    def encode(self, texts: list[str]) -> np.ndarray:
        """One batch → (len(texts), dim) unit-length float32 vectors."""
        encodings = self.tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        hidden = self.session.run(None, {n: feeds[n] for n in self.inputs})[0]
        return pool(hidden, feeds["attention_mask"], self.layout.pooling)


def onnx_export(layout: ModelLayout, name: str, notify=None) -> tuple[Path, dict]:
    """The cached export of ``layout`` (made now, once per machine, when missing)."""
    from syllabus_common.modelcache import build_once, content_key, models_dir

    key = content_key(layout.sources, RECIPE)
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in name)[:60]
    target = models_dir() / f"onnx-{safe}-{key}"

    def build(tmp: Path) -> dict:
        marker = export(layout, tmp)
        from syllabus_common.modelcache import file_sha256

        marker["weights_sha256"] = file_sha256(layout.weights)
        return marker

    def ready(folder: Path):
        from syllabus_common.modelcache import read_marker

        marker = read_marker(folder)
        return marker if marker is not None and (folder / "model.onnx").is_file() else None

    message = f"exporting embedding model {name} to ONNX once (about half a minute) → {target}"
    return build_once(target, build, ready, notify or log.warning, message)


class OnnxEmbedder:
    """The :class:`pipeline.embed.Embedder` contract on ONNX Runtime. If the export cannot be made or
    fails its check against PyTorch, it says so once and runs the PyTorch embedder instead."""

    runtime = "onnx"

    def __init__(self, name: str, layout: ModelLayout, fallback, batch_size: int = 16):
        self.name = name
        self.layout = layout
        self.batch_size = batch_size
        self._fallback = fallback  # () -> pipeline.embed.Embedder

    @cached_property
    def _backend(self):
        try:
            folder, marker = onnx_export(self.layout, self.name)
            self.folder, self.marker = folder, marker
            return OnnxSession(folder / "model.onnx", self.layout, marker.get("inputs"))
        except (NotExportable, ImportError, RuntimeError, ValueError, OSError) as exc:
            log.warning("embedding model %s cannot run on ONNX Runtime (%s); using PyTorch", self.name, exc)
            self.runtime = "torch"
            return self._fallback()

    @property
    def model(self):
        """The loaded backend (loads it): an ONNX session, or the PyTorch model after a fallback."""
        backend = self._backend
        return backend if isinstance(backend, OnnxSession) else backend.model

    @property
    def dim(self) -> int:
        backend = self._backend
        return int(self.marker["dim"]) if isinstance(backend, OnnxSession) else backend.dim

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads, special tokens included (sentence-transformers' max_seq_length)."""
        return self.layout.max_seq_length

    @cached_property
    def _counter(self):
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.layout.folder / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        return tok

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without the special tokens the model adds ([CLS], [SEP])."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    @property
    def special_tokens(self) -> int:
        return len(self._counter.encode("", add_special_tokens=True).ids)

    def encode(self, texts: list[str], progress=None, batch_size: int | None = None) -> np.ndarray:
        """Unit-length float32 vectors, shape (len(texts), dim); ``progress(n)`` after each batch of
        ``batch_size`` (default: the configured one)."""
        from pipeline.embed import encode_sorted

        backend = self._backend
        if not isinstance(backend, OnnxSession):
            return backend.encode(texts, progress, batch_size)
        return encode_sorted(texts, batch_size or self.batch_size, self.dim, backend.encode, progress)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def embedder_for(cfg):
    """The embedder the config asks for: ONNX Runtime (``embedding.runtime: onnx``, the default) on the
    CPU for models it can run, else the PyTorch one (``runtime: torch``, a CUDA device, other models)."""
    from pipeline.embed import Embedder, embedding_model_name
    from syllabus_common.models import enforce_offline, resolve_model_path

    e = cfg.embedding
    if e.runtime == "torch" or str(cfg.device).startswith("cuda"):
        return Embedder.from_config(cfg)
    name = embedding_model_name(cfg)
    enforce_offline(cfg.offline)
    location = resolve_model_path(name, "embedding", cfg.offline)
    try:
        layout = read_layout(_local_folder(location, cfg.offline))
    except (NotExportable, OSError, ValueError) as exc:
        log.info("embedding model %s stays on PyTorch: %s", name, exc)
        return Embedder.from_config(cfg)
    return OnnxEmbedder(name, layout, lambda: Embedder.from_config(cfg), e.batch_size)


def _local_folder(location: str, offline: bool) -> Path:
    """A folder for a bundled name or local path as is; a hub id from the local Hugging Face cache."""
    path = Path(location)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(location, local_files_only=True))
    except Exception as exc:  # not downloaded yet: the PyTorch loader fetches it when online
        raise NotExportable(f"{location} is not in the local Hugging Face cache ({type(exc).__name__})") from None
