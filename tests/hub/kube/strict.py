"""Strict parsing of Kubernetes objects into the typed models of the Kubernetes Python client
(kubernetes_asyncio, the client KubeSpawner uses; its models are generated from the same
OpenAPI document as the `kubernetes` package's).

The client's own deserializer ignores keys it does not know, so a misspelt field
(``readOnlyRootFileSystem``) would pass unnoticed and be dropped by the API server. Here every
key must be a field of its model, every value of the field's type, and each model is built,
so its own checks (required fields, allowed values) run too.
"""

from __future__ import annotations

import re

from kubernetes_asyncio import client

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": float}
# Quantities (resources.limits / requests) are strings in the models; the API server also
# accepts JSON numbers there, which is how KubeSpawner writes cpu and memory limits
QUANTITY_PARENTS = ("limits", "requests")


class UnknownField(ValueError):
    pass


def parse(data, type_name: str, path: str = "$", quantity: bool = False):
    """``data`` (the API's camelCase dict) as an instance of ``type_name`` (e.g. "V1Pod");
    raises UnknownField naming the path of the first key or value that does not fit."""
    if type_name == "object":
        return data
    if data is None:
        return None
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(data, list):
            raise UnknownField(f"{path}: a list was expected, got {type(data).__name__}")
        return [parse(_present(item, f"{path}[{i}]"), match[1], f"{path}[{i}]")
                for i, item in enumerate(data)]
    if match := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(data, dict):
            raise UnknownField(f"{path}: a mapping was expected, got {type(data).__name__}")
        quantities = path.rsplit(".", 1)[-1] in QUANTITY_PARENTS
        return {key: parse(_present(value, f"{path}.{key}"), match[1], f"{path}.{key}", quantities)
                for key, value in data.items()}
    if type_name == "datetime":
        return data
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        if quantity and isinstance(data, int | float) and not isinstance(data, bool):
            return data
        if not isinstance(data, expected) or (expected is int and isinstance(data, bool)):
            raise UnknownField(f"{path}: {type_name} expected, got {data!r}")
        return data
    model = getattr(client, type_name)
    if not isinstance(data, dict):
        raise UnknownField(f"{path}: a {type_name} mapping was expected, got {data!r}")
    by_key = {key: attr for attr, key in model.attribute_map.items()}
    kwargs = {}
    for key, value in data.items():
        if key not in by_key:
            raise UnknownField(f"{path}: {type_name} has no field {key!r}")
        attr = by_key[key]
        kwargs[attr] = parse(value, model.openapi_types[attr], f"{path}.{key}")
    try:
        return model(**kwargs)
    except ValueError as e:
        raise UnknownField(f"{path}: {e}") from None


def _present(value, path: str):
    # null is "unset" for a field, but never an entry of a list or a map (a label, a limit)
    if value is None:
        raise UnknownField(f"{path}: null is not a value here")
    return value


KINDS = {
    ("v1", "Pod"): "V1Pod",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
}


def parse_manifest(obj: dict):
    """A whole manifest (apiVersion + kind) as its model."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in KINDS:
        raise UnknownField(f"no model known here for {key}")
    return parse(obj, KINDS[key], f"{key[1]} {obj.get('metadata', {}).get('name')}")
