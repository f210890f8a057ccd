"""Presentation: Rich tables for estimates, seed comparisons, measurements and plans; a stacked-bar
plot (matplotlib, Agg backend, imported only when asked)."""

from __future__ import annotations

from pathlib import Path

from pipeline.planner import GB, GiB



def _component_keys(estimates) -> tuple[list[str], dict[str, str]]:
    """Component keys in first-seen order across estimates, and their short labels."""
    keys: list[str] = []
    names: dict[str, str] = {}
    for e in estimates:
        for c in e.components:
            if c.key not in keys:
                keys.append(c.key)
                names[c.key] = c.label.split(" (")[0]
    return keys, names

def _g(b: float) -> str:
    return f"{b / GiB:,.2f}"


def estimate_table(est, title: str | None = None):
    from rich.table import Table

    s = est.settings
    head = title or (f"{est.model} · {est.params / 1e9:.3g}B params · {s['mode']} · {est.precision} · "
                     f"{'context' if s['mode'] == 'inference' else 'seq'} {s['seq']} × batch {s['batch']}")
    t = Table(title=head, title_justify="left")
    t.add_column("component")
    t.add_column("GiB", justify="right")
    t.add_column("GB", justify="right")
    t.add_column("how", overflow="fold", max_width=70)
    t.add_column("source", overflow="fold", max_width=40, style="dim")
    for c in est.components:
        t.add_row(c.label, _g(c.bytes), f"{c.bytes / GB:,.2f}", c.formula, c.source)
    t.add_section()
    t.add_row("[bold]total[/]", f"[bold]{_g(est.total_bytes)}[/]", f"[bold]{est.total_bytes / GB:,.2f}[/]",
              f"peak at: {est.phase}; tensors only (max_memory_allocated): {_g(est.tensor_bytes)} GiB", "")
    return t


def comparison_table(estimates: list, labels: list[str], title: str):
    """Components as rows, one column per estimate (precisions or modes), totals at the bottom."""
    from rich.table import Table

    keys, names = _component_keys(estimates)
    t = Table(title=title + " (GiB)", title_justify="left")
    t.add_column("component")
    for label in labels:
        t.add_column(label, justify="right")
    names.update({"activations": "activations / working set", "weights": "weights"})
    for k in keys:
        t.add_row(names[k], *[_g(e.get(k)) if e.get(k) else "–" for e in estimates])
    t.add_section()
    t.add_row("[bold]total GiB[/]", *[f"[bold]{_g(e.total_bytes)}[/]" for e in estimates])
    t.add_row("total GB", *[f"{e.total_bytes / GB:,.1f}" for e in estimates])
    return t


def seed_table(seed, est, differences: list[str]):
    from rich.table import Table

    t = Table(title="The seed article's rule of thumb beside the precise estimate", title_justify="left", show_header=False)
    t.add_column("", style="bold")
    t.add_column("", overflow="fold")
    t.add_row("seed rule", seed.rule)
    t.add_row("seed figure", seed.text())
    t.add_row("precise", f"{est.total_bytes / GB:,.1f} GB ({_g(est.total_bytes)} GiB)")
    for i, d in enumerate(differences):
        t.add_row("why it differs" if i == 0 else "", d)
    return t


def measure_table(est, meas):
    """Estimate vs dry-run peak by MemTracker category; runtime overhead is not tensor memory."""
    from rich.table import Table

    cats = est.by_category()
    t = Table(title=f"Dry run (FakeTensorMode + MemTracker, {meas.seconds:.1f} s): {meas.setup}", title_justify="left")
    for col in ("category", "estimate GiB", "measured GiB", "difference"):
        t.add_column(col, justify="left" if col == "category" else "right")
    measured = dict(meas.peak)
    measured["Parameter"] = measured.get("Parameter", 0) + measured.pop("Buffer", 0)
    for cat in ("Parameter", "Gradient", "Optstate", "Activation", "Temp"):
        e, m = cats.get(cat, 0), measured.get(cat, 0)
        if e or m:
            t.add_row(cat, _g(e), _g(m), _pct(e, m))
    t.add_section()
    t.add_row("[bold]tensor peak[/]", _g(est.tensor_bytes), _g(meas.peak_bytes), _pct(est.tensor_bytes, meas.peak_bytes))
    return t


