"""opuhub-backup (ansible/roles/opuhub_backup/files), without Docker: which backups are kept,
what is left out, and a real create -> restore of a state directory whose SQLite databases are
being written (homes are covered by the deployment test)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sqlite3
from datetime import UTC, datetime

import pytest

from .ansiblerun import ROLES

SCRIPT = ROLES / "opuhub_backup" / "files" / "opuhub-backup"


@pytest.fixture(scope="module")
def tool():
    loader = importlib.machinery.SourceFileLoader("opuhub_backup_tool", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_backup_names_sort_in_time_order(tool):
    name = tool.backup_name(datetime(2026, 11, 29, 3, 17, 5, tzinfo=UTC))
    assert name == "20261129T031705Z"
    names = ["20261130T031700Z", ".20261201T031700Z.partial", "notes.txt", "20261129T031700Z"]
    assert tool.backups_in(names) == ["20261129T031700Z", "20261130T031700Z"]


def test_prune_keeps_the_newest(tool):
    names = [f"202611{d:02d}T031700Z" for d in range(1, 11)] + [".20261111T031700Z.partial"]
    assert tool.to_prune(names, 7) == ["20261101T031700Z", "20261102T031700Z", "20261103T031700Z"]
    assert tool.to_prune(names[:3], 7) == []
    with pytest.raises(ValueError):
        tool.to_prune(names, 0)


def test_home_volumes_and_skipped_files(tool):
    listed = ["opuhub-home-alice", "opuhub-home-", "x-opuhub-home-bob", "opuhub-hub-state"]
    assert tool.home_volumes(listed, "opuhub-home-") == ["opuhub-home-alice"]
    for name in ("jupyterhub.sqlite-journal", "x.sqlite-wal", "jupyterhub.pid", "a.tmp"):
        assert tool.is_skipped(name)
    assert not tool.is_skipped("jupyterhub.sqlite") and tool.is_database("opu_leases.sqlite")


def _config(tmp_path, keep=2):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = tmp_path / "backup.json"
    path.write_text(json.dumps({
        "state_dir": str(state), "backup_dir": str(tmp_path / "backups"), "keep": keep,
        "hub_container": "opuhub-ansible-test-absent-hub", "helper_image": "none",
        "homes": False, "home_prefix": "opuhub-home-"}))
    return state, path


def test_create_then_restore_state(tool, tmp_path, monkeypatch):
    state, config = _config(tmp_path)
    db = sqlite3.connect(state / "opu_leases.sqlite")
    db.execute("CREATE TABLE usage (username TEXT)")
    db.execute("INSERT INTO usage VALUES ('before')")
    db.commit()
    (state / "admin-password").write_text("secret\n")
    (state / "admin-password").chmod(0o600)
    (state / "jupyterhub.pid").write_text("1\n")
    # a writer holds an open transaction while the backup runs: the copy is the last commit
    db.execute("INSERT INTO usage VALUES ('uncommitted')")

    calls = []
    monkeypatch.setattr(tool, "docker", lambda *a, **k: calls.append(a) or
                        type("R", (), {"returncode": 1, "stdout": "", "stderr": "no such"})())
    assert tool.main(["--config", str(config), "create"]) == 0
    db.rollback()
    [made] = (tmp_path / "backups").iterdir()
    assert tool.NAME.match(made.name)
    assert (tmp_path / "backups").stat().st_mode & 0o777 == 0o700
    manifest = json.loads((made / "manifest.json").read_text())
    assert sorted(manifest["state_files"]) == ["admin-password", "opu_leases.sqlite"]
    assert (made / "state" / "admin-password").stat().st_mode & 0o777 == 0o600
    copy = sqlite3.connect(made / "state" / "opu_leases.sqlite")
    assert copy.execute("SELECT username FROM usage").fetchall() == [("before",)]
    copy.close()

    # after the backup: more rows, a lost password file; restore puts the backup back
    db.execute("INSERT INTO usage VALUES ('after')")
    db.commit()
    db.close()
    (state / "admin-password").unlink()
    (state / "opu_leases.sqlite-journal").write_text("stale")
    assert tool.main(["--config", str(config), "restore", "latest"]) == 0
    assert (state / "admin-password").read_text() == "secret\n"
    rows = sqlite3.connect(state / "opu_leases.sqlite").execute("SELECT username FROM usage")
    assert rows.fetchall() == [("before",)]
    assert not (state / "opu_leases.sqlite-journal").exists()
    # the hub container was looked up (absent here: nothing to stop or start)
    assert calls and calls[0][:2] == ("container", "inspect")


def test_keep_removes_the_oldest_and_restore_refuses_unknown(tool, tmp_path, monkeypatch):
    state, config = _config(tmp_path, keep=2)
    (state / "cli-token").write_text("t\n")
    names = iter(["20261101T000000Z", "20261102T000000Z", "20261103T000000Z"])
    monkeypatch.setattr(tool, "backup_name", lambda now: next(names))
    for _ in range(3):
        assert tool.main(["--config", str(config), "create"]) == 0
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [
        "20261102T000000Z", "20261103T000000Z"]
    assert tool.main(["--config", str(config), "restore", "20261101T000000Z"]) == 1
    assert tool.main(["--config", str(tmp_path / "missing.json"), "list"]) == 1
