"""Where a user's server start spends its seconds: the single-user container alone, started the
way the hub's spawner starts it (read-only root, tmpfs /tmp, uid 1000, no capabilities), in
front of a stand-in hub API that this script serves on the gateway of a Docker network it
creates (traffic goes only to that network).

    python benchmarks/profile_start.py [--runs 5] [--pyspy PATH/TO/py-spy] [--image IMG]
                                       [--stock] [--kernel]

For each run: wall seconds from `docker run` to the first HTTP answer of /user/<name>/api (what
the hub waits for), and the container's CPU-seconds at that moment (cgroup cpuacct). With
--kernel, also the seconds from that answer to the reply of a first cell in a new "opu" kernel
(what an attendee waits for after the spawn). --stock starts plain `jupyterhub-singleuser`
(the image's entry point and server settings bypassed: what a stock operator runs). --pyspy
runs one more start under py-spy (the static binary bound into the container; py-spy traces its
own child, so no capability is needed; with --kernel until the first cell's reply, the
kernel's samples included) and prints where the samples went.
"""

from __future__ import annotations

import argparse
import collections
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.images.conftest import LABEL  # noqa: E402
from tests.singleuser.fake_hub import FakeHubServer  # noqa: E402

USER = "prof"
TOKEN = "profile-start-token"


def run_kwargs(args, network: str, hub: FakeHubServer) -> dict:
    volumes = {f"{network}-home": {"bind": "/home/jovyan", "mode": "rw"}}
    for bind in args.bind:
        host, _, target = bind.partition(":")
        volumes[str(Path(host).resolve())] = {"bind": target, "mode": "ro"}
    env = dict(item.partition("=")[::2] for item in args.env)
    kwargs = dict(
        volumes=volumes, image=args.image, detach=True, network=network, labels={LABEL: "1"},
        environment={**hub.singleuser_env(TOKEN, f"http://0.0.0.0:8888/user/{USER}/"),
                     "OPU_BACKEND": "simulator", "OPU_N_COMPONENTS": "100", **env}, user="1000:1000", cap_drop=["ALL"],
        security_opt=["no-new-privileges"], read_only=True, pids_limit=512,
        tmpfs={"/tmp": "size=512m", "/var/tmp": "size=512m"}, mem_limit="2g",
        name=f"opuhub-profile-{uuid.uuid4().hex[:8]}",
    )
    # what the hub's spawner runs (DockerSpawner adds the address to listen on)
    kwargs["command"] = shlex.split(args.command or "jupyterhub-singleuser") + ["--ServerApp.ip=0.0.0.0"]
    if args.stock:  # the image's entry point and server settings bypassed
        kwargs["entrypoint"] = ["/usr/bin/tini", "-g", "--"]
    return kwargs


def cpu_seconds(container) -> float:
    path = Path(f"/sys/fs/cgroup/cpuacct/docker/{container.id}/cpuacct.usage")
    if path.exists():  # cgroup v1, cgroupfs driver: exact and instant
        return int(path.read_text()) / 1e9
    stats = container.stats(stream=False)
    return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def ip_of(container, network: str) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


def wait_answer(url: str, container, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2, allow_redirects=False).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.01)
    container.reload()
    raise TimeoutError(f"no answer from {url} ({container.status}):\n"
                       f"{container.logs(tail=120).decode(errors='replace')}")


def first_cell(base: str) -> float:
    """A new opu kernel and a first cell's reply, as JupyterLab does (REST + websocket)."""
    import websocket

    headers = {"Authorization": f"token {TOKEN}"}
    start = time.monotonic()
    resp = requests.post(f"{base}api/kernels", json={"name": "opu"}, headers=headers, timeout=60)
    resp.raise_for_status()
    ws = websocket.create_connection(
        f"{base.replace('http://', 'ws://')}api/kernels/{resp.json()['id']}/channels",
        header=[f"Authorization: token {TOKEN}"], timeout=120)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": USER, "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": "1 + 1", "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
    while True:
        msg = json.loads(ws.recv())
        if (msg.get("parent_header", {}).get("msg_id") == msg_id
                and msg["msg_type"] == "execute_reply"):
            ws.close()
            return time.monotonic() - start


def one_start(client, args, network, hub, extra=None) -> dict:
    kwargs = run_kwargs(args, network, hub)
    kwargs.update(extra or {})
    started = time.monotonic()
    container = client.containers.run(**kwargs)
    try:
        url = f"http://{ip_of(container, network)}:8888/user/{USER}/"
        wait_answer(url + "api", container)
        result = {"answer_s": time.monotonic() - started, "cpu_s": cpu_seconds(container)}
        if args.kernel:
            result["first_cell_s"] = first_cell(url)
        return result
    finally:
        container.remove(force=True)


