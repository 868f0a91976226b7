"""The "Shared OPU" profile and the hub's side of the broker: the service entry, each user's
key and the environment a shared server gets (pure builders), and the key a kernel then
holds actually signs for that user at a real broker."""

import stat

import numpy as np
import pytest
import requests

from opu_kernel.broker.client import BrokerClient, BrokerError
from opuhub import shared_opu
from opuhub.profiles import (
    SpawnChoice,
    kernel_env,
    options_form_html,
    options_from_form,
    parse_user_options,
)


def test_the_shared_profile_is_offered_only_by_a_hub_with_a_broker():
    assert parse_user_options({"profile": "Shared OPU"}, False, True) == SpawnChoice("shared")
    assert parse_user_options({"profile": "shared"}, True, True) == SpawnChoice("shared")
    with pytest.raises(ValueError, match="runs no shared OPU"):
        parse_user_options({"profile": "shared"}, True)
    with pytest.raises(ValueError, match="only applies"):
        parse_user_options({"profile": "shared", "lease_minutes": 5}, True, True)
    assert options_from_form({"profile": ["shared"], "lease_minutes": ["5"]}) == {
        "profile": "shared"}
    assert 'value="shared"' not in options_form_html(["/dev/opu0: free"], None)
    page = options_form_html([], None, shared="simulated <500 µs>")
    assert 'value="shared"' in page and "simulated &lt;500 µs&gt;" in page
    # no device: no hardware choice, no lease length
    assert 'value="hardware"' not in page and "lease_minutes" not in page
    both = options_form_html(["/dev/opu0: free"], 60, shared="simulated")
    assert all(f'value="{p}"' in both for p in ("simulator", "hardware", "shared"))


def test_a_shared_server_gets_the_broker_and_its_users_key_only():
    secret = "ab" * 32
    broker = shared_opu.kernel_broker_env(secret, "alice", "tcp://10.0.0.1:5599")
    env = kernel_env(SpawnChoice("shared"), 1000, None, None, broker_env=broker)
    assert env["OPU_PROFILE"] == "shared" and env["OPU_BACKEND"] == "shared"
    assert env["OPU_BROKER_URL"] == "tcp://10.0.0.1:5599" and env["OPU_BROKER_USER"] == "alice"
    assert env["OPU_BROKER_KEY"] == shared_opu.user_key(secret, "alice")
    assert env["OPU_BROKER_KEY"] != shared_opu.user_key(secret, "bob")
    assert secret not in "".join(env.values())  # the secret itself stays with the hub
    assert env["OPU_LEASE_STATUS"] == "none"
    # other profiles never get broker variables, even if handed some
    assert "OPU_BROKER_KEY" not in kernel_env(SpawnChoice("simulator"), 1, None, None,
                                              broker_env=broker)


def test_the_broker_service_entry_and_address():
    command = shared_opu.broker_command("0.0.0.0", 5599, frame_us=250)
    assert command[1:] == ["-m", "opu_kernel.broker", "--bind=tcp://0.0.0.0:5599",
                           "--device=simulated", "--frame-us=250"]
    assert "--device=/dev/opu0" in shared_opu.broker_command("127.0.0.1", 1, "/dev/opu0")
    service = shared_opu.broker_service(command, "cd" * 32, {"OPUHUB_STATE_DIR": "/s"})
    assert service["name"] == "opu-broker" and "url" not in service
    assert service["environment"] == {"OPUHUB_STATE_DIR": "/s", "OPU_BROKER_SECRET": "cd" * 32}
    assert "cd" * 32 not in " ".join(command)
    assert shared_opu.broker_url("http://172.17.0.1:8081/hub/api", 5599) == \
        "tcp://172.17.0.1:5599"
    assert shared_opu.broker_url("http://[::1]:8081/hub/api", 7) == "tcp://[::1]:7"


@pytest.mark.parametrize("user", ["alice", "Ünïcode-user", "a" * 200])
def test_the_hub_derives_the_keys_the_broker_expects(user):
    from opu_kernel.broker.protocol import user_key

    secret = "0f" * 32
    assert shared_opu.user_key(secret, user) == user_key(bytes.fromhex(secret), user).hex()


