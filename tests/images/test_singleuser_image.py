"""The single-user image, in the style of jupyter/docker-stacks' image tests: a container per
test, started with the hardening the hub applies (uid 1000, no capabilities, no-new-privileges,
pids limit). Covers: non-root user, tini as init, JupyterLab and jupyterhub-singleuser, the "opu"
kernelspec as default kernel, the curated notebooks shipped and each one executed inside the
container with the simulator (no network at all)."""

from __future__ import annotations

import json
import re
import secrets
import shlex

import pytest

from tests.helpers import container_exec, wait_until

from .conftest import HARDENED, NB_UID, REPO, container_ip, wait_http

pytestmark = pytest.mark.docker

NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
NOTEBOOK_DIR = "/opt/opuhub/notebooks"


def run_sleeping(containers, image, **kwargs):
    """A container that idles under the image's entrypoint (tini), for exec-based checks."""
    return containers.run(image, ["sleep", "infinity"], **{**HARDENED, **kwargs})


def test_image_config_runs_non_root_under_tini(docker_client, singleuser_image):
    config = docker_client.images.get(singleuser_image).attrs["Config"]
    assert config["User"] in (f"{NB_UID}:{NB_UID}", str(NB_UID), "jovyan"), config["User"]
    assert config["Entrypoint"][0].endswith("tini"), config["Entrypoint"]
    assert config["Entrypoint"][-1] == "/usr/local/bin/opuhub-start", config["Entrypoint"]
    assert config["Cmd"] == ["jupyterhub-singleuser"]
    assert config["WorkingDir"] == "/home/jovyan"


def test_container_user_is_jovyan_uid_1000(containers, singleuser_image):
    # no user= here: what the image itself defaults to
    c = containers.run(singleuser_image, ["sleep", "infinity"])
    out = container_exec(c, ["sh", "-c", 'id -u; id -g; id -un; echo "$HOME"; pwd'])
    assert out.split() == ["1000", "1000", "jovyan", "/home/jovyan", "/home/jovyan"]
    # the home directory belongs to the user (a fresh named volume copies these permissions)
    out = container_exec(c, ["stat", "-c", "%u:%g %a", "/home/jovyan"])
    assert out.split()[0] == "1000:1000", out
    out = container_exec(c, ["sh", "-c", "touch /home/jovyan/probe && echo ok"])
    assert out.strip() == "ok", out


def test_tini_is_pid_1(containers, singleuser_image):
    c = run_sleeping(containers, singleuser_image)
    out = container_exec(c, ["cat", "/proc/1/comm"])
    assert out.strip() == "tini", out


def test_no_root_escalation(containers, singleuser_image):
    c = run_sleeping(containers, singleuser_image)
    out = container_exec(c, ["sh", "-c", "grep CapEff /proc/self/status"])
    assert out.split()[1] == "0000000000000000", out
    out = container_exec(c, ["sh", "-c", "command -v sudo || echo none"])
    assert out.strip() == "none", out


def test_jupyterlab_and_singleuser_present(containers, singleuser_image):
    c = run_sleeping(containers, singleuser_image)
    out = container_exec(c, ["jupyter", "lab", "--version"])
    assert out.strip() == "4.6.6", out
    out = container_exec(c, ["jupyterhub-singleuser", "--version"])
    assert out.strip().startswith("6.1.1"), out
    out = container_exec(c, ["python", "-c", "import jupyterhub.singleuser, jupyterlab, opu_kernel; print('ok')"])
    assert out.strip().endswith("ok"), out


def test_opu_kernelspec_installed(containers, singleuser_image):
    c = run_sleeping(containers, singleuser_image)
    specs = json.loads(container_exec(c, ["jupyter", "kernelspec", "list", "--json"],
                                      stderr=False))["kernelspecs"]
    assert "opu" in specs, sorted(specs)
    spec = specs["opu"]["spec"]
    assert spec["display_name"] == "Python 3 (OPU)"
    assert spec["language"] == "python"
    # the kernel runs the image's Python with the OPU extension loaded
    assert spec["argv"][0].startswith("/opt/opuhub/venv/"), spec["argv"]
    assert "opu_kernel" in spec["argv"], spec["argv"]


def test_curated_notebooks_shipped(containers, singleuser_image):
    c = run_sleeping(containers, singleuser_image)
    assert NOTEBOOKS, "notebooks/ has no curated notebooks"
    out = container_exec(c, ["sh", "-c", f"cd {NOTEBOOK_DIR} && ls -1 *.ipynb"])
    assert sorted(out.split()) == NOTEBOOKS, f"image has {out.split()}, notebooks/ has {NOTEBOOKS}"
    # readable by the user, not writable (they get their own copy in ~/examples)
    out = container_exec(c, ["sh", "-c", f"test -r {NOTEBOOK_DIR}/{shlex.quote(NOTEBOOKS[0])} "
                                         f"&& ! test -w {NOTEBOOK_DIR} && echo ok"])
    assert out.strip() == "ok", out