def summarize_pyspy(raw: str, top: int = 25) -> None:
    """Print the share of samples per frame (inclusive), for the frames that matter most."""
    inclusive = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            # "func (module/path.py:line)" -> "func (path.py)": lines merged
            key = frame.split(":")[0] + ")" if "(" in frame else frame
            key = key.replace("/opt/opuhub/venv/lib/python3.11/site-packages/", "")
            if key not in seen:
                seen.add(key)
                inclusive[key] += n
    print(f"py-spy: {total} samples (100/s over all processes)")
    for key, n in inclusive.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {key}")


def profile(client, args, network: str, hub: FakeHubServer) -> None:
    """One more start under py-spy; its raw stacks land in a host folder bound into the
    container (the container's /tmp is a tmpfs that goes with it)."""
    spy = "/usr/local/bin/py-spy-profile"
    out = Path(tempfile.mkdtemp(prefix="opuhub-pyspy-"))
    out.chmod(0o777)  # written by uid 1000 inside
    kwargs = run_kwargs(args, network, hub)
    # the server only (py-spy needs a Python process to start: opuhub-start is a shell script)
    kwargs["entrypoint"] = ["/usr/bin/tini", "-g", "--", spy, "record", "--subprocesses",
                            "--format", "raw", "--rate", "100", "-o", "/profile/spy.txt",
                            "--"]
    kwargs["volumes"] = {**kwargs["volumes"], str(Path(args.pyspy).resolve()): {"bind": spy, "mode": "ro"},
                         str(out): {"bind": "/profile", "mode": "rw"}}
    container = client.containers.run(**kwargs)
    try:
        url = f"http://{ip_of(container, network)}:8888/user/{USER}/"
        wait_answer(url + "api", container)
        if args.kernel:  # the pre-started kernel's start and a first cell too
            first_cell(url)
        container.kill(signal="SIGINT")  # py-spy writes its file when the child ends
        container.wait(timeout=60)
        raw = (out / "spy.txt").read_text()
    except Exception:
        print(container.logs(tail=120).decode(errors="replace"))
        raise
    finally:
        container.remove(force=True)
    Path(args.pyspy_out).write_text(raw)
    shutil.rmtree(out, ignore_errors=True)
    print(f"py-spy raw stacks: {args.pyspy_out}")
    summarize_pyspy(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", default="opuhub/singleuser:latest")
    parser.add_argument("--stock", action="store_true", help="plain jupyterhub-singleuser")
    parser.add_argument("--kernel", action="store_true", help="also time a first cell")
    parser.add_argument("--pyspy", help="path of a py-spy binary: profile one more start")
    parser.add_argument("--command", help="server command, one string (default: the image's)")
    parser.add_argument("--bind", action="append", default=[], metavar="HOST:CONTAINER",
                        help="bind a host path read-only (try out a change without a rebuild)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--pyspy-out", default="/tmp/profile_start.pyspy.txt")
    args = parser.parse_args()
    client = docker.from_env(timeout=120)
    net = client.networks.create(f"opuhub-profile-{uuid.uuid4().hex[:6]}", driver="bridge",
                                 labels={LABEL: "1"})
    net.reload()
    client.volumes.create(f"{net.name}-home", labels={LABEL: "1"})  # the user's home volume
    gateway = net.attrs["IPAM"]["Config"][0]["Gateway"]
    hub = FakeHubServer(gateway, USER)
    try:
        one_start(client, argparse.Namespace(**{**vars(args), "kernel": False}), net.name,
                  hub)  # warm the page cache: not counted
        results = [one_start(client, args, net.name, hub) for _ in range(args.runs)]
        label = "stock jupyterhub-singleuser" if args.stock else args.image
        for key in ("answer_s", "cpu_s", "first_cell_s"):
            values = [r[key] for r in results if key in r]
            if values:
                print(f"{label}: {key} median {statistics.median(values):.2f} "
                      f"(min {min(values):.2f}, max {max(values):.2f}) over {len(values)} runs")
        if args.pyspy:
            profile(client, args, net.name, hub)
    finally:
        hub.close()
        for c in client.containers.list(all=True, filters={"label": LABEL, "name": "opuhub-profile-"}):
            c.remove(force=True)
        net.remove()
        client.volumes.get(f"{net.name}-home").remove(force=True)


if __name__ == "__main__":
    main()
