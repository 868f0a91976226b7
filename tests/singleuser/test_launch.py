"""opuhub-singleuser: jupyterhub-singleuser without the hub-side imports. Each check runs in a
fresh interpreter: what matters is what gets imported."""

import json
import subprocess
import sys
import textwrap


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_server_module_imports_without_the_hubs_database_layer_nor_the_iri_grammar():
    result = run("""
        import json, sys
        from opuhub_singleuser import launch
        singleuser = launch.prepare()
        import jupyterhub.singleuser.extension
        print(json.dumps({
            "main": callable(singleuser.main),
            "absent": [m for m in ("lark", "jupyterhub.orm", "jupyterhub.roles", "alembic",
                                   "jupyterhub.handlers", "jupyterhub.handlers.base",
                                   "sqlalchemy", "sqlalchemy.exc")
                       if m in sys.modules],
        }))
    """)
    assert result == {"main": True, "absent": []}


def test_the_hub_modules_import_for_real_afterwards():
    result = run("""
        import json
        from opuhub_singleuser import launch
        launch.prepare()
        import jupyterhub.orm, jupyterhub.roles, jupyterhub.handlers.pages, jupyterhub.metrics
        import jupyterhub.log, jupyterhub.scopes, jupyterhub.utils
        print(json.dumps({
            "orm": type(jupyterhub.orm).__name__,
            "user_table": jupyterhub.orm.User.__tablename__,
            # jupyterhub.metrics kept the stand-in: it forwards to the real module
            "metrics_orm_user": jupyterhub.metrics.orm.User is jupyterhub.orm.User,
            "health": jupyterhub.handlers.pages.HealthCheckHandler.__module__,
            "log_health": jupyterhub.log.HealthCheckHandler.__name__,
            # jupyterhub.scopes kept the stand-in for sqlalchemy: it forwards too
            "scopes_inspect": jupyterhub.scopes.sa.inspect is __import__("sqlalchemy").inspect,
            "utils_error": jupyterhub.utils.SQLAlchemyError.__name__,
        }))
    """)
    assert result == {"orm": "module", "user_table": "users", "metrics_orm_user": True,
                      "health": "jupyterhub.handlers.pages",
                      "log_health": "HubHealthCheckStandIn", "scopes_inspect": True,
                      "utils_error": "SQLAlchemyErrorStandIn"}


def test_iri_validation_still_works_and_loads_the_grammar_only_then():
    result = run("""
        import json, sys
        from opuhub_singleuser import launch
        launch.prepare()
        import jsonschema
        before = "lark" in sys.modules
        checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
        validator = jsonschema.Draft202012Validator({"format": "iri"}, format_checker=checker)
        print(json.dumps({"before": before,
                          "good": validator.is_valid("https://example.org/ä"),
                          "bad": validator.is_valid("not an iri"),
                          "after": "lark" in sys.modules}))
    """)
    assert result == {"before": False, "good": True, "bad": False, "after": True}


def test_defer_module_leaves_absent_and_imported_modules_alone():
    result = run("""
        import json, sys
        from opuhub_singleuser.launch import defer_module
        import json as already
        print(json.dumps({"absent": defer_module("no_such_module_here", ("f",)) is None,
                          "imported": defer_module("json", ("dumps",)) is None,
                          "json_is_real": sys.modules["json"] is already}))
    """)
    assert result == {"absent": True, "imported": True, "json_is_real": True}


def test_a_stand_in_is_not_loaded_by_import_probes():
    result = run("""
        import json, sys
        from opuhub_singleuser.launch import defer_module
        defer_module("rfc3987_syntax", ("is_valid_syntax",))
        from rfc3987_syntax import is_valid_syntax  # probes __path__, __spec__...
        hasattr(sys.modules["rfc3987_syntax"], "__file__")
        loaded = "rfc3987_syntax.syntax_helpers" in sys.modules
        print(json.dumps({"loaded_by_probes": loaded,
                          "call": is_valid_syntax("iri", "https://example.org/"),
                          "loaded_after_call": "rfc3987_syntax.syntax_helpers" in sys.modules}))
    """)
    assert result == {"loaded_by_probes": False, "call": True, "loaded_after_call": True}
