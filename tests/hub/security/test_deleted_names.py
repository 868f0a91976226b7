"""A stranger who is given a deleted user's name does not get that user's files.

Before: an admin deleted ``dana`` (DELETE /hub/api/users/dana, or ``opuhub.accounts delete``);
a stranger signed up as ``dana``, was approved, and her server opened dana's home: the image
``<homes>/.images/dana.ext4`` and the Unix account ``opu-dana`` had stayed. Now the deletion
removes the account and archives the home out of the way (opuhub.retired_homes), still on disk
for the admin; a Docker volume, which cannot be renamed, is refused to any later user of the
name until an admin removes it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from datetime import UTC, datetime

import docker.errors
import pytest

from opuhub import home_quota, unix_accounts
from opuhub.docker_homes import volume_predates
from opuhub.retired_homes import archive_stamp
from tests.helpers import container_exec, docker_teardown
from tests.hub.hubtest import (
    Hub,
    docker_spawner_hub,
    hub_factory,
    hub_root,
    launched_hub,
)
from tests.hub.security.authflows import (
    accounts,
    assert_login_refused,
    issued_passwords,
    log_in,
    logged_in,
    sign_up,
)
from tests.hub.security.test_auth_signup import admin_session, approve
from tests.hub.test_docker_spawner import IMAGE, docker_client, remove_docker_objects, unavailable

SECRET = "dana-private-SECRET"
WRITE = f"open('diary.txt', 'w').write({SECRET!r}); print('written')"
LOOK = ("import os; print(sorted(os.listdir('.')), "
        "open('diary.txt').read() if os.path.exists('diary.txt') else None)")


# --- the archive itself (no hub) -------------------------------------------------------------

def test_the_archive_moves_the_image_and_leftover_files_out_of_reach(tmp_path):
    homes = tmp_path / "homes"
    (homes / ".images").mkdir(parents=True)
    home_quota.image_path(homes, "dana").write_bytes(b"ext4 image")
    (homes / "dana").mkdir()
    (homes / "dana" / "diary.txt").write_text(SECRET)  # a home without a size limit
    (homes / "erin").mkdir()  # a home never written to

    moved = home_quota.archive(homes, "dana", "20261130T101500Z")
    assert moved == [homes / ".images" / ".deleted" / "dana-20261130T101500Z.ext4",
                     homes / ".deleted" / "dana-20261130T101500Z"]
    assert (moved[0].read_bytes(), (moved[1] / "diary.txt").read_text()) == (b"ext4 image", SECRET)
    assert not (homes / "dana").exists() and not home_quota.image_path(homes, "dana").exists()
    for parent in (moved[0].parent, moved[1].parent):
        assert parent.stat().st_mode & 0o777 == 0o700

    assert home_quota.archive(homes, "erin", "20261130T101500Z") == []
    assert not (homes / "erin").exists()
    assert home_quota.archive(homes, "nobody", "20261130T101500Z") == []


def test_the_archive_stamp_is_utc_and_sortable():
    assert archive_stamp(datetime(2026, 11, 30, 10, 15, 0, 999, tzinfo=UTC)) == "20261130T101500Z"
    assert len(archive_stamp()) == len("20261130T101500Z")


@pytest.mark.parametrize("created_at, older", [
    ("2026-11-30T10:14:59Z", True),  # made for the earlier user
    ("2026-11-30T10:15:00Z", False),  # the same second: Docker keeps no fraction
    ("2026-11-30T10:15:07Z", False),
    ("2026-11-30T11:15:07+01:00", False),
    ("2026-11-30T11:14:07+01:00", True),
    ("2026-11-30T10:15:07.123456789Z", False),
    ("yesterday", True),  # unreadable: not handed out
    ("", True),
])
def test_a_volume_older_than_its_user_was_an_earlier_users(created_at, older):
    user_created = datetime(2026, 11, 30, 10, 15, 0, 700_000)  # JupyterHub: UTC, no zone
    assert volume_predates(created_at, user_created) is older


# --- local servers, sign-up (NativeAuthenticator) ------------------------------------------

@hub_factory("deleted-names", ("test_deleted_names.py",))
def make_native_hub(tmp_path_factory):
    """Sign-up with admin approval; no culler (servers must stay up while the test looks)."""
    return Hub(hub_root("deleted-names"), authenticator="native", cull_idle_seconds=0)


@pytest.fixture(scope="module")
def native_hub(tmp_path_factory, hub):  # `hub` launches the hubs of the selected modules
    native = launched_hub("deleted-names", tmp_path_factory)
    yield native
    native.shutdown()


def archived_images(hub, name: str) -> list:
    return sorted((hub.root / "homes" / ".images" / ".deleted").glob(f"{name}-*.ext4"))


def file_in_image(image, path: str) -> str:
    """A file of an ext4 image, read without mounting it (debugfs, read-only)."""
    done = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True,
                          text=True, timeout=60)
    return done.stdout


def account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(f"opu-{name}")
        return True
    except KeyError:
        return False


@pytest.mark.slow
def test_a_stranger_who_signs_up_with_a_deleted_name_gets_an_empty_home(native_hub):
    hub, name = native_hub, "dana"
    assert "sent to the admin" in sign_up(hub, name, "first-dana-passphrase-1").text
    approve(hub, name)
    assert logged_in(hub, name, "first-dana-passphrase-1")
    assert hub.spawn(name, profile="simulator").status_code in (201, 202)
    assert hub.execute(name, hub.user_token(name), WRITE)["stdout"] == "written\n"
    hub.stop_server(name, timeout=60)

    assert hub.api("DELETE", f"/users/{name}").status_code == 204
    assert not account_exists(name)
    assert not home_quota.image_path(hub.root / "homes", name).exists()
    [archived] = archived_images(hub, name)
    assert file_in_image(archived, "/diary.txt") == SECRET  # still there, for the admin only
    assert archived.stat().st_mode & 0o777 == 0o600 and archived.stat().st_uid == 0
    assert f"deleted user {name}: home archived at {archived}" in hub.log()

    # the stranger takes the name
    assert "sent to the admin" in sign_up(hub, name, "stranger-passphrase-2").text
    approve(hub, name)
    assert_login_refused(hub, name, "first-dana-passphrase-1")
    assert logged_in(hub, name, "stranger-passphrase-2")
    assert hub.spawn(name, profile="simulator").status_code in (201, 202)
    seen = hub.execute(name, hub.user_token(name), LOOK)
    assert seen["error"] is None, seen
    assert SECRET not in seen["stdout"] and "diary.txt" not in seen["stdout"], seen
    assert seen["stdout"].rstrip().endswith("None"), seen
    hub.stop_server(name, timeout=60)
    assert archived_images(hub, name) == [archived]


@pytest.mark.slow
def test_a_sign_up_that_became_a_user_is_not_discarded_behind_the_admin_pages_back(native_hub):
    """Upstream's discard link would drop the user without archiving their home."""
    hub, name = native_hub, "erin"
    assert "sent to the admin" in sign_up(hub, name, "erin-passphrase-12").text
    approve(hub, name)
    assert logged_in(hub, name, "erin-passphrase-12")  # now a hub user
    approve(hub, name)  # the same link takes the approval back
    admin = admin_session(hub)
    resp = admin.get(f"{hub.url}/hub/discard/{name}", timeout=30, allow_redirects=False)
    assert resp.status_code == 409 and "delete them on the admin page" in resp.text
    assert hub.api("GET", f"/users/{name}").status_code == 200
    # a sign-up that never logged in is discarded as before
    assert "sent to the admin" in sign_up(hub, "frank", "frank-passphrase-12").text
    resp = admin.get(f"{hub.url}/hub/discard/frank", timeout=30, allow_redirects=False)
    assert resp.status_code == 302
    assert "frank" not in admin.get(f"{hub.url}/hub/authorize", timeout=30).text


