"""No cluster runs here. KubeSpawner loads a client configuration (in-cluster, else a
kubeconfig) when a spawner is made; here it is skipped, so the client keeps its default
configuration, and no test makes a request with it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_cluster_configuration(monkeypatch):
    import kubespawner.spawner

    monkeypatch.setattr(kubespawner.spawner, "load_config", lambda **kwargs: None)
