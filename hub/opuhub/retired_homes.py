"""What becomes of a deleted user's home and Unix account: a name is not a key to old files.

Homes, volumes and Unix accounts are named after the user. If deleting ``dana`` left them in
place, whoever is later created or signs up as ``dana`` (a stranger, with NativeAuthenticator)
would be handed her files. So when a user is deleted (admin page, ``DELETE
/hub/api/users/NAME``, ``python -m opuhub.accounts delete``), before the hub forgets the name:

- local servers: the Unix account ``opu-<name>`` is removed (userdel refuses while one of its
  processes still runs) and the home is archived: unmounted, its image moved to
  ``<homes>/.images/.deleted/<name>-<UTC time>.ext4`` (files of a home without a size limit to
  ``<homes>/.deleted/<name>-<UTC time>``), readable by root only;
- Docker with size-limited homes on the host: the home is archived the same way;
- Docker named volumes (``opuhub-home-<name>``): Docker cannot rename a volume and copying it
  could take long, so it stays where it is, and the spawner refuses a server to any later user
  of that name while it exists (a home volume older than its user was someone else's; see
  :func:`opuhub.docker_homes.volume_predates`). The admin removes it (``docker volume rm``) or
  copies it aside first; the hub logs this at the deletion.

Every OPU Hub authenticator calls :func:`retire` first thing in ``delete_user``, which
JupyterHub calls for every deletion after stopping the user's servers. If it fails the deletion
is refused with the reason (HTTP 500), since the name would otherwise be free while the old
home still waits under it.
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from pathlib import Path

from tornado import web

from . import home_quota, unix_accounts, usernames


def archive_stamp(now: datetime | None = None) -> str:
    """``20261130T101500Z``: when the home was archived, sortable, safe in a file name."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def retire_local(homes_dir: Path, name: str, stamp: str) -> list[Path]:
    """Remove ``name``'s Unix account, then archive the home (blocking: run in a thread).

    The account goes first: userdel fails while the user still runs a process, and the home
    then stays in place for the user, who is not deleted."""
    unix_accounts.remove(name)
    return home_quota.archive(homes_dir, usernames.home_dir_name(name), stamp)


async def retire(user, log) -> None:
    """Archive what ``user`` (a JupyterHub User) leaves behind; HTTP 500 saying why if it fails."""
    from .local_spawner import OPULocalSpawner

    spawner = user.spawner
    stamp = archive_stamp()
    try:
        if isinstance(spawner, OPULocalSpawner):
            homes = Path(spawner.homes_dir).resolve()
            moved = await asyncio.to_thread(retire_local, homes, user.name, stamp)
        elif hasattr(spawner, "retire_home"):
            moved = spawner.retire_home(stamp)
            moved = await moved if inspect.isawaitable(moved) else moved
        else:
            return  # a spawner of the deployer's own: its homes are its business
    except Exception as e:
        log.error("could not archive the home of %s, so it is not deleted: %s", user.name, e)
        raise web.HTTPError(
            500, f"{user.name} was not deleted: their home could not be archived ({e}). "
            "A later user of this name would otherwise get their files.") from None
    for path in moved:
        log.info("deleted user %s: home archived at %s", user.name, path)
