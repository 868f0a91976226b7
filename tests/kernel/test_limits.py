"""Caps on the simulator's work (OPU_SIMULATOR_MAX_*): one cell must not hold a core all day.

The attack is finding 11's cell, ``OPU(n_components=10**9).transform(x)``: before these caps it
was accepted and drew its random matrix for hours.
"""

import re

import numpy as np
import pytest

from opu_kernel import OPU
from opu_kernel.errors import SimulatorLimitError
from opu_kernel.limits import DRAW_COST, SimulatorLimits, check_work, transform_work
from tests.helpers import binary
from tests.kernel.kernel_client import execute, running_kernel

MAX_N_COMPONENTS = "OPU_SIMULATOR_MAX_N_COMPONENTS"
MAX_WORK = "OPU_SIMULATOR_MAX_WORK"


def assert_says_how_to_get_more(message: str, variable: str) -> None:
    assert variable in message
    assert "admin" in message and "'OPU hardware' profile" in message


def test_too_many_components_is_refused_at_construction(monkeypatch):
    monkeypatch.setenv(MAX_N_COMPONENTS, "100000")
    with pytest.raises(SimulatorLimitError) as info:
        OPU(n_components=10**9)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "n_components=1,000,000,000" in message and "limit of 100,000" in message
    assert "n_components <= 100,000" in message
    assert_says_how_to_get_more(message, MAX_N_COMPONENTS)
    assert OPU(n_components=100_000).n_components == 100_000  # the limit itself is allowed


def test_setting_too_many_components_is_refused_and_the_opu_stays_usable(monkeypatch):
    monkeypatch.setenv(MAX_N_COMPONENTS, "5000")
    opu = OPU(n_components=1000, disable_pbar=True)
    opu.fit1d(n_features=64)
    with pytest.raises(SimulatorLimitError, match="n_components=5,001 is above"):
        opu.n_components = 5001
    assert opu.n_components == 1000
    assert opu.transform(binary((3, 64))).shape == (3, 1000)


def test_a_limit_set_after_construction_stops_fit_and_transform_before_drawing(monkeypatch):
    opu = OPU(n_components=20_000, disable_pbar=True)
    opu.fit1d(n_features=32)
    monkeypatch.setenv(MAX_N_COMPONENTS, "10000")
    with pytest.raises(SimulatorLimitError, match="limit of 10,000"):
        opu.transform(binary(32))
    with pytest.raises(SimulatorLimitError, match="limit of 10,000"):
        opu.fit1d(n_features=32)
    assert not opu.device.matrix_allocated and opu.last_context is None
    opu.n_components = 10_000
    assert opu.transform(binary(32)).shape == (10_000,)


def test_finding_11_one_row_on_a_billion_components_is_refused_before_computing(monkeypatch):
    monkeypatch.setenv(MAX_WORK, "1e12")
    opu = OPU(n_components=10**9, disable_pbar=True)  # no component cap here: the work cap acts
    opu.fit1d(n_features=1000)
    with pytest.raises(SimulatorLimitError) as info:
        opu.transform(binary(1000))
    message = str(info.value)
    # n_samples × n_features × n_components alone is 1e12, under the cap; drawing the matrix
    # (which is what took hours) is what puts it over.
    assert "1 row × 1,000 features × 1,000,000,000 components" in message
    assert "plus drawing the 1,000 × 1,000,000,000 random matrix" in message
    assert f"{1000 * 10**9 * (1 + DRAW_COST):.4g} multiply-adds" in message
    assert "limit of 1e+12" in message
    assert "split X" not in message  # batching cannot help a single row
    assert f"opu.n_components = {10**12 // (1000 * (1 + DRAW_COST)):,} or less" in message
    assert_says_how_to_get_more(message, MAX_WORK)
    assert not opu.device.matrix_allocated and opu.last_context is None


