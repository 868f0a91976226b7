"""Every package says the Python it needs: the code uses 3.11 (``datetime.UTC``; asyncio's
timeouts caught as the builtin TimeoutError) and ruff checks it as 3.11 (ruff.toml)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["hub", "kernel", "labextension", "singleuser"]


def test_every_package_requires_the_python_ruff_checks_for():
    target = tomllib.loads((ROOT / "ruff.toml").read_text())["target-version"]
    assert target == "py311"
    found = sorted(p.parent.name for p in ROOT.glob("*/pyproject.toml"))
    assert found == PACKAGES, "a new package: add it here"
    for name in PACKAGES:
        project = tomllib.loads((ROOT / name / "pyproject.toml").read_text())["project"]
        assert project["requires-python"] == ">=3.11", name
