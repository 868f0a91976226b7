"""Running the playbook's tools (ansible-playbook, ansible-lint) from the project's venv, and
rendering the roles' templates with Ansible's own template engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
ROLES = ANSIBLE_DIR / "roles"
DEFAULTS = ROLES / "opuhub" / "defaults" / "main.yml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} is missing: run `make install` (requirements/ansible.txt)"
    return str(path)


def ansible_env(tmp: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(ANSIBLE_DIR / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if tmp is not None:
        env["ANSIBLE_LOCAL_TEMP"] = str(tmp / "ansible-local")
    return env


def run_playbook(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([tool("ansible-playbook"), *args], cwd=ANSIBLE_DIR, env=env or ansible_env(),
                          capture_output=True, text=True, timeout=timeout)


def defaults() -> dict:
    return yaml.safe_load(DEFAULTS.read_text())


# Run in a child interpreter: importing ansible patches process-wide state (sys.intern among
# others) that breaks torch in any later test of the same pytest process.
_RENDER = """
import json, sys
from pathlib import Path
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

job = json.load(sys.stdin)
variables = {**yaml.safe_load(Path(job["defaults"]).read_text()), "ansible_managed": "Ansible managed",
             **job["overrides"]}
templar = Templar(loader=DataLoader(), variables=variables)
sys.stdout.write(templar.template(trust_as_template(Path(job["template"]).read_text())))
"""


def render(template: Path, **overrides) -> str:
    """Render a role template the way the template module does (Ansible's Templar), with the
    playbook's defaults and ``overrides``, in a child Python so that no ansible module is ever
    imported into the test process."""
    job = {"template": str(template), "defaults": str(DEFAULTS), "overrides": overrides}
    result = subprocess.run([sys.executable, "-c", _RENDER], input=json.dumps(job), env=ansible_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"rendering {template} failed:\n{result.stderr}"
    assert "ansible" not in sys.modules, "ansible was imported into the pytest process"
    return result.stdout
