"""Startup budget: whole `syllabus` processes, each next to today's path measured in the same run.

    python eval/bench_startup.py [--quick]     # writes eval/results/bench-startup.md; `make bench` runs it too

- cold `syllabus search` (a new process each time, OS file cache warm), p50 over 20 runs;
- cold `syllabus ask`, time from starting the process to the first answer byte on stdout, and (generative
  mode) to the model's first token;
- a question in `syllabus chat` after the first, through a pseudo-terminal;
- the first `ask` on a new knowledge base (does it convert the model again?);
- `syllabus list` and `syllabus --help`.

"Today's path" is the code of ``BASELINE_REF`` (the commit before the torch-free query path),
unpacked with ``git archive`` and run with the same interpreter, packages, KB and user cache. Runs
alternate (ours, baseline, ours, ...) so load from other processes falls on both alike.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SAMPLE_PDF, WORK, machine, r_manual  # noqa: E402
from ptyio import first_byte_after, read_until  # noqa: E402

BASELINE_REF = os.environ.get("SYLLABUS_BENCH_BASELINE", "c6c4ceb")  # main before the ONNX query path
QUESTIONS = {"R-lang.pdf": "What is a promise object?", "R-intro.pdf": "How do I read a table from a file?",
             SAMPLE_PDF.name: "How much GPU memory does LoRA fine-tuning of a 7B model need?"}


def row(stage, ours, baseline=None, unit="", ratio=None, note=""):
    from bench import row as bench_row

    return bench_row(stage, ours, baseline, unit, ratio, note)


def baseline_tree() -> Path | None:
    """Today's code, unpacked once into the temp folder (outside the tree, which the architecture test
    reads); None where git cannot provide it."""
    import tempfile

    target = Path(tempfile.gettempdir()) / f"syllabus-bench-baseline-{BASELINE_REF}"
    if (target / "pipeline" / "cli.py").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_REF], capture_output=True)
    if archive.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def command(tree: Path, *args: str) -> tuple[list[str], dict, Path]:
    """argv, environment and working folder that run ``syllabus ARGS`` from ``tree``'s code."""
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return [sys.executable, "-m", "pipeline", *args], env, tree


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def whole(tree: Path, *args: str, cpu: list | None = None) -> float:
    """Wall seconds of one whole process; its CPU seconds (all threads) are appended to ``cpu``, a
    figure that other processes on a shared machine disturb much less than the wall time."""
    argv, env, cwd = command(tree, *args)
    c, t = _child_cpu(), time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - t
    if cpu is not None:
        cpu.append(_child_cpu() - c)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr[-500:]}")
    return seconds


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a running process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def first_byte(tree: Path, *args: str) -> tuple[float, float, str, float]:
    """(seconds to the first non-blank stdout byte, seconds to exit, stderr, CPU seconds to that byte)
    of a whole process."""
    argv, env, cwd = command(tree, *args)
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    first, cpu = None, float("nan")
    while first is None:
        byte = proc.stdout.read(1)
        if not byte:
            break
        if not byte.isspace():
            first, cpu = time.perf_counter() - t, _process_cpu(proc.pid)
    proc.stdout.read()
    stderr = proc.stderr.read().decode(errors="replace")
    proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {stderr[-500:]}")
    return (first if first is not None else float("nan")), time.perf_counter() - t, stderr, cpu


