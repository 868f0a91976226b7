"""Limits → cgroup files (pure), for both hierarchies."""

import pytest

from opuhub.cgroups import Limits, limit_files, parse_bytes


def test_sizes_use_dockers_units():
    assert parse_bytes("2G") == 2 * 1024**3
    assert parse_bytes("512m") == 512 * 1024**2
    assert parse_bytes("1.5k") == 1536
    assert parse_bytes("0") == 0 and parse_bytes("") == 0
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes("lots")
    with pytest.raises(ValueError):
        parse_bytes("-1G")


def test_v2_files():
    files = limit_files(Limits(2 * 1024**3, 1.5, 512), 2)[""]
    assert files["memory.max"] == str(2 * 1024**3)
    assert files["cpu.max"] == "150000 100000"
    assert files["pids.max"] == "512"
    unlimited = limit_files(Limits(0, 0, 0), 2)[""]
    assert unlimited["memory.max"] == "max" and unlimited["pids.max"] == "max"
    assert unlimited["cpu.max"].startswith("max")


def test_v1_files():
    files = limit_files(Limits(1024**3, 2.0, 64), 1)
    assert files["memory"]["memory.limit_in_bytes"] == str(1024**3)
    assert files["cpu"]["cpu.cfs_quota_us"] == "200000"
    assert files["pids"]["pids.max"] == "64"
