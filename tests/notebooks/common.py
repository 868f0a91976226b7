"""Shared by the notebook tests: where the notebooks are, and the kernel they run on."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "opu"
#: Seconds a notebook may take on 2 cores with the simulator (issue #4: "under 60 s").
BUDGET_S = 60.0
#: The issue asks for at least these seven.
MIN_NOTEBOOKS = 7


def load(path: Path) -> dict:
    return json.loads(path.read_text())