def alternate(trees: dict[str, Path], runs: int, *args: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds per tree, runs alternating between the trees."""
    times: dict[str, list[float]] = {name: [] for name in trees}
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    for name, tree in trees.items():
        whole(tree, *args)  # warm the OS file cache and any one-time export
    for _ in range(runs):
        for name, tree in trees.items():
            times[name].append(whole(tree, *args, cpu=cpu[name]))
    return times, cpu


def ensure_kb(pdf: Path, name: str, fresh: bool = False) -> Path:
    kb = WORK / name
    if fresh:
        shutil.rmtree(kb, ignore_errors=True)
    if not (kb / "catalog.sqlite").exists():
        whole(ROOT, "--quiet", "--kb", str(kb), "ingest", str(pdf))
    return kb


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def run(quick: bool = False) -> list[dict]:
    pdf = r_manual("R-lang.pdf") or r_manual("R-intro.pdf") or SAMPLE_PDF
    kb = ensure_kb(pdf, "startup-kb")
    base = baseline_tree()
    trees = {"ours": ROOT} | ({"baseline": base} if base is not None else {})
    runs = 5 if quick else 20
    rows = []
    question = QUESTIONS.get(pdf.name, "What is this book about?")
    specs = [("search", ["--kb", str(kb), "search", question, "--json"], "target ≤ 1.0 s p50"),
             ("list", ["--kb", str(kb), "list"], ""), ("--help", ["--help"], "")]
    for label, args, target in specs:
        times, cpu = alternate(trees, runs, *args)
        ours = statistics.median(times["ours"])
        baseline = statistics.median(times["baseline"]) if "baseline" in times else None
        cpu_ours, cpu_base = (statistics.median(cpu[n]) if n in cpu else float("nan") for n in ("ours", "baseline"))
        note = (f"p90 {_p(times['ours'], 0.9):.2f} s vs {_p(times.get('baseline') or [float('nan')], 0.9):.2f} s; "
                f"CPU p50 {cpu_ours:.2f} s vs {cpu_base:.2f} s; {pdf.name}; {_load()}")
        rows.append(row(f"`syllabus {label}`, new process, p50 of {runs} (baseline: {BASELINE_REF})", ours, baseline, "s",
                        note=f"{target}; {note}" if target else note))
    rows += bench_ask(trees, kb, question, pdf, quick)
    return rows


_FOOTER = re.compile(r"first token ([\d.]+) s, model's first token ([\d.]+) s")


def _load() -> str:
    return "load avg " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench_ask(trees: dict[str, Path], kb: Path, question: str, pdf: Path, quick: bool) -> list[dict]:
    """Whole `ask` processes: the first answer byte (ours: the evidence; the baseline streams the
    model's tokens, so its first byte is its first token) and, ours in generative mode, the model's
    first token: the first byte plus the model's first token's delay after the evidence (the footer's
    two figures, both counted from the question in the process)."""
    args = ["--quiet", "--kb", str(kb), "ask", question, "--max-tokens", "8"]
    generative = ["--kb", str(kb), "ask", question, "--max-tokens", "8", "--mode", "generative"]
    for tree in trees.values():
        first_byte(tree, *args)  # conversions, packing (if any) and OS file cache, outside the timing
    rounds = 1 if quick else 3
    runs = {name: [first_byte(tree, *args) for _ in range(rounds)] for name, tree in trees.items()}
    ttft = {name: statistics.median(r[0] for r in got) for name, got in runs.items()}
    cpu = {name: statistics.median(r[3] for r in got) for name, got in runs.items()}
    rows = [row(f"`syllabus ask`, new process, time to first answer byte (median of {rounds}, baseline: {BASELINE_REF})",
                ttft["ours"], ttft.get("baseline"), "s",
                note=f"ours: the evidence (auto mode, extractive for the 135M model), baseline: the model's first token; "
                     f"CPU to first byte {cpu['ours']:.1f} s vs {cpu.get('baseline', float('nan')):.1f} s; "
                     f"{pdf.name}; bundled LLM, converted; {_load()}")]
    first_byte(ROOT, *generative)
    model_first, exits = [], []
    for _ in range(rounds):
        t_first, total, stderr, _cpu = first_byte(ROOT, *generative)
        found = _FOOTER.search(stderr)
        if found:
            model_first.append(t_first + float(found.group(2)) - float(found.group(1)))
        exits.append(total)
    if model_first:
        ours = statistics.median(model_first)
        rows.append(row(f"`syllabus ask --mode generative`, new process, time to the model's first token (median of {rounds}, "
                        f"baseline: {BASELINE_REF})", ours, ttft.get("baseline"), "s",
                        note=f"target ≤ 3 s; whole process to exit with 8 tokens {statistics.median(exits):.1f} s; "
                             f"baseline: its first streamed token; {pdf.name}; {_load()}"))
    # A new KB on a machine that has converted the model before: does the first ask convert it again?
    for name, tree in trees.items():
        if quick and name != "ours":
            continue
        fresh = ensure_kb(SAMPLE_PDF, f"startup-new-kb-{name}", fresh=True)
        t_first, _total, stderr, _cpu = first_byte(tree, "--kb", str(fresh), "ask", QUESTIONS[SAMPLE_PDF.name], "--max-tokens", "8")
        converted = "converting" in stderr
        rows.append(row(f"first `ask` on a new KB ({name}): time to first answer byte", t_first, None, "s",
                        note=("converted the model again" if converted else "no conversion") + f"; {_load()}"))
    return rows + bench_chat(kb, question, quick)


def chat_follow_up(kb: Path, first: str, follow: str, *options: str) -> tuple[float, str]:
    """`syllabus chat` in a pseudo-terminal: after ``first`` is answered, seconds from sending ``follow``
    to the first byte of its answer (after the terminal's echo), and the output of that answer."""
    import pty

    argv, env, cwd = command(ROOT, "--kb", str(kb), "chat", *options)
    main, child = pty.openpty()
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, cwd=cwd, env=dict(env, TERM="dumb"),
                            start_new_session=True)
    os.close(child)
    seen = bytearray()
    try:
        # The answer ends with the footer (" total N s · model") and the next prompt.
        if not (read_until(main, b"> ", seen, 600) and (os.write(main, (first + "\n").encode()) or True)
                and read_until(main, b"Sources", seen, 600) and read_until(main, b" total ", seen, 600)
                and read_until(main, b"> ", seen, 600)):
            raise RuntimeError(f"chat did not answer: {seen.decode(errors='replace')[-800:]}")
        seen.clear()
        os.write(main, (follow + "\n").encode())
        read_until(main, follow[-8:].encode() + b"\r\n", seen, 60)  # the echo
        echoed, t = len(seen), time.perf_counter()
        if not first_byte_after(main, seen, echoed, 600):
            raise RuntimeError("chat gave no answer to the follow-up")
        waited = time.perf_counter() - t
        read_until(main, b" total ", seen, 600)
        read_until(main, b"> ", seen, 600)
        os.write(main, b"/quit\n")
        proc.wait(timeout=60)
        return waited, seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)


def bench_chat(kb: Path, question: str, quick: bool) -> list[dict]:
    """A question in `syllabus chat` after the first: the first byte of its answer (the evidence), and
    in generative mode the model's first token (the footer: counted from the question's arrival)."""
    follow = "and how is it evaluated?"
    rounds = 1 if quick else 3
    shown = [chat_follow_up(kb, question, follow, "--max-tokens", "8")[0] for _ in range(rounds)]
    model = []
    for _ in range(rounds):
        _waited, text = chat_follow_up(kb, question, follow, "--max-tokens", "8", "--mode", "generative")
        found = _FOOTER.search(text)
        if found:
            model.append(float(found.group(2)))
    rows = [row(f"`syllabus chat`, a question after the first: time to its first answer byte (median of {rounds})",
                statistics.median(shown), None, "s", note=f"through a pty; the evidence (auto mode); target ≤ 1 s; {_load()}")]
    if model:
        rows.append(row(f"`syllabus chat --mode generative`, a question after the first: the model's first token (median of {rounds})",
                        statistics.median(model), None, "s",
                        note=f"from the question's arrival (footer); target ≤ 1 s; {_load()}"))
    return rows


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    from bench import write_results

    started = _load()
    rows = run(ap.parse_args().quick)
    write_results(rows, f"Machine: {machine()}. Startup budget, whole processes. The machine's load average (1, 5, 15 min) "
                        f"is given with each figure (at the start: {started}; at the end: {_load()}): other jobs share "
                        "the cores, which stretches wall times; CPU seconds are the steadier figure.", "bench-startup.md")
