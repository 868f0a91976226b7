"""Drive real OPU kernels with jupyter_client, for the kernel tests."""

from __future__ import annotations

import os
import queue
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager


@dataclass
class CellResult:
    status: str
    stdout: str = ""
    stderr: str = ""
    result: str = ""
    ename: str = ""
    evalue: str = ""
    traceback: list = field(default_factory=list)


def execute(client, code: str, timeout: float = 60) -> CellResult:
    """Run ``code`` and collect what a notebook would show."""
    msg_id = client.execute(code, store_history=True)
    out = CellResult(status="")
    while True:
        try:
            msg = client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no output from the kernel for {timeout} s: {code!r}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                out.stdout += content["text"]
            else:
                out.stderr += content["text"]
        elif kind == "execute_result":
            out.result = content["data"].get("text/plain", "")
        elif kind == "error":
            out.ename, out.evalue, out.traceback = (content["ename"], content["evalue"],
                                                    content["traceback"])
        elif kind == "status" and content["execution_state"] == "idle":
            break
    while True:
        reply = client.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    out.status = reply["content"]["status"]
    return out


def wait_for_stream(client, msg_id: str, name: str, text: str, timeout: float) -> str:
    """Read iopub until the cell ``msg_id`` writes ``text`` to stream ``name`` (stdout or
    stderr) and return what that stream said so far; TimeoutError when it does not within
    ``timeout`` seconds, or the cell ends first."""
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        left = deadline - time.monotonic()
        try:
            msg = client.get_iopub_msg(timeout=max(left, 0.01))
        except queue.Empty:
            raise TimeoutError(f"the cell wrote no {text!r} to {name} within {timeout:g}s "
                               f"(it wrote {said[-500:]!r})") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == name:
            said += content["text"]
            if text in said:
                return said
        elif kind == "status" and content["execution_state"] == "idle":
            raise TimeoutError(f"the cell ended before writing {text!r} to {name} "
                               f"(it wrote {said[-500:]!r})")


@contextmanager
def running_kernel(spec_manager: KernelSpecManager, env: dict | None = None,
                   name: str = "opu"):
    """A started kernel and its client; the kernel is shut down afterwards, its output dumped
    on failure."""
    manager = KernelManager(kernel_name=name, kernel_spec_manager=spec_manager)
    kernel_env = {**os.environ, **(env or {})}
    manager.start_kernel(env=kernel_env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield manager, client
    except BaseException:
        print(f"kernel {name} failed; env overrides: {env}", file=sys.stderr)
        raise
    finally:
        client.stop_channels()
        if manager.has_kernel:
            manager.shutdown_kernel(now=False)