def test_the_secret_is_made_once_and_kept_private(tmp_path):
    first = shared_opu.broker_secret(tmp_path)
    assert len(bytes.fromhex(first)) == 32
    assert shared_opu.broker_secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / shared_opu.SECRET_FILE).stat().st_mode) == 0o600


def test_a_key_from_the_hub_signs_for_its_user_at_a_real_broker(tmp_path):
    from tests.kernel.broker.conftest import broker_in_thread

    secret = shared_opu.broker_secret(tmp_path)
    with broker_in_thread(bytes.fromhex(secret)) as broker:
        env = shared_opu.kernel_broker_env(secret, "alice", broker.url)
        alice = BrokerClient(env["OPU_BROKER_URL"], "alice", bytes.fromhex(env["OPU_BROKER_KEY"]))
        X = np.ones((3, 16), dtype=np.uint8)
        params = {"n_components": 8, "seed": 0, "ones_fraction": 0.5, "override": {}}
        assert alice.transform(params, X)[0].shape == (3, 8)
        posing = BrokerClient(broker.url, "bob", bytes.fromhex(env["OPU_BROKER_KEY"]))
        with pytest.raises(BrokerError, match="authentication failed"):
            posing.transform(params, X)
        for client in (alice, posing):
            client.close()


def test_the_hub_config_runs_the_broker_where_servers_reach_the_hub(tmp_path):
    from traitlets.config import Config

    from opuhub import hubconfig
    from opuhub.settings import settings_from_env
    from opuhub.spawner_choice import DOCKER
    from tests.hub.test_hubconfig import facts

    secret = "5e" * 32
    settings = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_SPAWNER": "docker",
                                  "OPUHUB_SHARED_OPU": "simulated",
                                  "OPUHUB_SHARED_OPU_FRAME_US": "250",
                                  "OPUHUB_HUB_CONNECT_URL": "http://opuhub-hub:8081"})
    host = facts(DOCKER, hub_bind_url="http://172.30.0.1:8081")
    host.secrets[shared_opu.SECRET_FILE] = secret
    c = Config()
    hubconfig.configure(c, settings, host)
    broker = [s for s in c.JupyterHub.services if s["name"] == "opu-broker"]
    assert len(broker) == 1 and broker[0]["environment"]["OPU_BROKER_SECRET"] == secret
    command = broker[0]["command"]
    assert "opuhub.lifeline" in command  # tied to the hub's life
    # in a container of its own (opuhub.broker_container, tests/hub/test_broker_container.py)
    assert "opuhub.broker_container" in command
    assert {"--bind=tcp://0.0.0.0:5599", "--device=simulated", "--frame-us=250",
            "--lease-device=simulated"} <= set(command)
    # the broker's container reads the leases where containers reach the hub, where the lease
    # service then listens too
    assert "--leases-url=http://opuhub-hub:10101/services/opu-lease/api/leases" in command
    lease_service = [s for s in c.JupyterHub.services if s["name"] == "opu-lease"][0]
    assert lease_service["url"] == "http://172.30.0.1:10101"
    assert secret not in " ".join(command)
    assert c.OPUSpawnerMixin.shared_opu == "simulated"
    assert c.OPUSpawnerMixin.shared_opu_url == "tcp://opuhub-opu-broker:5599"  # by name
    assert c.OPUSpawnerMixin.shared_opu_secret == secret
    # off by default: no broker, no profile
    c = Config()
    hubconfig.configure(c, settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path),
                                              "OPUHUB_SPAWNER": "local"}), facts())
    assert all(s["name"] != "opu-broker" for s in c.JupyterHub.services)
    assert "shared_opu" not in c.OPUSpawnerMixin