# --- local servers, workshop accounts (the session hub, as `make run` starts it) -----------

@pytest.mark.slow
def test_workshop_accounts_created_again_start_empty_and_a_busy_account_is_not_deleted(hub):
    name = "gone-01"
    first = issued_passwords(accounts(hub, "create", "--count", "1", "--prefix", "gone-"))
    assert hub.spawn(name, profile="simulator").status_code in (201, 202)
    home = hub.root / "homes" / name
    account = unix_accounts.lookup(name)
    (home / "diary.txt").write_text(SECRET)
    os.chown(home / "diary.txt", account.uid, account.gid)
    hub.stop_server(name, timeout=60)

    # one of the account's processes still runs: the deletion is refused, nothing moves
    straggler = subprocess.Popen(["sleep", "120"], user=account.uid, group=account.gid,
                                 cwd="/", start_new_session=True)
    try:
        refused = accounts(hub, "delete", "--count", "1", "--prefix", "gone-")
        assert refused.returncode != 0
        assert "was not deleted: their home could not be archived" in refused.stderr
        assert hub.api("GET", f"/users/{name}").status_code == 200
        assert account_exists(name) and home_quota.image_path(hub.root / "homes", name).exists()
        assert logged_in(hub, name, first[name])  # the password was kept with the account
    finally:
        straggler.send_signal(signal.SIGKILL)
        straggler.wait()

    deleted = accounts(hub, "delete", "--count", "1", "--prefix", "gone-")
    assert deleted.returncode == 0, deleted.stderr
    assert not account_exists(name)
    [archived] = archived_images(hub, name)
    assert file_in_image(archived, "/diary.txt") == SECRET

    again = issued_passwords(accounts(hub, "create", "--count", "1", "--prefix", "gone-"))
    assert again[name] != first[name]
    assert_login_refused(hub, name, first[name])
    assert hub.spawn(name, profile="simulator").status_code in (201, 202)
    assert os.path.ismount(home) and not (home / "diary.txt").exists()
    hub.stop_server(name, timeout=60)
    assert log_in(hub, name, again[name]).status_code == 302


