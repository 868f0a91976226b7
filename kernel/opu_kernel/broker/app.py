"""``python -m opu_kernel.broker``: run the broker of one OPU (or of the simulated one).

Settings are traitlets: command-line options (``--frame-us=250``), a config file
(``--config=broker_config.py``, ``c.OPUBroker.frame_us = 250``), and for the secret the
environment (``OPU_BROKER_SECRET``, hex) so that it never shows in a process list.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from traitlets import Dict, Float, Int, Unicode, validate
from traitlets.config import Application

from .. import __version__
from .device import HardwareDevice, SimulatedDevice
from .leases import LeaseFeed
from .scheduler import FairScheduler, check_weight
from .server import Broker, Limits

SECRET_ENV = "OPU_BROKER_SECRET"


class OPUBroker(Application):
    name = "opu-broker"
    version = __version__
    description = ("Serve one OPU (or the simulated one) to many kernels, in fair turns. "
                   f"The secret comes from {SECRET_ENV} (hex) or --secret-file.")

    bind = Unicode("tcp://127.0.0.1:5599", config=True,
                   help="ZeroMQ endpoint to listen on. Kernels connect to it (OPU_BROKER_URL); "
                        "in Docker mode use an address on the users' network only.")
    secret_file = Unicode("", config=True,
                          help=f"File holding the broker secret (hex, or raw bytes), if "
                               f"{SECRET_ENV} is not set. Each user's key is derived from it.")
    device = Unicode("simulated", config=True,
                     help="'simulated' for the simulator with the timing model, or the device "
                          "node of an OPU (e.g. /dev/opu0), which the broker alone opens.")
    frame_us = Float(500.0, config=True,
                     help="Simulated device only: microseconds the device is held per camera "
                          "frame (one frame per input row). 500 µs is the OPU's frame time.")
    simulator_cache_mb = Int(1024, config=True,
                             help="Simulated device only: memory for the random matrices of "
                                  "the shapes in use (least recently used ones are dropped).")
    quantum = Int(32, config=True,
                  help="Frames of credit a weight-1 user gets per turn (deficit round robin).")
    max_slice = Int(256, config=True,
                    help="Largest device operation in frames: a big batch is cut into slices "
                         "so that small requests wait at most one round of turns.")
    weights = Dict(config=True,
                   help="Share weight per user name (default_weight for everyone else), "
                        "e.g. {'tutor': 2}.")
    default_weight = Float(1.0, config=True, help="Weight of users not in weights.")
    quota_frames = Int(0, config=True,
                       help="Most frames a user may use per quota_window_s (0: no quota).")
    quota_window_s = Float(3600.0, config=True, help="Rolling window of the quota, seconds.")
    credit_ttl_s = Float(2.0, config=True,
                         help="How long a user who ran out of work keeps its unused credit "
                              "(at most one turn's): a notebook sending one request per cell "
                              "is not short-changed for the partial last turn.")
    max_rows = Int(10_000, config=True,
                   help="Most input rows per request (the kernel sends bigger batches in parts).")
    max_result_mb = Int(64, config=True, help="Largest result of one request, MiB.")
    max_message_mb = Int(8, config=True,
                         help="Largest message accepted; a bigger one disconnects its sender "
                              "(ZeroMQ's MAXMSGSIZE) without disturbing anyone else.")
    max_jobs_per_user = Int(8, config=True, help="Requests in flight per user.")
    max_unreceived_mb = Int(128, config=True,
                            help="Results a user's kernels may leave unread, MiB: beyond it "
                                 "her requests are refused until they are read (a kernel that "
                                 "never reads its answers would otherwise hold them in the "
                                 "broker's memory).")
    heartbeat_s = Float(1.0, config=True,
                        help="How often a waiting kernel tells the broker it is still there.")
    client_timeout_s = Float(10.0, config=True,
                             help="A request whose kernel sent no heartbeat for this long is "
                                  "dropped (the kernel died or was cut off): it frees its place.")

    leases_url = Unicode("", config=True,
                         help="The hub's lease service, e.g. http://127.0.0.1:10101/services/"
                              "opu-lease/api/leases: while someone leases lease_device there, "
                              "the broker serves only them (read with the hub token in "
                              "JUPYTERHUB_API_TOKEN, which JupyterHub gives its services). "
                              "Empty: reservations are made with the admin key only.")
    lease_device = Unicode("", config=True,
                           help="The name of this broker's device in the hub's leases "
                                "(OPUHUB_SHARED_OPU: 'simulated' or the device node).")
    leases_poll_s = Float(1.0, config=True,
                          help="How often the leases are read: a new lease, a revocation or a "
                               "stop reaches the broker within this time.")

    aliases = {
        "bind": "OPUBroker.bind", "secret-file": "OPUBroker.secret_file",
        "device": "OPUBroker.device", "frame-us": "OPUBroker.frame_us",
        "quantum": "OPUBroker.quantum", "max-slice": "OPUBroker.max_slice",
        "quota-frames": "OPUBroker.quota_frames",
        "quota-window-s": "OPUBroker.quota_window_s",
        "client-timeout-s": "OPUBroker.client_timeout_s",
        "heartbeat-s": "OPUBroker.heartbeat_s", "max-rows": "OPUBroker.max_rows",
        "max-message-mb": "OPUBroker.max_message_mb", "config": "OPUBroker.config_file",
        "log-level": "Application.log_level",
        "leases-url": "OPUBroker.leases_url", "lease-device": "OPUBroker.lease_device",
        "leases-poll-s": "OPUBroker.leases_poll_s",
    }
    config_file = Unicode("", config=True, help="Python config file to load.")

    @validate("weights")
    def _check_weights(self, proposal):
        return {str(user): check_weight(w, user) for user, w in proposal["value"].items()}

    def read_secret(self) -> bytes:
        raw = os.environ.get(SECRET_ENV, "")
        if not raw and self.secret_file:
            data = Path(self.secret_file).read_bytes().strip()
            try:
                return bytes.fromhex(data.decode())
            except ValueError:
                return data
        if not raw:
            raise SystemExit(f"opu-broker: no secret: set {SECRET_ENV} (hex) or --secret-file")
        try:
            return bytes.fromhex(raw)
        except ValueError:
            raise SystemExit(f"opu-broker: {SECRET_ENV} is not hexadecimal") from None

    def make_broker(self) -> Broker:
        if self.device == "simulated":
            device = SimulatedDevice(self.frame_us * 1e-6, self.simulator_cache_mb * 2**20)
        else:
            device = HardwareDevice(self.device)
        scheduler = FairScheduler(
            quantum=self.quantum, max_slice=self.max_slice, weights=self.weights,
            default_weight=self.default_weight, quota_frames=self.quota_frames or None,
            quota_window_s=self.quota_window_s, credit_ttl_s=self.credit_ttl_s)
        limits = Limits(max_rows=self.max_rows, max_result_bytes=self.max_result_mb * 2**20,
                        max_message_bytes=self.max_message_mb * 2**20,
                        max_jobs_per_user=self.max_jobs_per_user,
                        max_unreceived_bytes=self.max_unreceived_mb * 2**20)
        return Broker(device, self.read_secret(), bind=self.bind, scheduler=scheduler,
                      limits=limits, heartbeat_s=self.heartbeat_s,
                      client_timeout_s=self.client_timeout_s, lease_feed=self.make_lease_feed())

    def make_lease_feed(self) -> LeaseFeed | None:
        if not self.leases_url:
            return None
        try:
            return LeaseFeed(self.leases_url, os.environ.get("JUPYTERHUB_API_TOKEN", ""),
                             self.lease_device or self.device, poll_s=self.leases_poll_s)
        except ValueError as exc:
            raise SystemExit(f"opu-broker: {exc}") from None

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
        logging.getLogger("opu_kernel").setLevel(self.log_level)
        if not logging.getLogger("opu_kernel").handlers:
            logging.getLogger("opu_kernel").addHandler(self.log.handlers[0] if self.log.handlers
                                                       else logging.StreamHandler())

    def start(self):
        broker = self.make_broker()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: broker.stop())
        broker.serve_forever()


main = OPUBroker.launch_instance
