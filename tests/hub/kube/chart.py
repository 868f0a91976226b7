"""What the Zero to JupyterHub chart (4.4.0) makes of kubernetes/values.yaml for the spawner.

The chart's jupyterhub_config.py turns ``singleuser.*`` values into ``c.KubeSpawner`` settings
and passes ``hub.config`` through. Helm and the chart are not available here, so this restates
that mapping for the keys our values use (read from the chart's source at tag 4.4.0), and
:data:`MAPPED` lists them: a test fails when values.yaml uses a singleuser key this file does
not map, rather than silently testing less than the chart would do.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[3]
VALUES = ROOT / "kubernetes" / "values.yaml"
DEVICE_PLUGIN = ROOT / "kubernetes" / "opu-device-plugin.yaml"

# singleuser.* keys mapped below (the others in values.yaml concern objects, not the spawner)
MAPPED = {
    "image", "cmd", "defaultUrl", "startTimeout", "uid", "fsGid", "allowPrivilegeEscalation",
    "cloudMetadata", "storage", "memory", "cpu", "profileList", "extraLabels",
}
NOT_SPAWNER = {"networkPolicy"}  # the chart renders a NetworkPolicy from it
# the chart's defaults that reach the spawner when values.yaml leaves them alone
CHART_DEFAULTS = {"extraLabels": {"hub.jupyter.org/network-access-hub": "true"}}


def load_values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def spawner_config(values: dict) -> Config:
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    su = {**CHART_DEFAULTS, **copy.deepcopy(values["singleuser"])}
    c.KubeSpawner.image = f"{su['image']['name']}:{su['image']['tag']}"
    c.Spawner.cmd = su["cmd"]
    c.Spawner.default_url = su["defaultUrl"]
    c.KubeSpawner.start_timeout = su["startTimeout"]
    c.KubeSpawner.uid = su["uid"]
    c.KubeSpawner.fs_gid = su["fsGid"]
    c.KubeSpawner.allow_privilege_escalation = su["allowPrivilegeEscalation"]
    c.KubeSpawner.extra_labels = su["extraLabels"]
    c.KubeSpawner.mem_limit = su["memory"]["limit"]
    c.KubeSpawner.mem_guarantee = su["memory"]["guarantee"]
    c.KubeSpawner.cpu_limit = su["cpu"]["limit"]
    c.KubeSpawner.cpu_guarantee = su["cpu"]["guarantee"]
    c.KubeSpawner.profile_list = su["profileList"]
    storage = su["storage"]
    assert storage["type"] == "dynamic", "only the chart's dynamic storage is restated here"
    dynamic = storage["dynamic"]
    c.KubeSpawner.pvc_name_template = dynamic["pvcNameTemplate"]
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.storage_capacity = storage["capacity"]
    c.KubeSpawner.storage_access_modes = dynamic["storageAccessModes"]
    name = dynamic["volumeNameTemplate"]
    c.KubeSpawner.volumes = {name: {"name": name, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    c.KubeSpawner.volume_mounts = {name: {"mountPath": storage["homeMountPath"], "name": name,
                                          "subPath": dynamic.get("subPath")}}
    if su["cloudMetadata"].get("blockWithIptables", True):
        c.KubeSpawner.init_containers = [{
            "name": "block-cloud-metadata", "image": "quay.io/jupyterhub/k8s-network-tools:4.4.0",
            "securityContext": {"privileged": True, "runAsUser": 0,
                                "capabilities": {"add": ["NET_ADMIN"]}}}]
    for section, settings in values["hub"].get("config", {}).items():
        c[section].update(copy.deepcopy(settings))
    return c