@pytest.mark.slow
def test_a_shared_server_transforms_on_the_hubs_broker(hub):
    """The session hub runs a simulated shared OPU (tests/hub/conftest.py): a server started
    with the "Shared OPU" profile sends its kernel's transforms to the hub's broker and gets
    the in-process simulator's numbers; %opu shows the shared device."""
    hub.create_users("sharer")
    assert hub.spawn("sharer", profile="shared").status_code in (201, 202)
    code = (
        "import numpy as np, os\n"
        "x = (np.arange(64) % 3 == 0).astype('uint8')\n"
        "opu.fit1d(n_features=64)\n"
        "y = opu.transform(x)\n"
        "print(os.environ['OPU_BACKEND'], os.environ['OPU_BROKER_USER'], y.context.backend,\n"
        "      int(np.asarray(y, dtype='int64').sum()))\n"
        "get_ipython().run_line_magic('opu', '')\n"
    )
    out = hub.execute("sharer", hub.user_token("sharer"), code, kernel="opu")
    assert out["error"] is None, out
    first, status = out["stdout"].split("\n", 1)
    expected = local_sum(n_components=100)  # OPUHUB_N_COMPONENTS of the test hub
    assert first.split() == ["shared", "sharer", "shared", str(expected)]
    assert "shared: simulated" in status and "your_share" in status
    secret = (hub.state / shared_opu.SECRET_FILE).read_text().strip()
    log = hub.log()
    assert secret not in log and shared_opu.user_key(secret, "sharer") not in log
    hub.stop_server("sharer")


def local_sum(n_components: int) -> int:
    """The in-process simulator's sum of counts for the test's input."""
    from opu_kernel import OPU

    opu = OPU(n_components=n_components, backend="simulator").fit1d(n_features=64)
    return int(np.asarray(opu.transform((np.arange(64) % 3 == 0).astype("uint8")),
                          dtype="int64").sum())


def test_the_shared_opus_device_is_leased_as_a_reserved_window_never_passed_through(tmp_path):
    from traitlets.config import Config

    from opuhub import hubconfig
    from opuhub.settings import settings_from_env
    from tests.hub.test_hubconfig import facts

    settings = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_SPAWNER": "local",
                                  "OPUHUB_SHARED_OPU": "/dev/opu1", "OPUHUB_LEASE_SERVICE_PORT":
                                  "10123", "OPUHUB_QUOTA_SECONDS": "60",
                                  "OPUHUB_QUOTA_PERIOD_SECONDS": "3600",
                                  "OPUHUB_SHARED_OPU_FRAME_US": "500"})
    host = facts(devices=("/dev/opu0", "/dev/opu1"))
    host.secrets[shared_opu.SECRET_FILE] = "5e" * 32
    c = Config()
    hubconfig.configure(c, settings, host)
    # the broker's node goes to no user's server; the lease service offers both devices
    assert c.OPUSpawnerMixin.devices == ["/dev/opu0"]
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["opu-lease"]["environment"]["OPUHUB_DEVICES"] == "/dev/opu0,/dev/opu1"
    assert services["opu-lease"]["url"] == "http://127.0.0.1:10123"  # beside its broker
    command = services["opu-broker"]["command"]
    assert {"--device=/dev/opu1", "--lease-device=/dev/opu1",
            "--leases-url=http://127.0.0.1:10123/services/opu-lease/api/leases",
            # the lease quota (60 s of OPU time per hour) as device time: 120,000 frames
            "--quota-frames=120000", "--quota-window-s=3600"} <= set(command)
    # the broker's own token reads the leases and does nothing else
    role = [r for r in c.JupyterHub.load_roles if r.get("services") == ["opu-broker"]]
    assert role == [{"name": "opu-broker", "scopes": ["access:services!service=opu-lease"],
                     "services": ["opu-broker"]}]
    assert shared_opu.quota_frames(0, 500) == 0 and shared_opu.quota_frames(1e-9, 500) == 1


def test_a_reservation_is_asked_for_with_the_shared_profile_only():
    choice = parse_user_options({"profile": "shared", "reserve_minutes": "15"}, False, True)
    assert choice == SpawnChoice("shared", 900.0, reserved=True)
    assert choice.wants_lease and not choice.wants_device
    assert not parse_user_options({"profile": "shared"}, False, True).wants_lease
    for options, message in (({"profile": "simulator", "reserve_minutes": 5}, "only applies"),
                             ({"profile": "hardware", "reserve_minutes": 5}, "only applies"),
                             ({"profile": "shared", "reserve_minutes": "soon"}, "a number"),
                             ({"profile": "shared", "reserve_minutes": -1}, r"in \(0")):
        with pytest.raises(ValueError, match=message):
            parse_user_options(options, True, True)
    assert options_from_form({"profile": ["shared"], "reserve_minutes": ["10"],
                              "lease_minutes": ["5"]}) == {"profile": "shared",
                                                           "reserve_minutes": "10"}
    page = options_form_html([], 30, shared="simulated",
                             shared_status="simulated: held by alice until 10:00 UTC")
    assert 'name="reserve_minutes"' in page and "held by alice" in page
    assert "opuhub-device-busy" in page


