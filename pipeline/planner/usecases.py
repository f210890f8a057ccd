"""The planner's use cases as library calls: a memory estimate for one model (what `syllabus vram`
prints), the plan for a machine (what `syllabus plan` prints) and a fine-tuning plan for a model on
some GPUs (`syllabus plan --finetune`). Each returns a dataclass that the CLI renders and tests check.

    from pipeline.api import estimate, finetune, plan
    report = estimate(model="llama-3.1-8b", mode="qlora", seq=2048, gpu="RTX 4090")
    print(report.estimates[0].total_gib, report.fits)
    print(finetune("llama-3.1-70b", gpus="4x80GB").choice.label())
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syllabus_common.errors import ConfigError


@dataclass
class VramReport:
    model: str
    params: int
    mode: str
    labels: list[str]  # one per estimate: the precision, or the mode with mode="all"
    estimates: list  # [Estimate]
    device: object | None = None  # hardware.Device the fit was checked on
    margin: float = 0.10
    fits: dict[str, bool] | None = None  # label → fits on the device with the margin
    seed: object | None = None  # seed.SeedFigure (rule="seed"), its differences attached
    measurement: object | None = None  # measure.Measurement (measure=True)
    measured_estimate: object | None = None  # Estimate of what the dry run runs (measure.measured_settings)
    plot: str | None = None  # the PNG written
    notes: list[str] = field(default_factory=list)  # side remarks (e.g. which estimate the seed rule used)

    @property
    def budget_bytes(self) -> float | None:
        return self.device.available_bytes * (1 - self.margin) if self.device is not None else None

    def as_dict(self) -> dict:
        data: dict = {"model": self.model, "params": self.params, "estimates": [e.as_dict() for e in self.estimates]}
        if self.device is not None:
            data["device"], data["fits"] = self.device.as_dict(), self.fits
        if self.seed is not None:
            data["seed"] = self.seed.as_dict()
        if self.measurement is not None:
            est = self.measured_estimate
            data["measure"] = dict(self.measurement.as_dict(), estimate_tensor_bytes=est.tensor_bytes,
                                   error=(est.tensor_bytes - self.measurement.peak_bytes) / self.measurement.peak_bytes)
        if self.plot is not None:
            data["plot"] = self.plot
        return data


def estimate(model: str | None = None, config: str | None = None, params: str | None = None, mode: str = "inference",
             precision: str | None = None, *, gpu: str | None = None, vram: str | None = None, margin: float = 0.10,
             rule: str | None = None, measure: bool = False, plot: str | None = None, on_measure=None,
             **settings) -> VramReport:
    """GPU memory to run or train a model (catalog name, config file/folder/GGUF, or a parameter
    count), component by component; optionally checked against a card (``gpu``) or a size (``vram``),
    beside the seed article's rule (``rule="seed"``), measured by a FakeTensorMode dry run
    (``measure``; ``on_measure()`` is called before it starts), and plotted to a PNG (``plot``).

    ``settings`` are the fields of :class:`pipeline.planner.estimator.Settings` (their defaults
    apply): batch, seq, kv_cache_dtype, optimizer, grad_ckpt, attention, lora_rank, lora_targets
    (a tuple or "q_proj,v_proj"), master_weights, double_quant, group_size, beam, overhead, and the
    training and runtime terms gpus, shard, offload, grad_accum, loss, runtime, window_tokens,
    cuda_context_mib, target_seq, fused_optimizer, keep_outputs, kbit_prep, framework, lora_dropout."""
    from pipeline.planner.estimator import Settings, estimate as estimate_one
    from pipeline.planner.policy import labelled_settings
    from pipeline.planner.readers import resolve_model

    if rule not in (None, "seed"):
        raise ConfigError(f"--rule takes 'seed', not {rule!r}")
    if mode not in ("inference", "full", "lora", "qlora", "all"):
        raise ConfigError(f"--mode must be inference, full, lora, qlora or all, not {mode!r}")
    arch = resolve_model(model, config, params)
    if isinstance(settings.get("lora_targets"), str):
        settings["lora_targets"] = tuple(t.strip() for t in settings["lora_targets"].split(",") if t.strip())
    chosen = labelled_settings(arch, mode, precision)
    report = VramReport(arch.name, arch.params(), mode, [label for label, _, _ in chosen],
                        [estimate_one(arch, Settings(mode=m, precision=p, **settings)) for _, m, p in chosen],
                        margin=margin)
    if gpu or vram:
        from pipeline.planner.hardware import detect

        report.device = detect(gpu, vram)[0]
        report.fits = {label: e.total_bytes <= report.budget_bytes for label, e in zip(report.labels, report.estimates)}
    if rule == "seed":
        _add_seed(report, arch, given_params=params is not None)
    if measure:
        _add_measurement(report, arch, on_measure)
    if plot:
        from pipeline.planner import report as tables

        e0 = report.estimates[0].settings
        title = f"{arch.name}: {mode}, {e0['seq']} tokens × batch {e0['batch']}"
        capacity = report.device.available_bytes if report.device is not None else None
        report.plot = str(tables.plot(report.estimates, report.labels, plot, title, capacity))
    return report


def _add_measurement(report: VramReport, arch, on_measure) -> None:
    """The dry run of the one setting estimated, beside the estimate of exactly what it runs
    (``measure.measured_settings``: fused AdamW, only the loss kept, no k-bit preparation)."""
    from pipeline.planner.estimator import Settings, estimate as estimate_one
    from pipeline.planner.measure import dry_run, measured_settings

    if len(report.estimates) != 1:
        raise ConfigError("--measure runs one setting: give one --precision and one --mode")
    if on_measure is not None:
        on_measure()
    st = measured_settings(Settings(**report.estimates[0].settings))
    report.measurement = dry_run(arch, st)
    report.measured_estimate = estimate_one(arch, st)


def _add_seed(report: VramReport, arch, given_params: bool) -> None:
    from pipeline.planner.estimator import Settings
    from pipeline.planner.seed import explain, seed_rule

    if not given_params and len(report.estimates) != 1:
        report.notes.append("--rule seed compares one estimate; using the first")
    e0 = report.estimates[0]
    seed = seed_rule(arch.params(), e0.settings["mode"], report.labels[0] if report.mode != "all" else e0.precision)
    seed.differences = explain(seed, e0, Settings(**e0.settings))
    report.seed = seed


@dataclass
class MachinePlan:
    plan: object  # plan.Plan for the device with the most free memory
    devices: list  # [hardware.Device], that one first

    def as_dict(self) -> dict:
        return dict(self.plan.as_dict(), devices=[d.as_dict() for d in self.devices])


def plan(gpu: str | None = None, vram: str | None = None, context: int = 4096, margin: float = 0.10,
         allow_download: bool = False) -> MachinePlan:
    """The speech model, embedder and LLM (with precision) that fit this machine (or a catalog card,
    or a memory size), with the reasons."""
    from pipeline.planner.hardware import detect
    from pipeline.planner.plan import make_plan

    devices = detect(gpu, vram)
    p = make_plan(devices[0], context=context, margin=margin, allow_download=allow_download)
    if len(devices) > 1:
        p.lines.insert(1, f"{len(devices)} GPUs found; planned for the one with the most free memory "
                          f"(others: {', '.join(d.name for d in devices[1:])})")
    return MachinePlan(p, devices)


def finetune(model: str, gpus: str | int | None = None, gpu: str | None = None, vram: str | None = None,
             seq: int | None = None, margin: float = 0.10, plot: str | None = None):
    """How to fine-tune ``model`` (catalog name, config file or folder) on the GPUs at hand: ``gpus``
    as "4x80GB", or a count of the card found here / named by ``gpu`` / sized by ``vram``. Every
    method, precision, micro-batch, checkpointing and sharding that fits, ranked by the throughput it
    leaves, with the runners-up that do not fit and why → finetune.FinetunePlan (``plot``: a PNG of
    the best setups)."""
    from pipeline.planner.finetune import plan_for
    from pipeline.planner.readers import resolve_model

    fp = plan_for(resolve_model(model), str(gpus) if gpus is not None else None, gpu, vram, seq=seq, margin=margin)
    if plot:
        from pipeline.planner import report as tables

        fp.plot = str(tables.finetune_plot(fp, plot))
    return fp
