"""A full disk must not take the hub down (issue 9, finding 5), with real containers.

Before the fix, a user container could write to the host's disk, which the hub's databases
share, without limit: its home was a named volume and /tmp, /var/tmp lay in its writable layer
(both under /var/lib/docker), and what it wrote to the server's stdout grew its log file there.
One attendee filling 1 GB made valid tokens fail with 403 and the lease enforcement fail with
I/O errors. Now the root filesystem is read-only, /tmp and /var/tmp are small tmpfs, the log is
rotated and the home is a filesystem of ``home_quota`` bytes: the attendee who fills it gets
"No space left on device", nobody else notices.

Each attack runs as the attendee would: code in a notebook kernel of their server, through the
hub's proxy, with their own token.
"""

import json
import os
import shutil
from pathlib import Path

import docker.errors
import pytest
import requests

from tests.helpers import docker_teardown
from tests.hub.hubtest import (
    docker_spawner_hub,
    hub_factory,
    hub_root,
)
from tests.hub.test_docker_spawner import (
    IMAGE,
    docker_client,
    launched_docker_hub,
    remove_docker_objects,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MIB = 1024**2
QUOTA_MIB, TMP_MIB, LOG_MIB, LOG_FILES = 64, 32, 1, 2
FILLER, BYSTANDER = "diskfiller", "diskbystander"
ENOSPC, EROFS = 28, 30

SMALL_LIMITS = f"""
c.OPUDockerSpawner.tmp_size = "{TMP_MIB}M"
c.OPUDockerSpawner.log_max_size = "{LOG_MIB}m"
c.OPUDockerSpawner.log_max_files = {LOG_FILES}
"""

# Run in the attendee's kernel: write until the disk says no.
FILL = r"""
import json, os
def fill(path, limit=2 << 30):
    written, err = 0, None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while written < limit:
            written += os.write(fd, os.urandom(1 << 20))
        os.fsync(fd)
    except OSError as e:
        err = e.errno
    finally:
        os.close(fd)
    st = os.statvfs(os.path.dirname(path))
    return {"written": written, "errno": err, "size": st.f_blocks * st.f_frsize}
"""

FILL_HOME = FILL + r"""
result = fill(os.path.expanduser("~/fill.bin"))
# a second file (a notebook saved now) gets what the first write's reservations left, then no
result["then"] = fill(os.path.expanduser("~/notes.bin"))
print(json.dumps(result))
"""

FILL_SCRATCH = FILL + r"""
result = {}
for d in ("/tmp", "/var/tmp", "/dev/shm"):
    result[d] = fill(d + "/big.bin")
    os.unlink(d + "/big.bin")
print(json.dumps(result))
"""

# Every directory of the root filesystem that uid 1000 could write to, and direct attempts.
ROOT_FS = r"""
import json, os
root_dev = os.stat("/").st_dev
writable = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.lstat(os.path.join(top, d)).st_dev == root_dev]
    if os.access(top, os.W_OK):
        writable.append(top)
tries = {}
for path in ("/evil", "/usr/evil", "/opt/opuhub/venv/evil", "/var/evil", "/home/evil"):
    try:
        open(path, "w").close()
        tries[path] = "written"
    except OSError as e:
        tries[path] = e.errno
print(json.dumps({"writable": writable, "tries": tries}))
"""

# The server's stdout is the container's log, a file on the host's disk: 20 MiB into it.
FLOOD_LOG = r"""
import os
fd = os.open("/proc/1/fd/1", os.O_WRONLY)
line = b"y" * 1023 + b"\n"
for _ in range(20 * 1024):
    os.write(fd, line)
os.close(fd)
print('"flooded"')
"""

# What users do, on the read-only root: the OPU kernel, matplotlib, a package into the home.
WORKS = r"""
import json, os, subprocess, sys, zipfile
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
X = (np.random.default_rng(0).random((4, 30)) > 0.5).astype("uint8")
Y = opu.fit_transform1d(X)
plt.plot(Y[0]); plt.savefig(os.path.expanduser("~/plot.png")); plt.savefig("/tmp/plot.png")
wheel = "/tmp/hello_opu-1.0-py3-none-any.whl"
with zipfile.ZipFile(wheel, "w") as z:
    z.writestr("hello_opu.py", "X = 42\n")
    z.writestr("hello_opu-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: hello-opu\nVersion: 1.0\n")
    z.writestr("hello_opu-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("hello_opu-1.0.dist-info/RECORD", "")
target = os.path.expanduser("~/.opu-packages")
pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--target", target, wheel],
                     capture_output=True, text=True)
pip_user = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--user", wheel],
                          capture_output=True, text=True)
print(json.dumps({
    "shape": list(Y.shape), "backend": Y.context.backend if hasattr(Y, "context") else None,
    "plot": os.path.getsize(os.path.expanduser("~/plot.png")),
    "mpl_cache": matplotlib.get_cachedir(),
    "pip": pip.returncode, "pip_tail": (pip.stdout + pip.stderr)[-300:],
    "pip_user": pip_user.returncode, "pip_user_tail": (pip_user.stdout + pip_user.stderr)[-300:],
    "examples": sorted(os.listdir(os.path.expanduser("~/examples")))[:2],
}))
"""


@hub_factory("disk-docker", ("test_disk_docker.py",))
def make_disk_hub(tmp_path_factory):
    if docker_client() is None or os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        return None
    root = hub_root("disk-docker")
    return docker_spawner_hub(root, SMALL_LIMITS, image=IMAGE, hardware_image=IMAGE,
                              home_quota=f"{QUOTA_MIB}M")


@pytest.fixture(scope="module")
def disk_hub(tmp_path_factory):
    hub, client = launched_docker_hub("disk-docker", tmp_path_factory,
                                      "size-limited homes need root and mkfs.ext4")
    try:
        hub.create_users(FILLER, BYSTANDER)
        tokens = {name: hub.user_token(name) for name in (FILLER, BYSTANDER)}
        for name in (FILLER, BYSTANDER):
            resp = hub.spawn(name, profile="simulator", timeout=180)
            assert resp.status_code in (201, 202), resp.text
        yield hub, client, tokens
    finally:
        for name in (FILLER, BYSTANDER):
            try:
                if hub.server_model(name) is not None:
                    hub.stop_server(name, timeout=60)
            except Exception:  # the checks below still clean up
                pass
        def remove_containers():  # a stop that did not finish
            for name in (FILLER, BYSTANDER):
                try:
                    client.api.remove_container(f"jupyter-{name}", force=True)
                except docker.errors.NotFound:
                    pass

        # hub.shutdown unmounts the homes (release_host) and removes the hub's directory
        docker_teardown(client, remove_containers, hub.shutdown,
                        lambda: remove_docker_objects(client, hub))


def container(client, user):
    [found] = [c for c in client.containers.list() if c.name == f"jupyter-{user}"]
    return found


def run(hub, user, token, code, kernel="python3", timeout=180) -> dict:
    """Run ``code`` in a new kernel of ``user``; its last line of output, as JSON."""
    out = hub.execute(user, token, code, kernel=kernel, timeout=timeout)
    assert out["error"] is None and out["stdout"].strip(), out
    return json.loads(out["stdout"].strip().splitlines()[-1])


def test_the_hub_logs_that_homes_are_size_limited(disk_hub):
    hub, _, _ = disk_hub
    assert f"homes: {QUOTA_MIB}M each, size-limited" in hub.log()


def test_containers_get_a_read_only_root_and_a_size_limited_home(disk_hub):
    hub, client, _ = disk_hub
    c = container(client, FILLER)
    host = c.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert set(host["Tmpfs"]) == {"/tmp", "/var/tmp"}
    assert f"size={TMP_MIB * MIB}" in host["Tmpfs"]["/tmp"].split(",")
    assert host["LogConfig"] == {"Type": "json-file",
                                 "Config": {"max-size": f"{LOG_MIB}m", "max-file": str(LOG_FILES)}}
    mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
    home = mounts["/home/jovyan"]
    assert home["Type"] == "bind" and home["Source"] == str(hub.root / "homes" / FILLER)
    assert os.path.ismount(home["Source"])
    image = hub.root / "homes" / ".images" / f"{FILLER}.ext4"
    assert image.stat().st_size == QUOTA_MIB * MIB
    # no named volume in the engine's data directory
    assert not client.volumes.list(filters={"name": f"opuhub-home-{FILLER}"})


def test_the_image_still_works_on_a_read_only_root(disk_hub):
    hub, _, tokens = disk_hub
    works = run(hub, FILLER, tokens[FILLER], WORKS, kernel="opu")
    print("works:", works)
    assert works["shape"] == [4, 100]
    assert works["plot"] > 0
    assert works["mpl_cache"].startswith("/home/jovyan/")
    assert works["pip"] == 0, works["pip_tail"]  # packages go into the home
    assert works["examples"], "opuhub-start did not sync ~/examples"
    lab = requests.get(f"{hub.url}/user/{FILLER}/lab",
                       headers={"Authorization": f"token {tokens[FILLER]}"}, timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text


def test_nothing_on_the_root_filesystem_is_writable(disk_hub):
    hub, _, tokens = disk_hub
    found = run(hub, FILLER, tokens[FILLER], ROOT_FS)
    print("root fs:", found)
    # before: /tmp and /var/tmp (world-writable) lay in the writable layer, on the host's disk
    assert found["writable"] == []
    assert set(found["tries"].values()) == {EROFS}, found["tries"]


def test_tmp_stops_at_its_size_and_the_server_keeps_running(disk_hub):
    hub, _, tokens = disk_hub
    scratch = run(hub, FILLER, tokens[FILLER], FILL_SCRATCH)
    print("scratch:", scratch)
    for d in ("/tmp", "/var/tmp"):
        assert scratch[d]["errno"] == ENOSPC, scratch
        assert scratch[d]["size"] == TMP_MIB * MIB
        assert TMP_MIB * MIB * 0.9 < scratch[d]["written"] <= TMP_MIB * MIB
    assert scratch["/dev/shm"]["errno"] == ENOSPC  # Docker's 64 MB, memory as well
    assert scratch["/dev/shm"]["written"] <= 64 * MIB
    assert run(hub, FILLER, tokens[FILLER], "print(6 * 7)") == 42


def test_the_log_is_rotated(disk_hub):
    hub, client, tokens = disk_hub
    c = container(client, FILLER)
    assert run(hub, FILLER, tokens[FILLER], FLOOD_LOG) == "flooded"
    log = Path(c.attrs["LogPath"])
    files = [p for p in log.parent.iterdir() if p.name.startswith(log.name)]
    total = sum(p.stat().st_size for p in files)
    print(f"log: {len(files)} files, {total} bytes after 20 MiB written to the server's stdout")
    assert len(files) <= LOG_FILES
    assert total <= LOG_FILES * LOG_MIB * MIB + 64 * 1024


def _df(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_a_full_home_is_enospc_for_its_user_and_nobody_else_notices(disk_hub):
    hub, _, tokens = disk_hub
    image = hub.root / "homes" / ".images" / f"{FILLER}.ext4"
    free_before = _df(hub.state)
    filled = run(hub, FILLER, tokens[FILLER], FILL_HOME)
    free_after = _df(hub.state)
    allocated = image.stat().st_blocks * 512
    print(f"home: wrote {filled['written'] / MIB:.1f} + {filled['then']['written'] / MIB:.1f} MiB "
          f"before errno {filled['errno']}; image "
          f"allocates {allocated / MIB:.1f} MiB of {QUOTA_MIB} MiB; host free space "
          f"{free_before / MIB:.0f} → {free_after / MIB:.0f} MiB (others write there too)")
    assert filled["errno"] == ENOSPC and filled["then"]["errno"] == ENOSPC, filled
    assert filled["size"] <= QUOTA_MIB * MIB
    assert QUOTA_MIB * MIB // 2 < filled["written"] + filled["then"]["written"] <= QUOTA_MIB * MIB
    # the only cost on the host's disk is the image, never more than the quota
    assert allocated <= QUOTA_MIB * MIB

    # nobody else notices: the hub, its database, the lease service, another user's token
    assert hub.api("GET", "/users").status_code == 200
    other = hub.user_token(BYSTANDER)  # the hub's database still takes writes
    assert hub.api("GET", f"/users/{BYSTANDER}", token=other).status_code == 200
    out = hub.execute(BYSTANDER, tokens[BYSTANDER],
                      "import os; open(os.path.expanduser('~/ok.txt'), 'w').write('x' * 10**6); "
                      "print(os.path.getsize(os.path.expanduser('~/ok.txt')))")
    assert out["stdout"].strip() == "1000000", out
    assert hub.leases(tokens[BYSTANDER]) == []
    assert requests.get(f"{hub.url}/user/{BYSTANDER}/api/status", timeout=30,
                        headers={"Authorization": f"token {other}"}).status_code == 200

    # the filler's own server still answers, and deleting the file frees the home
    headers = {"Authorization": f"token {tokens[FILLER]}"}
    base = f"{hub.url}/user/{FILLER}/api"
    assert requests.get(f"{base}/status", headers=headers, timeout=30).status_code == 200
    for name in ("fill.bin", "notes.bin"):
        resp = requests.delete(f"{base}/contents/{name}", headers=headers, timeout=30)
        assert resp.status_code == 204, resp.text
    out = hub.execute(FILLER, tokens[FILLER], "print('back')")
    assert out["stdout"].strip() == "back", out


def test_a_home_volume_from_before_is_kept_and_a_home_that_cannot_be_made_fails_clearly(disk_hub):
    hub, client, _ = disk_hub
    veteran, blocked = "diskveteran", "diskblocked"
    hub.create_users(veteran, blocked)
    # files of a user from before size-limited homes, in their named volume (made after the
    # user: an older volume would be an earlier user's, see test_deleted_names.py)
    volume = client.volumes.create(f"opuhub-home-{veteran}")
    try:
        client.containers.run(IMAGE, ["echo mine > /home/jovyan/old.txt"],
                              entrypoint=["/bin/sh", "-c"], user="0", remove=True,
                              network_mode="none",
                              volumes={volume.name: {"bind": "/home/jovyan", "mode": "rw"}})
        # a home directory that already holds files but has no image: never bound unlimited
        (hub.root / "homes" / blocked).mkdir(parents=True)
        (hub.root / "homes" / blocked / "stray.txt").write_text("x")

        resp = hub.api("POST", f"/users/{blocked}/server", json={"profile": "simulator"})
        assert resp.status_code == 500, resp.text
        assert "home directory could not be prepared" in resp.json()["message"]
        assert hub.server_model(blocked) is None
        assert not client.api.containers(all=True, filters={"name": f"jupyter-{blocked}"})

        assert hub.spawn(veteran, profile="simulator", timeout=180).status_code in (201, 202)
        mounts = {m["Destination"]: m for m in container(client, veteran).attrs["Mounts"]}
        assert mounts["/home/jovyan"].get("Name") == volume.name
        out = hub.execute(veteran, hub.user_token(veteran),
                          "print(open('/home/jovyan/old.txt').read())")
        assert out["stdout"].strip() == "mine", out
        assert f"keeps the Docker volume {volume.name}" in hub.log()
        hub.stop_server(veteran, timeout=60)
    finally:
        try:
            client.api.remove_container(f"jupyter-{veteran}", force=True)
        except docker.errors.NotFound:
            pass
        volume.remove(force=True)