def test_debugfs_reads_images_here():
    """The checks above read archived images with debugfs (e2fsprogs, like mkfs.ext4)."""
    assert shutil.which("debugfs"), "debugfs (e2fsprogs) is needed: apt-get install e2fsprogs"


# --- Docker named volumes (cannot be renamed: refused to a later user of the name) -----------

VOLUME_ONLY = """
c.OPUDockerSpawner.home_storage = "volume"  # as a hub inside a container has it
"""


@hub_factory("deleted-names-docker", ("test_deleted_names.py",))
def make_volume_hub(tmp_path_factory):
    if docker_client() is None:
        return None
    root = hub_root("deleted-names-docker")
    return docker_spawner_hub(root, VOLUME_ONLY, image=IMAGE, hardware_image=IMAGE)


@pytest.fixture(scope="module")
def volume_hub(tmp_path_factory, hub):
    client = docker_client()
    if client is None:
        unavailable(f"no Docker engine with the image {IMAGE}")
    volume_hub = launched_hub("deleted-names-docker", tmp_path_factory)
    yield volume_hub, client

    def remove_container():
        try:
            client.api.remove_container("jupyter-volgone", force=True)
        except docker.errors.NotFound:
            pass

    docker_teardown(client, remove_container, volume_hub.shutdown,
                    lambda: remove_docker_objects(client, volume_hub, "volgone"))


def in_container(client, user: str, command: str) -> str:
    return container_exec(client.containers.get(f"jupyter-{user}"), ["/bin/sh", "-c", command],
                          user="1000")


@pytest.mark.docker
@pytest.mark.slow
def test_a_deleted_users_volume_is_refused_to_the_next_user_of_the_name(volume_hub):
    hub, client = volume_hub
    name, volume = "volgone", "opuhub-home-volgone"
    hub.create_users(name)
    assert hub.spawn(name, profile="simulator", timeout=180).status_code in (201, 202)
    in_container(client, name, f"echo {SECRET} > /home/jovyan/diary.txt")
    hub.stop_server(name, timeout=60)
    assert hub.api("DELETE", f"/users/{name}").status_code == 204
    assert f"their home stays in the Docker volume {volume}" in hub.log()

    hub.create_users(name)  # someone else, given the name
    resp = hub.api("POST", f"/users/{name}/server", json={"profile": "simulator"})
    assert resp.status_code == 409, resp.text
    assert f"the Docker volume {volume} holds the files of an earlier user" in resp.json()["message"]
    assert hub.server_model(name) is None
    assert not client.api.containers(all=True, filters={"name": f"jupyter-{name}"})
    assert client.volumes.get(volume)  # kept for the admin

    client.volumes.get(volume).remove()  # the admin clears it: a fresh home
    assert hub.spawn(name, profile="simulator", timeout=180).status_code in (201, 202)
    assert "diary.txt" not in in_container(client, name, "ls -a /home/jovyan")
    hub.stop_server(name, timeout=60)
