# The hub image for Zero to JupyterHub: our hub image (JupyterHub, opuhub, the idle culler)
# plus KubeSpawner, the opuhub[kubernetes] extra. The chart runs it with its own
# jupyterhub_config.py (mounted under /usr/local/etc/jupyterhub) as uid 1000; values.yaml
# selects opuhub.kube_spawner.OPUKubeSpawner and starts the opu-lease service in the pod.
#
#   make images                                  # builds opuhub/hub:latest (images/build)
#   docker build -f kubernetes/hub.Dockerfile -t registry.example.org/opuhub/hub-k8s:0.1.0 kubernetes
#   docker push registry.example.org/opuhub/hub-k8s:0.1.0
#
# pip fetches the pinned packages from PyPI while building (behind a TLS-intercepting proxy,
# give pip its CA, e.g. with PIP_CERT set in a derived build).
ARG HUB_IMAGE=opuhub/hub:latest
FROM ${HUB_IMAGE}
# versions as in requirements/constraints.txt; the chart's config also uses tornado's curl
# client (pycurl, a manylinux wheel)
RUN /opt/opuhub/venv/bin/pip install -q --no-cache-dir \
        jupyterhub-kubespawner==7.1.0 kubernetes_asyncio==36.1.0 python-slugify==9.2.0 \
        text-unidecode==1.3 pycurl==7.49.0 \
    && /opt/opuhub/venv/bin/pip check \
    && /opt/opuhub/venv/bin/python -c "import opuhub.kube_spawner, pycurl"
# The chart mounts the hub's database volume here and runs the hub as uid 1000.
RUN mkdir -p /srv/jupyterhub && chown 1000:1000 /srv/jupyterhub
USER 1000
WORKDIR /srv/jupyterhub
CMD ["jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py"]
