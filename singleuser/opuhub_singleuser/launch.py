"""``opuhub-singleuser``: ``jupyterhub-singleuser`` without the import work it never uses.

Profiled in the single-user container (benchmarks/README.md), most of the server's start-up
CPU went into imports a single-user server does not need to start:

- ``rfc3987_syntax`` (pulled in by jsonschema's format checkers, which jupyter_events loads)
  compiles a Lark grammar for IRIs at import: about a third of the start. Here it is a
  stand-in whose functions import the real module on first call, so IRI validation still works
  when some schema asks for it, and costs nothing otherwise.
- ``jupyterhub.singleuser`` imports the hub's request handlers and database layer
  (``jupyterhub.handlers``, ``jupyterhub.orm``, ``jupyterhub.roles``: SQLAlchemy's ORM and
  alembic) through ``jupyterhub.log``, ``jupyterhub.metrics`` and ``jupyterhub.scopes``, which
  use them only in the hub's own code paths (the hub's health-check handler in a log-level
  test, the hub's periodic metrics, scopes of database objects). While jupyterhub.singleuser is
  imported those modules are stand-ins: ``orm`` and ``roles`` import the real module on first
  use, the health-check handler is a class no handler of a single-user server is. Afterwards
  the real modules import normally for anyone who asks.
- ``jupyterhub.utils`` and ``jupyterhub.scopes`` import SQLAlchemy (about a tenth of what is
  left of the start's imports) for the hub's database code: ``catch_db_error``, which only
  the hub's handlers use, and ``sqlalchemy.inspect`` of database objects, which a single-user
  server never has. While jupyterhub.singleuser is imported, ``sqlalchemy`` is a stand-in
  that imports the real package on first use, and ``SQLAlchemyError`` an exception class of
  its own (no database in this process raises the real one).

Then it runs jupyterhub-singleuser's own entry point with the same arguments: same server,
same configuration, same behaviour.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types

# module -> the functions other modules import from it, loaded on first call
DEFERRED_FUNCTIONS = {"rfc3987_syntax": ("is_valid_syntax", "parse")}


class HubHealthCheckStandIn:
    """Stands for jupyterhub.handlers.pages.HealthCheckHandler in jupyterhub.log: a
    single-user server never serves the hub's health check, so no handler is one."""


class StandIn(types.ModuleType):
    """A module that imports the real one of its name on first use of any attribute (except
    the ones given as ``known``, and dunder probes of the import system, which must not load
    it). The real module then replaces it in ``sys.modules``."""

    def __init__(self, name: str, known: dict | None = None):
        super().__init__(name, f"stand-in for {name} (opuhub_singleuser.launch)")
        self.__dict__.update(known or {})
        self.__dict__["_stand_in_real"] = None

    def _real(self):
        real = self.__dict__["_stand_in_real"]
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
            self.__dict__["_stand_in_real"] = real
        return real

    def __getattr__(self, attr):  # only called for attributes not set on the stand-in
        if attr.startswith("__"):
            # the import system probes __path__ etc. on `from name import f`
            raise AttributeError(attr)
        return getattr(self._real(), attr)


def _deferred_call(module: StandIn, function: str):
    def call(*args, **kwargs):
        return getattr(module._real(), function)(*args, **kwargs)

    call.__name__ = call.__qualname__ = function
    call.__doc__ = f"{module.__name__}.{function}, imported on first call"
    return call


def defer_module(name: str, functions: tuple[str, ...]) -> StandIn | None:
    """Put a stand-in for module ``name`` in ``sys.modules``; its ``functions`` import the real
    module on first call. None (nothing changed) when the module is absent or imported."""
    if name in sys.modules or importlib.util.find_spec(name) is None:
        return None
    stand_in = StandIn(name)
    for function in functions:
        setattr(stand_in, function, _deferred_call(stand_in, function))
    sys.modules[name] = stand_in
    return stand_in


@contextlib.contextmanager
def stand_ins(modules: dict[str, StandIn]):
    """``modules`` in ``sys.modules`` for the duration of the block only (those already imported
    for real are left alone); afterwards their names import the real modules again."""
    placed = {name: m for name, m in modules.items() if name not in sys.modules}
    sys.modules.update(placed)
    try:
        yield
    finally:
        for name, module in placed.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
            parent_name, _, child = name.rpartition(".")
            parent = sys.modules.get(parent_name)
            if parent is not None and parent.__dict__.get(child) is module:
                delattr(parent, child)


class SQLAlchemyErrorStandIn(Exception):
    """Stands for sqlalchemy.exc.SQLAlchemyError in jupyterhub.utils (``catch_db_error``,
    used by the hub's database handlers only): a single-user server has no database."""


def hub_side_stand_ins() -> dict[str, StandIn]:
    pages = StandIn("jupyterhub.handlers.pages", {"HealthCheckHandler": HubHealthCheckStandIn})
    return {
        "sqlalchemy": StandIn("sqlalchemy"),
        "sqlalchemy.exc": StandIn("sqlalchemy.exc", {"SQLAlchemyError": SQLAlchemyErrorStandIn}),
        "jupyterhub.handlers": StandIn("jupyterhub.handlers", {"__path__": [], "pages": pages}),
        "jupyterhub.handlers.pages": pages,
        "jupyterhub.orm": StandIn("jupyterhub.orm"),
        "jupyterhub.roles": StandIn("jupyterhub.roles"),
    }


def import_singleuser():
    """Import jupyterhub.singleuser without the hub's handlers and database layer."""
    if "jupyterhub.singleuser" not in sys.modules:
        with stand_ins(hub_side_stand_ins()):
            importlib.import_module("jupyterhub.singleuser")
    return sys.modules["jupyterhub.singleuser"]


def prepare():
    for name, functions in DEFERRED_FUNCTIONS.items():
        defer_module(name, functions)
    return import_singleuser()


def main() -> None:
    singleuser = prepare()
    sys.argv[0] = "jupyterhub-singleuser"
    sys.exit(singleuser.main())


if __name__ == "__main__":
    main()
