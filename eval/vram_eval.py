"""Compare the VRAM estimator with published measured figures (eval/vram_published.yaml).

For each row: the estimate read the way the figure was measured (metric), the absolute percentage
error, and whether "fits" agrees (estimate + margin vs measured + margin on the device it ran on).
Writes eval/results/vram_eval.md and prints a summary.

    python eval/vram_eval.py [--table eval/vram_published.yaml] [--margin 0.10] [--before LABEL=TREE ...]

``--before main=/path/to/checkout`` also runs every row through the estimator of another source tree
(a checkout or ``git archive`` of an earlier commit; settings it does not know are dropped, rows it
cannot read are shown as –), in the same run, and reports its errors beside the current ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

UNITS = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def load_rows(path: Path) -> list[dict]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(data.get("rows") or []) + list(data.get("measured_here") or [])


def _arch_and_settings(row: dict, lenient: bool = False, **extra):
    from dataclasses import fields

    from pipeline.planner.catalog import get_model
    from pipeline.planner.estimator import Settings
    from pipeline.planner.readers import arch_from_config

    arch = arch_from_config(row["config"], row["model"]) if row.get("config") else get_model(row["model"])
    settings = dict(row.get("settings") or {})
    if lenient:  # an earlier estimator: drop the settings it does not have
        known = {f.name for f in fields(Settings)}
        settings = {k: v for k, v in settings.items() if k in known}
    if "lora_targets" in settings:
        settings["lora_targets"] = tuple(settings["lora_targets"])
    settings.update(extra)
    return arch, Settings(mode=row["mode"], precision=row["precision"], **settings)


def max_seq(row: dict, margin: float) -> int:
    """The longest sequence (16-token steps) the estimator says fits the row's card with ``margin``."""
    from pipeline.planner.estimator import estimate

    budget = row["capacity_gib"] * 2**30 * (1 - margin)
    lo, hi = 0, 2**20
    while hi - lo > 16:
        mid = (lo + hi) // 32 * 16
        arch, st = _arch_and_settings(row, seq=mid, overhead=True)
        lo, hi = (mid, hi) if estimate(arch, st).total_bytes <= budget else (lo, mid)
    return lo


def boundary(rows: list[dict], margin: float) -> list[dict]:
    """Boundary rows (metric max_seq): published longest context vs the estimator's, with and without
    the margin; unsafe when the estimator (with the margin) allows a longer one."""
    from pipeline.planner.estimator import estimate

    out = []
    for row in rows:
        est_m, est_0 = max_seq(row, margin), max_seq(row, 0.0)
        at_max = None
        if row["value"]:  # the estimate at the published longest context, as a share of the card
            arch, st = _arch_and_settings(row, seq=row["value"], overhead=True)
            at_max = estimate(arch, st).total_bytes / (row["capacity_gib"] * 2**30)
        out.append(dict(row, est_max=est_m, est_max_nomargin=est_0, unsafe=est_m > row["value"],
                        ratio=(est_m / row["value"]) if row["value"] else None, at_max=at_max))
    return out


def estimate_row(row: dict, lenient: bool = False):
    """The Estimate for one row and the bytes to compare with its metric."""
    from pipeline.planner.estimator import estimate

    metric = row["metric"]
    arch, st = _arch_and_settings(row, lenient, overhead=metric == "gpu_process")
    est = estimate(arch, st)
    if metric == "gpu_process":
        value = est.total_bytes
    elif metric == "reserved":  # tensors + allocator slack, no CUDA context
        value = est.tensor_bytes + int(est.get("allocator") or _slack(est))
    elif metric == "allocated":
        value = est.tensor_bytes
    elif metric == "weights":
        value = est.get("weights")
    elif metric == "cpu_rss":
        value = est.tensor_bytes
    else:
        raise ValueError(f"unknown metric {metric!r} in row {row.get('id')}")
    return est, value


_ELSEWHERE = """
import json, sys
tree, here = sys.argv[1], sys.argv[2]
sys.path[:0] = [here]
import vram_eval
sys.path[:] = [tree] + [p for p in sys.path if p not in (tree, vram_eval.HERE.parent.as_posix())]
out = {}
for row in json.load(sys.stdin):
    try:
        out[row["id"]] = vram_eval.estimate_row(row, lenient=True)[1]
    except Exception:
        out[row["id"]] = None
print(json.dumps(out))
"""


