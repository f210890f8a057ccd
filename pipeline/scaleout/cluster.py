"""What a Ray cluster can run: the resources one worker of each kind asks for (the resource
planner's memory estimate of the models it loads), how many such workers the cluster holds, and the
hours a job takes at the per-worker throughput `make bench` measured (``syllabus plan --cluster``).

Worker kinds:

=========  ==========================================  =========================================
kind       files                                        models loaded once per worker
=========  ==========================================  =========================================
speech     recordings: decode, transcribe, chunk, embed  Whisper (asr.model) + the embedder
documents  PDFs, e-books, notes: extract, OCR, embed    the embedder (+ OCR when a page needs it)
=========  ==========================================  =========================================
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.planner import GiB

KINDS = ("speech", "documents")
UNKNOWN_GPU_GIB = 16  # a GPU whose type Ray does not report, unless --vram says (T4-class; stated in the plan)
HOST_OVERHEAD = 1 * GiB  # host RAM of a worker process beside its model (Python, PyAV, ONNX Runtime)
BENCH_FILE = Path(__file__).resolve().parents[2] / "eval" / "results" / "bench_ray.json"


@dataclass
class ClusterInfo:
    """``ray.cluster_resources()`` in words."""

    cpus: float
    gpus: float
    memory: int  # bytes of Ray's schedulable host memory, all nodes together
    gpu_name: str | None  # "H100" from an ``accelerator_type:H100`` resource
    gpu_bytes: int | None  # memory of one GPU
    nodes: int = 1
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_resources(cls, resources: dict, nodes: int = 1, vram: str | None = None) -> "ClusterInfo":
        from pipeline.planner.catalog import get_card
        from pipeline.planner.readers import parse_size
        from syllabus_common.errors import ConfigError

        gpus = float(resources.get("GPU", 0))
        names = [k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")]
        name = names[0] if names else None
        notes, gpu_bytes = [], None
        if gpus:
            if vram:
                gpu_bytes = parse_size(vram)
            elif name:
                try:
                    card = get_card(name)
                    gpu_bytes = card.reported_mib * 2**20 if card.reported_mib else int(card.memory_gib * GiB)
                except ConfigError:
                    pass
            if gpu_bytes is None:
                gpu_bytes = UNKNOWN_GPU_GIB * GiB
                notes.append(f"GPU type {name or 'not reported'}: assumed {UNKNOWN_GPU_GIB} GiB each (give --vram)")
        return cls(float(resources.get("CPU", 0)), gpus, int(resources.get("memory", 0)), name, gpu_bytes, nodes, notes)

    def device(self):
        """The device one worker sees, for the planner's estimates."""
        from pipeline.planner.hardware import Device

        if self.gpus:
            return Device("cuda", self.gpu_name or "GPU", self.gpu_bytes, self.gpu_bytes, "ray", what_if=True)
        per_node = self.memory // max(self.nodes, 1)
        return Device("cpu", "CPU", per_node, per_node, "ray", bf16=False, what_if=True)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class WorkerShape:
    """One worker of a kind: what it loads and the Ray resources it asks for."""

    kind: str
    models: list[str]  # "whisper-base int8", ...
    model_bytes: int  # the planner's estimate of the models together (on the GPU, or host RAM on a CPU)
    num_cpus: float
    num_gpus: float  # a fraction: Ray packs 1 // num_gpus workers on one GPU
    memory: int  # bytes of host RAM reserved (Ray's ``memory`` resource)

    def ray_options(self) -> dict:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "memory": self.memory}

    def as_dict(self) -> dict:
        return dict(asdict(self), model_gib=round(self.model_bytes / GiB, 3), memory_gib=round(self.memory / GiB, 3))


def _catalog_speech(cfg) -> str | None:
    from pipeline.speech import speech_config

    model = speech_config(cfg).asr.model
    return None if "/" in model or model.endswith(".pt") else f"whisper-{model}"


