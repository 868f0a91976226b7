"""The playbook as a whole, without a target: ansible-lint (production profile) is clean, the
syntax check passes, every variable the roles use is defined (with its default and an
explanation) in the one defaults file, and the example inventory only sets known variables."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from .ansiblerun import ANSIBLE_DIR, DEFAULTS, ROLES, ansible_env, defaults, run_playbook, tool

pytestmark = pytest.mark.timeout(300)


def test_ansible_lint_production_profile_is_clean():
    result = subprocess.run([tool("ansible-lint"), "--profile", "production", "--nocolor"],
                            cwd=ANSIBLE_DIR, env=ansible_env(), capture_output=True, text=True,
                            timeout=280)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "Passed" in result.stderr and "production" in result.stderr, result.stderr[-2000:]


def test_syntax_check():
    result = run_playbook("--syntax-check", "site.yml", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "playbook: site.yml" in result.stdout


def _used_variables() -> set[str]:
    """opuhub_* names the roles and the playbook read (tasks, handlers, templates, vars)."""
    names = set()
    for path in [*ROLES.rglob("*.yml"), *ROLES.rglob("*.j2"), ANSIBLE_DIR / "site.yml"]:
        if path == DEFAULTS:
            continue
        names |= set(re.findall(r"\bopuhub_[a-z0-9_]+\b", path.read_text()))
    return names


def _role_owned(name: str) -> bool:
    """Registered results, facts and role vars: named after their role (ansible-lint's rule)."""
    text = "\n".join(p.read_text() for p in ROLES.rglob("*.yml") if p != DEFAULTS)
    return bool(re.search(rf"(register: {name}\b|^\s*{name}:)", text, re.M))


def test_every_variable_is_defined_and_explained_in_the_defaults_file():
    known = defaults()
    text = DEFAULTS.read_text()
    # names that are files, containers or roles rather than variables
    not_variables = {"opuhub_hub", "opuhub_docker", "opuhub_devices", "opuhub_images",
                     "opuhub_tls", "opuhub_firewall", "opuhub_backup", "opuhub_connection_upgrade",
                     "opuhub_tls_ca", "opuhub_filter"}
    missing = sorted(n for n in _used_variables() - set(known) - not_variables if not _role_owned(n))
    assert not missing, f"used by the roles but not in {DEFAULTS.name}: {missing}"
    for name in known:
        # each variable has a comment in the lines just above it (or on its line)
        block = text.split(f"\n{name}:", 1)[0].rsplit("\n\n", 1)[-1]
        line = text.split(f"\n{name}:", 1)[1].split("\n", 1)[0]
        assert "#" in block.split("\n")[-1] or "#" in line or block.strip().startswith("#"), (
            f"{name} has no explanation in {DEFAULTS.name}")


def test_example_inventory_sets_only_known_variables():
    known = defaults()
    group_vars = yaml.safe_load((ANSIBLE_DIR / "inventory/example/group_vars/opuhub.yml").read_text())
    assert set(group_vars) <= set(known), set(group_vars) - set(known)
    hosts = yaml.safe_load((ANSIBLE_DIR / "inventory/example/hosts.yml").read_text())
    assert hosts["opuhub"]["hosts"], "the example inventory names a server"


def test_a_bad_setting_stops_the_play_with_the_variable_named(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"opuhub": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_become": False,
        "ansible_python_interpreter": sys.executable}}}}))
    result = run_playbook("-i", str(inventory), "site.yml", "--check", "--tags", "never-matches",
                          "-e", "opuhub_tls_mode=letsencrypt", env=ansible_env(tmp_path),
                          timeout=120)
    assert result.returncode != 0
    assert "opuhub_tls_mode must be selfsigned, files or acme, not letsencrypt" in result.stdout
