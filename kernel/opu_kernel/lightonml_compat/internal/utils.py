"""``lightonml.internal.utils``: the helpers other modules import from it."""


def blank_fn(*args, **kwargs) -> None:
    """Does nothing (a logging function below the verbosity)."""


def recurse_update(target: dict, update: dict) -> dict:
    """Update ``target`` with ``update`` in place, merging nested dicts key by key."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            recurse_update(target[key], value)
        else:
            target[key] = value
    return target