HOSTILE_MINUTES = [10**400, "1e400", "nan", "-inf", "Infinity", 0, -5, [5], {"m": 5},
                   "5; rm -rf /", ""]


def test_hostile_reservation_lengths_are_refused_as_bad_numbers():
    for value in HOSTILE_MINUTES:
        for key, profile in (("reserve_minutes", "shared"), ("lease_minutes", "hardware")):
            if value == "":  # empty: no reservation asked for
                assert not parse_user_options({"profile": profile, key: value}, True,
                                              True).reserved
                continue
            with pytest.raises(ValueError, match=key):
                parse_user_options({"profile": profile, key: value}, True, True)


def test_a_reservation_length_of_400_digits_gets_a_400_not_a_500(hub):
    """float() of a JSON integer that long raises OverflowError, which the spawner once let
    through: a 500, and the refused options kept for the next spawn."""
    hub.create_users("res-huge")
    for key, profile in (("reserve_minutes", "shared"), ("lease_minutes", "hardware")):
        refused = hub.spawn("res-huge", profile=profile, **{key: 10**400})
        assert refused.status_code == 400 and f"{key} must be a number" in refused.text, (
            refused.status_code, refused.text[:300])
    assert hub.server_model("res-huge") is None
    assert not [lease for lease in hub.leases() if lease["user"] == "res-huge"]


STATUS = "from opu_kernel.backends.shared import broker_status\n" \
         "from opu_kernel.broker.client import BrokerClient\n" \
         "c = BrokerClient.from_env()\n" \
         "print(broker_status(c).get('reserved_for', 'nobody'))\n"


@pytest.mark.slow
def test_a_lease_on_the_shared_opu_reserves_it_for_its_holder_alone(hub):
    """A "Shared OPU" server started with reserve_minutes holds the lease on the broker's
    device: the hub's broker (following the lease service) then serves only its holder, the
    others see for whom it is reserved and no second reservation is granted; a tutor's
    revocation ends the window without stopping the holder's server, and the others'
    transforms go through again."""
    hub.create_users("res-holder", "res-other")
    assert hub.spawn("res-holder", profile="shared", reserve_minutes=10).status_code in (201,
                                                                                         202)
    try:
        held = [lease for lease in hub.leases() if lease["device"] == "simulated"]
        assert [lease["user"] for lease in held] == ["res-holder"]
        assert 590 <= held[0]["seconds_left"] <= 600
        refused = hub.spawn("res-other", profile="shared", reserve_minutes=5)
        assert refused.status_code == 409 and "res-holder" in refused.text
        assert hub.spawn("res-other", profile="shared").status_code in (201, 202)
        code = ("import os, numpy as np\n"
                "opu.fit1d(n_features=64)\n"
                "y = opu.transform((np.arange(64) % 3 == 0).astype('uint8'))\n"
                "print(os.environ['OPU_BACKEND'], os.environ.get('OPU_DEVICE', 'no device'),\n"
                "      os.environ['OPU_LEASE_STATUS'])\n" + STATUS)
        out = hub.execute("res-holder", hub.user_token("res-holder"), code, kernel="opu")
        assert out["error"] is None, out
        # the holder's kernel goes through the broker (no device node of its own), and the
        # broker has picked up the lease within its poll
        backend, reserved = out["stdout"].strip().split("\n")
        assert backend.split()[:2] == ["shared", "no"]
        assert reserved.startswith("res-holder until "), reserved
        # the other attendee's transform waits: it runs in a thread while the holder's server
        # stops, and comes back once the window has ended
        waiting = (
            "import threading, time, numpy as np\n"
            "opu.fit1d(n_features=64)\n" + STATUS +
            "done = []\n"
            "t = threading.Thread(target=lambda: done.append(opu.transform(\n"
            "    (np.arange(64) % 3 == 0).astype('uint8'))))\n"
            "t.start(); time.sleep(2); print('waited' if not done else 'served')\n")
        out = hub.execute("res-other", hub.user_token("res-other"), waiting, kernel="opu")
        assert out["error"] is None, out
        assert out["stdout"].split() == ["res-holder", "until", out["stdout"].split()[2],
                                         "UTC", "waited"]
        revoked = requests.delete(f"{hub.url}/services/opu-lease/api/leases/simulated",
                                  headers={"Authorization": f"token {hub.token}"}, timeout=30)
        assert revoked.status_code == 200, revoked.text
        assert not [lease for lease in hub.leases() if lease["device"] == "simulated"]
        assert (hub.server_model("res-holder") or {}).get("ready")  # the server carries on
    finally:
        hub.stop_server("res-holder")
    code = ("import numpy as np\nopu.fit1d(n_features=64)\n" + STATUS +
            "y = opu.transform((np.arange(64) % 3 == 0).astype('uint8'))\n"
            "print(int(np.asarray(y, dtype='int64').sum()))\n")
    deadline = __import__("time").monotonic() + 30
    while True:  # the broker sees the release within its poll (1 s)
        out = hub.execute("res-other", hub.user_token("res-other"), code, kernel="opu")
        assert out["error"] is None, out
        reserved, total = out["stdout"].split()[0], out["stdout"].split()[-1]
        if reserved == "nobody" or __import__("time").monotonic() > deadline:
            break
    assert reserved == "nobody"
    assert int(total) == local_sum(n_components=100)
    hub.stop_server("res-other")