def worker_shapes(cfg, info: ClusterInfo, margin: float = 0.10) -> dict[str, WorkerShape]:
    """Per kind, the resources the planner's estimates give one worker on this cluster."""
    from pipeline.embed import embedding_model_name
    from pipeline.planner.plan import stage_option

    device = info.device()
    embed = stage_option("embedding", embedding_model_name(cfg), device)
    speech = stage_option("speech", _catalog_speech(cfg), device)
    shapes = {}
    for kind, options in (("speech", [speech, embed]), ("documents", [embed])):
        need = sum(o.estimate.total_bytes for o in options)
        gpus = 0.0
        if info.gpus:
            gpus = min(1.0, math.ceil(need / (info.gpu_bytes * (1 - margin)) * 100) / 100)
        host = HOST_OVERHEAD + (0 if info.gpus else need)
        shapes[kind] = WorkerShape(kind, [o.label() for o in options], need, 1.0, gpus, host)
    return shapes


def capacity(shape: WorkerShape, info: ClusterInfo) -> int:
    """How many workers of ``shape`` the whole cluster holds at once."""
    limits = [info.cpus // shape.num_cpus if shape.num_cpus else math.inf]
    if shape.num_gpus:
        per_gpu = math.floor(1 / shape.num_gpus + 1e-9)
        limits.append(per_gpu * math.floor(info.gpus))
    if shape.memory and info.memory:
        limits.append(info.memory // shape.memory)
    return int(max(0, min(limits)))


def split_workers(shapes: dict[str, WorkerShape], info: ClusterInfo, files: dict[str, int]) -> dict[str, int]:
    """Workers per kind for a batch with ``files[kind]`` files: every kind with files gets at least one,
    the rest of the cluster is shared in proportion to the files, and all of them fit at once (a worker
    waiting for resources that busy workers hold would never start)."""
    kinds = [k for k in KINDS if files.get(k)]
    if not kinds:
        return {}
    counts = {k: 1 for k in kinds}
    while True:
        # the kind with the most files per worker gets the next worker, if the cluster still holds it
        grow = sorted(kinds, key=lambda k: -files[k] / counts[k])
        for k in grow:
            if counts[k] >= files[k]:
                continue
            trial = dict(counts, **{k: counts[k] + 1})
            if _fits(trial, shapes, info):
                counts = trial
                break
        else:
            return counts


def _fits(counts: dict[str, int], shapes: dict[str, WorkerShape], info: ClusterInfo) -> bool:
    cpus = sum(shapes[k].num_cpus * n for k, n in counts.items())
    mem = sum(shapes[k].memory * n for k, n in counts.items())
    gpus = sum(shapes[k].num_gpus * n for k, n in counts.items())
    return cpus <= info.cpus and (not info.memory or mem <= info.memory) and gpus <= info.gpus + 1e-9


@dataclass
class ClusterPlan:
    """``syllabus plan --cluster``: workers per kind, and the hours for the audio and pages given."""

    cluster: ClusterInfo
    shapes: dict[str, WorkerShape]
    workers: dict[str, int]  # at full occupancy of the cluster, each kind alone
    throughput: dict[str, dict]  # per worker: {"rate", "unit", "source"}
    audio_hours: float
    pages: int
    hours: dict[str, float | None]  # speech, documents, and total (both kinds share the cluster)
    lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"cluster": self.cluster.as_dict(), "shapes": {k: v.as_dict() for k, v in self.shapes.items()},
                "workers": self.workers, "throughput": self.throughput, "audio_hours": self.audio_hours,
                "pages": self.pages, "hours": self.hours, "explanation": self.lines}


def measured_throughput(gpu: bool, path: Path = BENCH_FILE) -> dict[str, dict]:
    """Per-worker rates from `make bench` (eval/results/bench_ray.json): speech in seconds of audio per
    second, documents in pages per second. On GPU workers the speech rate is the stated GPU figure of
    the same file (CPU-measured here otherwise)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    per = data.get("per_worker", {})
    out = {}
    for kind, unit in (("speech", "s audio/s"), ("documents", "pages/s")):
        row = per.get(f"{kind}_gpu" if gpu and kind == "speech" else kind) or per.get(kind)
        if row:
            out[kind] = {"rate": row["rate"], "unit": unit, "source": row.get("source", str(path.name))}
    return out


def plan_cluster(cfg, resources: dict, nodes: int = 1, audio_hours: float = 0.0, pages: int = 0,
                 vram: str | None = None, bench: Path = BENCH_FILE) -> ClusterPlan:
    """Workers per kind on a cluster with ``resources`` (``ray.cluster_resources()``) and the hours that
    ``audio_hours`` of recordings and ``pages`` of documents take there."""
    info = ClusterInfo.from_resources(resources, nodes, vram)
    shapes = worker_shapes(cfg, info)
    workers = {k: capacity(s, info) for k, s in shapes.items()}
    rates = measured_throughput(bool(info.gpus), bench)
    load = {"speech": audio_hours * 3600, "documents": float(pages)}
    if audio_hours and pages:
        # both kinds at once: split the cluster in proportion to the work each would take alone
        alone = {k: load[k] / (rates[k]["rate"] * max(workers[k], 1)) if k in rates else 0 for k in KINDS}
        total = sum(alone.values()) or 1
        counts = {k: max(1, int(workers[k] * alone[k] / total)) for k in KINDS}
    else:
        counts = workers
    hours: dict[str, float | None] = {}
    for k in KINDS:
        if not load[k]:
            hours[k] = 0.0
        elif k not in rates or not counts[k]:
            hours[k] = None
        else:
            hours[k] = round(load[k] / (rates[k]["rate"] * counts[k]) / 3600, 3)
    known = [h for h in hours.values() if h is not None]
    hours["total"] = round(max(known), 3) if known and None not in hours.values() else None
    lines = _explain(info, shapes, workers, counts, rates, audio_hours, pages, hours)
    return ClusterPlan(info, shapes, workers, rates, audio_hours, pages, hours, lines)


def cluster_plan(cfg, address: str | None, audio_hours: float = 0.0, pages: int = 0,
                 vram: str | None = None) -> ClusterPlan:
    """:func:`plan_cluster` for the Ray cluster at ``address`` (``local``/None: a local instance), from
    its ``ray.cluster_resources()``."""
    from pipeline.scaleout import connect

    ray = connect(address)
    nodes = len([n for n in ray.nodes() if n.get("Alive")])
    return plan_cluster(cfg, ray.cluster_resources(), nodes, audio_hours, pages, vram)


def _explain(info, shapes, workers, counts, rates, audio_hours, pages, hours) -> list[str]:
    gpu = (f"{info.gpus:g} GPU ({info.gpu_name or 'type not reported'}, {info.gpu_bytes / GiB:.0f} GiB each)"
           if info.gpus else "no GPU")
    lines = [f"cluster: {info.nodes} node(s), {info.cpus:g} CPUs, {gpu}, {info.memory / GiB:.0f} GiB host memory",
             *info.notes]
    for k, s in shapes.items():
        where = (f"{s.num_gpus:g} GPU, " if s.num_gpus else "") + f"{s.memory / GiB:.1f} GiB RAM"
        lines.append(f"{k} worker: {' + '.join(s.models)} ({s.model_bytes / GiB:.2f} GiB) → asks {s.num_cpus:g} CPU, "
                     f"{where}; the cluster holds {workers[k]}")
    for k in KINDS:
        if k in rates:
            lines.append(f"{k}: {rates[k]['rate']:.3g} {rates[k]['unit']} per worker ({rates[k]['source']})")
        elif (audio_hours if k == "speech" else pages):
            lines.append(f"{k}: no measured throughput; run `make bench` (writes {BENCH_FILE.name})")
    if audio_hours:
        lines.append(f"{audio_hours:g} h of audio on {counts['speech']} speech workers: "
                     + (f"{hours['speech']:.2f} h" if hours["speech"] is not None else "unknown"))
    if pages:
        lines.append(f"{pages} pages on {counts['documents']} document workers: "
                     + (f"{hours['documents']:.2f} h" if hours["documents"] is not None else "unknown"))
    if audio_hours and pages and hours["total"] is not None:
        lines.append(f"together (the cluster split between them): {hours['total']:.2f} h; the single KB writer "
                     "commits as results arrive (seconds per file)")
    return lines