def _pct(e: float, m: float) -> str:
    return f"{(e - m) / m:+.1%}" if m else "–"


def plan_table(plan):
    from rich.table import Table

    t = Table(title=f"Plan for {plan.device.name} — budget {plan.budget_bytes / GiB:.1f} GiB "
                    f"({plan.margin:.0%} margin), stages {plan.sharing}", title_justify="left")
    for col in ("stage", "model", "precision", "GiB", "on this machine", "runner-up that did not fit"):
        t.add_column(col, justify="right" if col == "GiB" else "left", overflow="fold")
    for sp in plan.stages.values():
        c = sp.choice
        runner = f"{sp.runner_up.label()} ({sp.runner_up.gib:.1f} GiB)" if sp.runner_up else "–"
        t.add_row(sp.stage, c.model if c else "[red]none fits[/]", c.precision if c else "–",
                  f"{c.gib:.2f}" if c else "–", ("yes" if c.local else "download") if c else "–", runner)
    return t


def plot(estimates: list, labels: list[str], path: str | Path, title: str, capacity_bytes: int | None = None) -> Path:
    """Stacked bars (GiB) of the components of each estimate; a dashed line at the device capacity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys, names = _component_keys(estimates)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(estimates) + 3), 5))
    bottoms = [0.0] * len(estimates)
    colors = plt.get_cmap("tab20").colors
    for i, k in enumerate(keys):
        vals = [e.get(k) / GiB for e in estimates]
        ax.bar(labels, vals, bottom=bottoms, label=names[k], color=colors[i % len(colors)])
        bottoms = [b + v for b, v in zip(bottoms, vals)]
    for x, total in enumerate(bottoms):
        ax.text(x, total, f"{total:.1f}", ha="center", va="bottom", fontsize=9)
    if capacity_bytes:
        ax.axhline(capacity_bytes / GiB, color="black", linestyle="--", linewidth=1, label="device")
    ax.set_ylabel("GiB")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def finetune_table(fp, limit: int = 8):
    """The fitting setups, best first, then the closest ones that do not fit, with why."""
    from rich.table import Table

    t = Table(title=f"Fine-tuning {fp.model} — {fp.gpus} GPU(s), budget {fp.budget_bytes / GiB:.1f} GiB per GPU "
                    f"({fp.margin:.0%} margin), seq {fp.seq:,}", title_justify="left")
    for col in ("setup", "micro-batch", "GiB/GPU", "throughput", "fits"):
        t.add_column(col, justify="left" if col in ("setup", "fits") else "right", overflow="fold")
    for s in fp.ranked[:limit]:
        t.add_row(s.label(), str(s.batch), f"{s.estimate.total_gib:.1f}", f"{s.throughput:.2f}", "yes")
    t.add_section()
    for s in fp.runners_up[: max(3, limit - len(fp.ranked[:limit]))]:
        t.add_row(s.label(), "–", f"{s.estimate.total_gib:.1f}", "–", f"[red]no[/]: {s.why_not}")
    return t


def seed_lines(fp) -> str:
    """The seed article's rule of thumb beside the plan (full and LoRA)."""
    full, lora = fp.seed["full"], fp.seed["lora"]
    return (f"seed rule of thumb: full fine-tuning {full['text']} ({full['rule']}); LoRA {lora['text']} ({lora['rule']}); "
            "the table above is per GPU, with activations, the CUDA context and the sharding counted")


def finetune_plot(fp, path: str | Path) -> Path:
    """Stacked bars of the best fitting setups and the closest that do not fit."""
    chosen = fp.ranked[:4] + fp.runners_up[:2]
    ests = [s.estimate for s in chosen]
    labels = [s.label().replace(" · ", "\n") for s in chosen]
    return plot(ests, labels, path, f"{fp.model}: fine-tuning setups (per GPU)", fp.capacity_bytes)