CELL_ATTACK = """
import os, time, zmq
import numpy as np
from opu_kernel.broker import protocol
from opu_kernel.broker.client import new_routing_id
s = zmq.Context.instance().socket(zmq.DEALER)
s.setsockopt(zmq.ROUTING_ID, new_routing_id()); s.setsockopt(zmq.LINGER, 0)
s.connect(os.environ['OPU_BROKER_URL'])
# a number too big for a float, unsigned (once fatal), then a flood of made-up names
s.send_multipart([protocol.MAGIC,
                  b'{"v":1,"op":"hello","user":"x","seq":1,"ts":1' + b'0' * 400 + b'}', b'', b''])
for i in range(2000):
    s.send_multipart(protocol.encode(b'k' * 32, protocol.REQUEST, {
        'v': 1, 'op': 'hello', 'user': f'name{i}', 'seq': 1, 'ts': time.time()}))
refused = 0
while s.poll(3000):
    refused += protocol.split(s.recv_multipart())[0]['status'] == 'error'
opu.fit1d(n_features=64)
y = opu.transform((np.arange(64) % 3 == 0).astype('uint8'))
print(refused, int(np.asarray(y, dtype='int64').sum()))
"""


@pytest.mark.slow
def test_a_cell_cannot_take_the_hubs_broker_down(hub):
    """From a "Shared OPU" server's cell, an attendee sends the hub's broker a message with a
    400-digit number and 2000 unsigned made-up names: each is refused, her own transform still
    comes back right, and it is the same broker process (its uptime goes on)."""
    from opu_kernel.broker.server import ADMIN_USER, admin_key

    secret = bytes.fromhex((hub.state / shared_opu.SECRET_FILE).read_text().strip())
    admin = BrokerClient(f"tcp://127.0.0.1:{hub.env['OPUHUB_SHARED_OPU_PORT']}", ADMIN_USER,
                         admin_key(secret))
    before = admin.call("stats")
    hub.create_users("broker-attacker")
    assert hub.spawn("broker-attacker", profile="shared").status_code in (201, 202)
    try:
        out = hub.execute("broker-attacker", hub.user_token("broker-attacker"), CELL_ATTACK,
                          kernel="opu", timeout=120)
        assert out["error"] is None, out
        refused, total = out["stdout"].split()
        assert int(refused) == 2001 and int(total) == local_sum(n_components=100)
        after = admin.call("stats")
        assert after["uptime_s"] > before["uptime_s"]  # not restarted meanwhile
        assert after["requests_refused"] >= before["requests_refused"] + 2001
    finally:
        admin.close()
        hub.stop_server("broker-attacker")
