"""Which user names the hub accepts, and every name derived from one.

Attendees pick or are given names that end up in container names, volume names, home
directories and Unix accounts. Each derivation must be injective (two users never map to one
thing) and safe as a path or account name, so the hub accepts one documented alphabet only:

    lower-case ASCII letters and digits, '.', '_' and '-'; first character a letter or a digit;
    at most 28 characters (the Unix account ``opu-<name>`` must fit Linux's 32).

Control characters, spaces, '/', upper case after normalisation and every non-ASCII character
(look-alikes such as 'ј' for 'j') are refused. Within this alphabet each derived name is the
user name with a fixed prefix, so injectivity holds by construction.
"""

from __future__ import annotations

import re

MAX_LENGTH = 28
PATTERN = rf"^[a-z0-9][a-z0-9._-]{{0,{MAX_LENGTH - 1}}}\Z"
_VALID = re.compile(PATTERN)
UNIX_PREFIX = "opu-"
RULE = (
    f"user names are 1-{MAX_LENGTH} characters: lower-case letters a-z, digits, '.', '_' and '-', "
    "starting with a letter or a digit"
)


class InvalidUsername(ValueError):
    """A name outside the hub's alphabet; the message says what is allowed."""


def normalize(name: str) -> str:
    """What the authenticators store: the name lower-cased (as JupyterHub does), nothing more.

    No Unicode folding on purpose: folding would make look-alikes *equal* to real names;
    refusing them (``validate``) is the safe answer."""
    return name.lower()


def is_valid(name: str) -> bool:
    return isinstance(name, str) and _VALID.fullmatch(name) is not None


def validate(name: str) -> str:
    """``name`` if it is in the alphabet, else :class:`InvalidUsername` saying why."""
    if not is_valid(name):
        raise InvalidUsername(f"invalid user name {name!r}: {RULE}")
    return name


def unix_account(name: str) -> str:
    """The Unix account of a hub user in local multi-user mode: ``opu-<name>``."""
    return UNIX_PREFIX + validate(name)


def home_dir_name(name: str) -> str:
    """The directory (or volume suffix) holding a user's files: the name itself."""
    return validate(name)
