#!/usr/bin/env python3
"""Set up a local virtual environment and run camfix's demo or its tests.

    python3 dev.py demo [camfix demo options]     # e.g. --quick, --out DIR, --seed N
    python3 dev.py test [pytest options]          # e.g. -k pooling, -x
    python3 dev.py bench [benchmark script]       # e.g. benchmarks/bench_pooling.py

The first run creates ``.venv`` next to this file and installs camfix with its extras into it (an editable
install, which also compiles the metric kernels, ``camfix/metrics/*.c``, in place); later runs reinstall only when
``pyproject.toml``, ``setup.py`` or a kernel source changed. Only the standard library is used here, so it works
on a machine with nothing but Python 3.9+ (without a C compiler camfix installs without its kernels and says so).

PyTorch is installed as ``torch==2.13.0 torchvision==0.28.0`` unless the environment variable ``CAMFIX_TORCH``
names other requirements (``CAMFIX_TORCH="torch==2.5.1 torchvision==0.20.1"``), or ``CAMFIX_TORCH=skip`` leaves
whatever is present. torchvision is pinned next to torch because the test extras (timm, grad-cam) ask for it
unpinned, and an unpinned torchvision would replace torch with the newest build. camfix itself only asks for
``torch>=2.1`` and never imports torchvision.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".camfix-installed"
DEFAULT_TORCH = "torch==2.13.0 torchvision==0.28.0"


def _log(message: str) -> None:
    print(f"[dev.py] {message}", flush=True)


def _run(command: List[str]) -> None:
    _log(" ".join(command))
    subprocess.run(command, check=True, cwd=ROOT)


def _install_fingerprint(torch_requirement: str) -> str:
    """What the install depends on: the torch requirement, the packaging files and the sources of the compiled
    kernels (an editable install builds them once; a changed kernel must be rebuilt)."""
    digest = hashlib.sha256(torch_requirement.encode())
    kernels = sorted((ROOT / "camfix" / "metrics").glob("*.[ch]"))
    for path in [ROOT / "pyproject.toml", ROOT / "setup.py", *kernels]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create ``.venv`` and install camfix[dev] into it, unless it is already up to date."""
    torch_requirement = os.environ.get("CAMFIX_TORCH", DEFAULT_TORCH)
    fingerprint = _install_fingerprint(torch_requirement)
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    if not PYTHON.exists():
        _log(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    # torch first and pinned: a later dependency resolution then finds it satisfied instead of fetching the
    # newest build (with gigabytes of CUDA libraries) on its own.
    if torch_requirement != "skip":
        _run(pip + torch_requirement.split())
    _run(pip + ["-e", ".[dev]"])
    STAMP.write_text(fingerprint)


def main(argv: List[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "bench"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_environment()
    if command == "demo":
        return subprocess.call([str(BIN / "camfix"), "demo", *rest], cwd=ROOT)
    if command == "bench":
        return subprocess.call([str(PYTHON), *rest], cwd=ROOT)
    return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