def test_a_large_batch_is_refused_with_a_batch_size_that_fits(monkeypatch):
    n_features, n_components = 100, 1000
    X = binary((5000, n_features))
    expected = OPU(n_components=n_components, disable_pbar=True).fit_transform1d(X)
    # Room for 2000 rows, drawing the matrix included.
    monkeypatch.setenv(MAX_WORK, str(n_features * n_components * (2000 + DRAW_COST)))
    opu = OPU(n_components=n_components, disable_pbar=True)
    opu.fit1d(X)
    for method in (opu.transform, opu.linear_transform):
        with pytest.raises(SimulatorLimitError) as info:
            method(X)
        message = str(info.value)
        assert "5,000 rows × 100 features × 1,000 components" in message
        assert f"limit of {n_features * n_components * (2000 + DRAW_COST):,}" in message
        assert "Split X into batches of at most 2,000 rows" in message
        assert "np.array_split(X, 3)" in message
        assert_says_how_to_get_more(message, MAX_WORK)
    assert not opu.device.matrix_allocated and opu.last_context is None
    rows = int(re.search(r"at most ([\d,]+) rows", message).group(1).replace(",", ""))
    batches = [opu.transform(batch) for batch in np.array_split(X, -(-len(X) // rows))]
    np.testing.assert_array_equal(np.concatenate(batches), expected)


def test_drawing_is_counted_only_when_the_call_draws(monkeypatch):
    opu = OPU(n_components=500, disable_pbar=True, streaming=False)
    X = binary((10, 50))
    opu.fit1d(X)
    monkeypatch.setenv(MAX_WORK, str(10 * 50 * 500))  # exactly the multiply-adds
    with pytest.raises(SimulatorLimitError, match="plus drawing"):
        opu.transform(X)
    monkeypatch.delenv(MAX_WORK)
    opu.transform(X)  # draws H and holds it
    monkeypatch.setenv(MAX_WORK, str(10 * 50 * 500))
    assert opu.transform(X).shape == (10, 500)  # held: nothing to draw, within the cap
    with pytest.raises(SimulatorLimitError, match="at most 10 rows"):
        opu.transform(binary((11, 50)))

    streamed = OPU(n_components=500, disable_pbar=True, streaming=True)
    streamed.fit1d(X)
    monkeypatch.delenv(MAX_WORK)
    streamed.transform(X)
    monkeypatch.setenv(MAX_WORK, str(10 * 50 * 500))
    with pytest.raises(SimulatorLimitError, match="plus drawing"):
        streamed.transform(X)  # streaming draws H on every call


def test_unset_or_zero_means_no_cap_and_bad_values_are_named(monkeypatch):
    assert SimulatorLimits.from_env({}) == SimulatorLimits(None, None)
    assert SimulatorLimits.from_env({MAX_N_COMPONENTS: "0", MAX_WORK: ""}) == SimulatorLimits()
    assert SimulatorLimits.from_env({MAX_WORK: "2.5e9"}).max_work == 2_500_000_000
    monkeypatch.setenv(MAX_N_COMPONENTS, "0")
    monkeypatch.setenv(MAX_WORK, "0")
    opu = OPU(n_components=30_000, disable_pbar=True)
    assert opu.fit_transform1d(binary((20, 100))).shape == (20, 30_000)
    for bad in ("lots", "-5", "1.5", "inf"):
        monkeypatch.setenv(MAX_WORK, bad)
        with pytest.raises(SimulatorLimitError, match=f"{MAX_WORK}='{re.escape(bad)}' must be"):
            opu.transform(binary(100))
    monkeypatch.setenv(MAX_WORK, "lots")
    assert MAX_WORK in opu.describe()["limits"]  # %opu shows the bad setting, and works


def test_work_arithmetic():
    assert transform_work(3, 10, 100, draws=False) == 3000
    assert transform_work(3, 10, 100, draws=True) == 1000 * (3 + DRAW_COST)
    check_work(10**6, 10**3, 10**4, True, SimulatorLimits())  # no cap: anything goes
    check_work(2, 10, 100, False, SimulatorLimits(max_work=2000))  # at the cap: allowed
    with pytest.raises(SimulatorLimitError, match="Use fewer features"):
        check_work(1, 10, 1, True, SimulatorLimits(max_work=5))


def test_limits_do_not_apply_to_the_hardware(stand_in_opu, monkeypatch):
    monkeypatch.setenv(MAX_N_COMPONENTS, "10")
    monkeypatch.setenv(MAX_WORK, "1")
    with OPU(n_components=1000, max_n_features=64, backend="hardware") as opu:
        opu.n_components = 2000
        opu.fit1d(n_features=64)
        assert opu.transform(binary((5, 64))).shape == (5, 2000)
        assert "max_work" not in opu.describe()
    assert "transform1" in stand_in_opu.event_names()


def test_the_kernel_refuses_clearly_and_survives(opu_kernelspecs):
    env = {"OPU_N_COMPONENTS": str(10**9), MAX_N_COMPONENTS: "50000", MAX_WORK: "1e10"}
    with running_kernel(opu_kernelspecs, env) as (_, client):
        execute(client, "import numpy as np\nprecious = 42")
        # The preloaded opu, configured above the cap, gives the same clear error.
        cell = execute(client, "opu.fit1d(n_features=1000)")
        assert cell.ename == "SimulatorLimitError", cell.traceback
        assert "n_components=1,000,000,000 is above this server's limit of 50,000" in cell.evalue
        assert "OPU_N_COMPONENTS=1000000000" in cell.evalue
        assert_says_how_to_get_more(cell.evalue, MAX_N_COMPONENTS)
        cell = execute(client, "OPU(n_components=10**9)")
        assert cell.ename == "SimulatorLimitError" and "limit of 50,000" in cell.evalue
        cell = execute(client, "mine = OPU(n_components=50_000, disable_pbar=True)\n"
                               "mine.fit1d(n_features=1000)\n"
                               "X = np.ones((100_000, 1000), dtype=np.uint8)\n"
                               "mine.transform(X)")
        assert cell.ename == "SimulatorLimitError", cell.traceback
        assert "100,000 rows × 1,000 features × 50,000 components" in cell.evalue
        assert "limit of 1e+10" in cell.evalue and "Use fewer components" in cell.evalue
        cell = execute(client, "mine.n_components = 10**9")
        assert cell.ename == "SimulatorLimitError"
        cell = execute(client, "mine.n_components = 1000\n"
                               "print(precious, mine.transform(X[:9000]).shape)")
        assert cell.stdout.strip() == "42 (9000, 1000)", cell.traceback
        cell = execute(client, "%opu")
        assert "max_work" in cell.stdout and "10,000,000,000" in cell.stdout
