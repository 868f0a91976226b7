"""Helpers shared by tests in several folders."""

import json
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import requests
import websocket


def wait_until(predicate: Callable, timeout: float, message: str | Callable[[], str],
               interval: float = 0.2):
    """Call ``predicate()`` until it returns something true and return that; past ``timeout``
    seconds raise TimeoutError naming ``message`` (a string, or a callable giving one: e.g. the
    logs at that moment). The predicate runs at least once, and once more at the deadline, so
    a slow machine never fails a condition that became true during the last sleep."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            what = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, left))


def container_exec(container, cmd: list[str] | str, *, user: str | None = None,
                   timeout: float = 120, ok: tuple[int, ...] = (0,), stderr: bool = True,
                   **kwargs) -> str:
    """Run ``cmd`` in a running Docker ``container`` (docker-py) and return its output;
    AssertionError, with the output, when the exit code is not in ``ok`` or the command
    is still running after ``timeout`` seconds. ``stderr=False``: return stdout only (stderr
    still goes into the failure message). Other keyword arguments go to ``exec_run``."""
    done: dict = {}

    def run():
        try:
            done["result"] = container.exec_run(cmd, user=user or "", demux=not stderr, **kwargs)
        except BaseException as e:  # handed to the caller's thread
            done["error"] = e

    # docker-py's exec_run has no time limit of its own; a daemon thread lets the test go on
    # (the command dies with its container, which the tests remove)
    worker = threading.Thread(target=run, daemon=True, name=f"exec in {container.name}")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AssertionError(f"{cmd!r} in {container.name} still running after {timeout:g}s")
    if "error" in done:
        raise done["error"]
    code, output = done["result"].exit_code, done["result"].output
    if stderr:
        out, err = (output or b"").decode(errors="replace"), ""
    else:
        out, err = ((part or b"").decode(errors="replace") for part in output)
    if code not in ok:
        raise AssertionError(f"{cmd!r} in {container.name} exited {code} (expected "
                             f"{' or '.join(map(str, ok))}):\n{out[-4000:]}{err[-4000:]}")
    return out


def docker_teardown(client, *steps: Callable[[], object]) -> None:
    """Run the clean-up ``steps`` of a fixture that made Docker objects, each one even when one
    before it failed. If the engine no longer answers (it went away mid-run: the tests that
    needed it failed already and said so), what could not be removed is a warning rather than
    a second, misleading failure in the teardown; with the engine up, the first error fails."""
    errors = []
    for step in steps:
        try:
            step()
        except Exception as e:
            errors.append(e)
    if not errors:
        return
    try:
        client.ping()
    except Exception as gone:
        warnings.warn(f"the Docker engine went away ({type(gone).__name__}); {len(errors)} "
                      f"clean-up step(s) could not run: {errors[0]!r}", stacklevel=2)
        return
    raise errors[0]


def binary(shape, seed=0):
    """Random 0/1 input of ``shape`` (uint8), reproducible."""
    return np.random.default_rng(seed).integers(0, 2, shape, dtype=np.uint8)


class StandInDevice:
    """A character device node standing in for /dev/opu0, plus the fake driver's call log."""

    def __init__(self, node: Path, log: Path):
        self.node = node
        self.log = log

    def events(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def event_names(self) -> list[str]:
        return [e["event"] for e in self.events()]


def make_stand_in_node(path: Path, mode: int = 0o666) -> Path:
    """mknod a character device with /dev/null's numbers (harmless if opened)."""
    os.mknod(path, 0o020000 | mode, os.makedev(1, 3))
    os.chmod(path, mode)
    return path


def execute_in_user_kernel(hub_url: str, user: str, token: str, code: str, kernel: str,
                           timeout: float, ca_file: str | None = None) -> dict:
    """Start a kernel in ``user``'s server through the hub's proxy at ``hub_url``, run ``code``
    over the kernel's websocket and return {"stdout": ..., "result": ..., "error": ...}.
    An https hub_url is verified against ``ca_file`` (wss for the websocket)."""
    headers = {"Authorization": f"token {token}"}
    base = f"{hub_url}/user/{user}/api/kernels"
    verify = ca_file or True
    resp = requests.post(base, json={"name": kernel}, headers=headers, timeout=60, verify=verify)
    assert resp.status_code == 201, resp.text
    kernel_id = resp.json()["id"]
    ws_url = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    try:
        return run_on_kernel(f"{ws_url}/{kernel_id}/channels", token, user, code, timeout,
                             sslopt={"ca_certs": ca_file} if ca_file else None)
    finally:
        requests.delete(f"{base}/{kernel_id}", headers=headers, timeout=30, verify=verify)


def run_on_kernel(channels_url: str, token: str, user: str, code: str, timeout: float,
                  store_history: bool = False, sslopt: dict | None = None) -> dict:
    """Run ``code`` over a kernel's websocket (``.../api/kernels/ID/channels``) and return
    {"stdout", "result", "error", "execution_count"} once the reply and the idle status are in."""
    ws = websocket.create_connection(channels_url, header=[f"Authorization: token {token}"],
                                     timeout=timeout, sslopt=sslopt)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": store_history,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        out = {"stdout": "", "result": None, "error": None, "execution_count": None}
        replied = idle = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (replied and idle):
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content.get("name") == "stdout":
                out["stdout"] += content["text"]
            elif kind == "execute_result":
                out["result"] = content["data"].get("text/plain")
            elif kind == "error":
                out["error"] = f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                out["execution_count"], replied = content.get("execution_count"), True
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        if not (replied and idle):
            raise TimeoutError(f"no reply from {user}'s kernel within {timeout}s")
        return out
    finally:
        ws.close()
