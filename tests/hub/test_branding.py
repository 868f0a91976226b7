"""What the hub's pages say about the platform (opuhub.branding) and how the config wires it."""

from __future__ import annotations

import subprocess
import sys

from traitlets.config import Config

from opuhub import branding, hubconfig


def test_the_device_sentence_matches_what_users_can_do():
    assert "no OPU device" in branding.device_sentence(0)
    assert "simulator" in branding.device_sentence(0)
    one = branding.device_sentence(1)
    assert "one OPU device" in one and "OPU hardware" in one
    assert "3 OPU devices" in branding.device_sentence(3)
    assert branding.template_vars(0)["opuhub_has_opu"] == "no"
    assert branding.template_vars(2)["opuhub_name"] == "OPU Hub"


def test_our_templates_come_first_and_keep_the_authenticators():
    ours = str(branding.TEMPLATES_DIR)
    assert branding.template_paths(None) == [ours]
    assert branding.template_paths(["/native"]) == [ours, "/native"]
    assert branding.template_paths([ours, "/native"]) == [ours, "/native"]
    for name in ("login.html", "home.html", "spawn.html", "spawn_pending.html", "opuhub-intro.html"):
        assert (branding.TEMPLATES_DIR / name).is_file()
    assert branding.LOGO_FILE.read_text().startswith("<svg")


def test_configure_branding(tmp_path):
    c = Config()
    c.JupyterHub.template_paths = ["/native-templates"]
    hubconfig.configure_branding(c, ["/dev/opu0"])
    assert c.JupyterHub.template_paths == [str(branding.TEMPLATES_DIR), "/native-templates"]
    assert c.JupyterHub.logo_file == str(branding.LOGO_FILE)
    assert "one OPU device" in c.JupyterHub.template_vars["opuhub_devices"]
    bare = Config()
    hubconfig.configure_branding(bare, [])
    assert bare.JupyterHub.template_paths == [str(branding.TEMPLATES_DIR)]
    assert "no OPU device" in bare.JupyterHub.template_vars["opuhub_devices"]


def test_local_servers_sync_the_examples_first(tmp_path):
    """opuhub.singleuser_start: ~/examples gets the notebooks, then the command runs."""
    source = tmp_path / "shipped"
    source.mkdir()
    (source / "01-intro.ipynb").write_text("{}")
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "opuhub.singleuser_start", "--examples", str(source), "--",
         sys.executable, "-c", "print('server runs')"],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 0, result.stderr
    assert (home / "examples" / "01-intro.ipynb").read_text() == "{}"
    assert "1 added" in result.stderr and result.stdout.strip() == "server runs"
    # a missing source is reported, and the server still starts
    again = subprocess.run(
        [sys.executable, "-m", "opuhub.singleuser_start", "--examples", str(tmp_path / "gone"),
         "--", sys.executable, "-c", "print('still runs')"],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=60)
    assert again.returncode == 0 and again.stdout.strip() == "still runs"
    assert "examples not synced" in again.stderr


def test_the_local_spawner_runs_the_sync_as_the_user():
    from opuhub.local_spawner import OPULocalSpawner

    spawner = OPULocalSpawner()
    assert spawner.examples_dir.endswith("notebooks")
    # -P: the home is the working directory; nothing planted there may stand in for ours
    assert spawner.cmd[1:6] == ["-P", "-m", "opuhub.singleuser_start", "--examples",
                                spawner.examples_dir]
    # the fast launcher of singleuser/ (installed by make install), else the stock one
    assert spawner.fast_start_available
    assert spawner.cmd[-1].endswith("/opuhub-singleuser")
    assert OPULocalSpawner(fast_start=False).cmd[-1].endswith("/jupyterhub-singleuser")
    assert OPULocalSpawner(examples_dir="").cmd[0].endswith("/opuhub-singleuser")
