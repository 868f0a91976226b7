"""``GET <base_url>opuhub/status``: what this server's OPU is (see :mod:`opuhub_lab.status`)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .status import status_from_env


class StatusHandler(APIHandler):
    @web.authenticated  # only the server's owner (and whom the hub lets in) may read it
    def get(self):
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(status_from_env(dict(os.environ), datetime.now(UTC))))


def setup_handlers(web_app) -> None:
    route = url_path_join(web_app.settings.get("base_url", "/"), "opuhub", "status")
    web_app.add_handlers(".*$", [(route, StatusHandler)])