def estimates_elsewhere(tree: Path, rows: list[dict]) -> dict[str, float | None]:
    """{row id: the bytes another source tree's estimator gives} (None where it cannot read the row)."""
    proc = subprocess.run([sys.executable, "-c", _ELSEWHERE, str(tree.resolve()), str(HERE)], cwd=tree,
                          input=json.dumps(rows, default=str), capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise SystemExit(f"--before {tree}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def add_before(results: list[dict], label: str, values: dict) -> None:
    """Each result gains before[label]: that estimator's error on the row (None where it had none)."""
    for r in results:
        v = values.get(r["id"])
        r.setdefault("before", {})[label] = None if v is None else (v - r["measured_bytes"]) / r["measured_bytes"]


def _slack(est) -> int:
    from pipeline.planner.estimator import ALLOCATOR_SLACK

    return int(sum(c.bytes for c in est.components if c.category in ("Activation", "Temp")) * ALLOCATOR_SLACK)


def evaluate(rows: list[dict], margin: float) -> list[dict]:
    out = []
    for row in rows:
        measured = float(row["value"]) * UNITS[row["unit"]]
        try:
            est, value = estimate_row(row)
        except Exception as exc:  # a row the estimator cannot describe is reported, not hidden
            out.append(dict(row, measured_bytes=measured, error=None, problem=str(exc)))
            continue
        err = (value - measured) / measured
        cap = row.get("capacity_gib")
        fit = None
        if cap:
            budget = cap * 2**30 * (1 - margin)
            fit = {"estimate_fits": est.total_bytes <= budget, "measured_fits": measured <= budget}
            fit["agree"] = fit["estimate_fits"] == fit["measured_fits"]
            fit["unsafe"] = fit["estimate_fits"] and not fit["measured_fits"]
        out.append(dict(row, measured_bytes=measured, estimate_bytes=value, error=err, fit=fit))
    return out


def summarize(results: list[dict]) -> dict:
    every = [r for r in results if r.get("error") is not None]
    ok = [r for r in every if r.get("reading") != "second"]  # a figure counts once in the medians
    def stats(rs):
        errs = [abs(r["error"]) for r in rs]
        return {"n": len(errs), "median": statistics.median(errs) if errs else None, "worst": max(errs) if errs else None}
    fits = [r["fit"] for r in ok if r.get("fit")]
    return {
        "all": stats(ok),
        "inference": stats([r for r in ok if r["mode"] == "inference"]),
        "training": stats([r for r in ok if r["mode"] != "inference"]),
        "full": stats([r for r in ok if r["mode"] == "full"]),
        "lora": stats([r for r in ok if r["mode"] == "lora"]),
        "qlora": stats([r for r in ok if r["mode"] == "qlora"]),
        "lora+full": stats([r for r in ok if r["mode"] in ("lora", "full")]),
        "whisper batch-8, any language": stats([r for r in ok if "batch8" in r["id"]]),
        "whisper batch-8, English bound": stats([r for r in every if "batch8-en" in r["id"]]),
        "gpu_process": stats([r for r in ok if r["metric"] == "gpu_process"]),
        "weights": stats([r for r in ok if r["metric"] == "weights"]),
        "fit_rows": len(fits),
        "fit_agree": sum(f["agree"] for f in fits),
        "fit_unsafe": sum(f["unsafe"] for f in fits),
        "skipped": [r["id"] for r in results if r.get("error") is None],
    }


def _pct(x):
    return "–" if x is None else f"{x:.1%}"


def boundary_lines(bounds: list[dict], margin: float) -> list[str]:
    unsafe = sum(b["unsafe"] for b in bounds)
    lines = ["", "## Boundary rows: the longest context that fit", "",
             f"Published longest sequence before running out of memory, against the longest the estimator says fits "
             f"on the same card with the {margin:.0%} margin (what `vram`/`plan` call \"fits\") and with none. "
             f"Unsafe (the estimator allows longer than what ran): {unsafe} of {len(bounds)}.", "",
             "The last column is the estimate at the published longest context as a share of the card: a run that "
             "fit there and ran out of memory a little further used about the whole card, so 100% is exact, less "
             "is an under-estimate.", "",
             "| id | card | published max | estimator, margin | ratio | estimator, no margin | estimate at published max / card | source |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for b in bounds:
        ratio = "–" if b["ratio"] is None else f"{b['ratio']:.2f}"
        pub = "OOM" if not b["value"] else f"{b['value']:,}"
        share = "–" if b["at_max"] is None else f"{b['at_max']:.0%}"
        lines.append(f"| {b['id']} | {b['capacity_gib']} GiB | {pub} | {b['est_max']:,} | {ratio} | "
                     f"{b['est_max_nomargin']:,} | {share} | {b['source'].split(',')[0]} |")
    return lines


GROUPS = ("all", "inference", "training", "full", "lora", "qlora", "lora+full", "whisper batch-8, any language",
          "whisper batch-8, English bound", "gpu_process", "weights")


def write_markdown(results: list[dict], summary: dict, path: Path, margin: float, bounds: list[dict] = (),
                   befores: dict | None = None, header: str = "") -> None:
    """``befores``: {label: summary of another estimator on the same rows} (--before), shown beside."""
    befores = befores or {}
    labels = list(befores)
    lines = ["# VRAM estimator vs published measurements", "",
             "Generated by `eval/vram_eval.py` from `eval/vram_published.yaml`. Error = (estimate − measured) / measured, "
             f"with the estimate read the way each figure was measured (metric). Fit check: {margin:.0%} margin on the "
             "device the figure was measured on." + (f" {header}" if header else ""), "",
             "| group | rows | median abs. error | worst abs. error |" + "".join(f" median, {b} |" for b in labels),
             "|---|---:|---:|---:|" + "---:|" * len(labels)]
    for key in GROUPS:
        s = summary[key]
        lines.append(f"| {key} | {s['n']} | {_pct(s['median'])} | {_pct(s['worst'])} |"
                     + "".join(f" {_pct(befores[b][key]['median'])} ({befores[b][key]['n']}) |" for b in labels))
    lines += ["", f"Fit/no-fit agreement: {summary['fit_agree']}/{summary['fit_rows']} rows; "
              f"cases where we say it fits and the measured figure plus margin does not: {summary['fit_unsafe']}.", "",
              "| id | model | mode | precision | metric | measured | estimate | error |" + "".join(f" {b} |" for b in labels)
              + " fit (est/meas) | source |",
              "|---|---|---|---|---|---:|---:|---:|" + "---:|" * len(labels) + "---|---|"]
    for r in results:
        fit = r.get("fit")
        fit_s = "–" if not fit else f"{'yes' if fit['estimate_fits'] else 'no'}/{'yes' if fit['measured_fits'] else 'no'}"
        est = "–" if r.get("estimate_bytes") is None else f"{r['estimate_bytes'] / 2**20:,.0f} MiB"
        err = "–" if r.get("error") is None else f"{r['error']:+.1%}"
        was = "".join(" – |" if r.get("before", {}).get(b) is None else f" {r['before'][b]:+.1%} |" for b in labels)
        lines.append(f"| {r['id']} | {r['model']} | {r['mode']} | {r['precision']} | {r['metric']} | "
                     f"{r['measured_bytes'] / 2**20:,.0f} MiB | {est} | {err} |{was} "
                     f"{fit_s} | {r['source'].split(',')[0]} |")
    lines += boundary_lines(list(bounds), margin) if bounds else []
    problems = [r for r in results if r.get("problem")]
    if problems:
        lines += ["", "Rows the estimator could not describe:"] + [f"- {r['id']}: {r['problem']}" for r in problems]
    lines += ["", "Notes per row are in the YAML. GPU check (eval/gpu_check_vram.py): "
              + ("rows appended under measured_here." if any(r.get("id", "").startswith("gpu-check") for r in results)
                 else "not run on hardware yet; no rows from it.")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=HERE / "vram_published.yaml")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "vram_eval.md")
    ap.add_argument("--margin", type=float, default=0.10)
    ap.add_argument("--before", action="append", default=[], metavar="LABEL=TREE",
                    help="also run the rows through the estimator of this source tree (repeatable)")
    ap.add_argument("--header", default="", help="a sentence for the report's head (machine, commits)")
    args = ap.parse_args(argv)
    rows = load_rows(args.table)
    measured = [r for r in rows if r["metric"] != "max_seq"]
    results = evaluate(measured, args.margin)
    bounds = boundary([r for r in rows if r["metric"] == "max_seq"], args.margin)
    summary = summarize(results)
    befores = {}
    for spec in args.before:
        label, _, tree = spec.partition("=")
        add_before(results, label, estimates_elsewhere(Path(tree), measured))
        befores[label] = summarize([dict(r, error=r["before"][label]) for r in results])
        print(f"{label}: qlora median {_pct(befores[label]['qlora']['median'])}, lora+full "
              f"{_pct(befores[label]['lora+full']['median'])}")
    write_markdown(results, summary, args.out, args.margin, bounds, befores, args.header)
    print(f"boundary rows {len(bounds)}, unsafe {sum(b['unsafe'] for b in bounds)}")
    for key in ("all", "inference", "training", "full", "lora", "qlora", "whisper batch-8, any language",
                "whisper batch-8, English bound"):
        s = summary[key]
        print(f"{key:10s} n={s['n']:2d} median |error| {_pct(s['median'])}  worst {_pct(s['worst'])}")
    print(f"fit agreement {summary['fit_agree']}/{summary['fit_rows']}, unsafe {summary['fit_unsafe']} → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
