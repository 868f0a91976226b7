"""The shared test helpers that decide whether a test passes: wait_until, container_exec and
docker_teardown (tests/helpers.py)."""

import threading
import time
from types import SimpleNamespace

import pytest

from tests.helpers import container_exec, docker_teardown, wait_until


def test_wait_until_returns_the_first_true_value_and_names_what_it_waited_for():
    calls = iter([None, 0, "ready"])
    assert wait_until(lambda: next(calls), 5, "three calls", interval=0.01) == "ready"
    with pytest.raises(TimeoutError, match=r"timed out after 0.05s waiting for the moon \(late\)"):
        wait_until(lambda: False, 0.05, lambda: "the moon (late)", interval=0.01)


class FakeContainer:
    """exec_run as docker-py answers it: (exit_code, output), output split when demux."""

    name = "fake"

    def __init__(self, code, out=b"", err=b"", hang: threading.Event | None = None):
        self.code, self.out, self.err, self.hang = code, out, err, hang

    def exec_run(self, cmd, user="", demux=False, **kwargs):
        if self.hang is not None:
            self.hang.wait(10)
        output = (self.out, self.err) if demux else self.out + self.err
        return SimpleNamespace(exit_code=self.code, output=output)


def test_container_exec_fails_on_an_unexpected_exit_code_with_the_output():
    assert container_exec(FakeContainer(0, b"hello\n"), ["echo"]) == "hello\n"
    assert container_exec(FakeContainer(0, b"out", b"noise"), ["x"], stderr=False) == "out"
    with pytest.raises(AssertionError, match=r"(?s)exited 2 \(expected 0\):.*no such file"):
        container_exec(FakeContainer(2, b"", b"ls: no such file"), ["ls", "/x"], stderr=False)
    assert container_exec(FakeContainer(1, b"absent"), ["test", "-e", "/x"], ok=(1,)) == "absent"


def test_container_exec_fails_on_a_command_that_does_not_end():
    release = threading.Event()
    started = time.monotonic()
    try:
        with pytest.raises(AssertionError, match="still running after 0.05s"):
            container_exec(FakeContainer(0, hang=release), ["sleep", "infinity"], timeout=0.05)
        assert time.monotonic() - started < 5
    finally:
        release.set()


class FakeClient:
    def __init__(self, engine_up: bool):
        self.engine_up = engine_up

    def ping(self):
        if not self.engine_up:
            raise ConnectionError("Connection refused")
        return True


def test_docker_teardown_runs_every_step_and_warns_only_when_the_engine_is_gone():
    ran = []

    def broken():
        ran.append("broken")
        raise ConnectionError("the engine is gone")

    with pytest.warns(UserWarning, match="Docker engine went away"):
        docker_teardown(FakeClient(engine_up=False), broken, lambda: ran.append("next"))
    assert ran == ["broken", "next"]
    with pytest.raises(ConnectionError):  # the engine answers: a real clean-up failure
        docker_teardown(FakeClient(engine_up=True), broken)