def wait_for_sync(container, count: int, timeout: float = 60) -> None:
    """Until opuhub-start has logged its examples summary `count` times (once per start)."""
    def logs():
        return container.logs().decode(errors="replace")

    wait_until(lambda: logs().count("examples:") >= count, timeout,
               lambda: f"{count} examples sync(s) in the logs:\n{logs()[-3000:]}")


def test_examples_synced_into_home_keeping_user_changes(containers, singleuser_image):
    c = run_sleeping(containers, singleuser_image)
    wait_for_sync(c, 1)
    out = container_exec(c, ["sh", "-c", "cd /home/jovyan/examples && ls -1 *.ipynb"])
    assert sorted(out.split()) == NOTEBOOKS, out
    if len(NOTEBOOKS) < 2:
        pytest.fail("needs at least two curated notebooks")
    edited, deleted = NOTEBOOKS[0], NOTEBOOKS[1]
    container_exec(c, ["sh", "-c", f"cd /home/jovyan/examples && echo mine > {shlex.quote(edited)} "
                                   f"&& rm {shlex.quote(deleted)}"])
    c.restart(timeout=5)  # the next server start syncs again
    wait_for_sync(c, 2)
    out = container_exec(c, ["sh", "-c", "cd /home/jovyan/examples && ls -1 *.ipynb && "
                                         f"cat {shlex.quote(edited)}"])
    lines = out.split()
    assert lines[-1] == "mine", out  # the user's edit is kept
    assert deleted not in lines, out  # and so is their deletion
    assert sorted(lines[:-1]) == sorted(set(NOTEBOOKS) - {deleted}), out


def test_server_answers_http_and_defaults_to_opu_kernel(containers, singleuser_image):
    token = secrets.token_hex(16)
    c = containers.run(
        singleuser_image,
        ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser",
         f"--IdentityProvider.token={token}"],
        **HARDENED,
        mem_limit="2g",
    )
    base = f"http://{container_ip(c)}:8888"
    headers = {"Authorization": f"token {token}"}
    wait_http(f"{base}/api/status", c, headers=headers)
    assert wait_http(f"{base}/lab", c, headers=headers).status_code == 200
    specs = wait_http(f"{base}/api/kernelspecs", c, headers=headers).json()
    assert specs["default"] == "opu", specs["default"]
    assert "opu" in specs["kernelspecs"]


# -- every curated notebook executes inside the container with the simulator -------------------

def _notebook_params():
    if not NOTEBOOKS:
        # zero notebooks must fail loudly, not pass by collecting nothing
        return [pytest.param(None, id="no-notebooks")]
    return NOTEBOOKS


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("notebook", _notebook_params())
def test_notebook_executes_in_container(containers, singleuser_image, notebook):
    if notebook is None:
        pytest.fail("notebooks/ has no curated notebooks (*.ipynb): nothing to execute in the image")
    # the image's own copy, executed as the user would: a scratch copy in a writable place,
    # the "opu" kernel, the simulator backend, no network, the hub's memory limit
    script = (
        f"set -e; cp -r {NOTEBOOK_DIR} /tmp/nb && cd /tmp/nb && "
        f"jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=900 "
        f"--ExecutePreprocessor.kernel_name=opu --output /tmp/executed.ipynb {shlex.quote(notebook)}"
    )
    c = containers.run(
        singleuser_image,
        ["sh", "-c", script],
        **HARDENED,
        mem_limit="2g",
        network_mode="none",
        environment={"OPU_BACKEND": "simulator"},
    )
    result = c.wait(timeout=1100)
    logs = c.logs().decode(errors="replace")
    assert result["StatusCode"] == 0, f"{notebook} failed in the container:\n{logs[-6000:]}"


def promised_notebooks() -> list[str]:
    """The notebooks that notebooks/README.md's table promises (its first column)."""
    readme = (REPO / "notebooks" / "README.md").read_text()
    return sorted(f"{name}.ipynb" for name in re.findall(r"^\| `([^`|]+)` \|", readme, re.M))


def test_notebook_list_matches_repository():
    # the parametrization above comes from notebooks/*.ipynb; the README's table is what the
    # project promises: a notebook gone, renamed or added without its line fails here
    promised = promised_notebooks()
    assert promised, "notebooks/README.md's table lists no notebooks"
    assert NOTEBOOKS == promised, (f"in notebooks/ only: {sorted(set(NOTEBOOKS) - set(promised))}; "
                                   f"in the README only: {sorted(set(promised) - set(NOTEBOOKS))}")
