"""What the hub's pages say about the platform: its name, logo, what an OPU is and whether this
hub has one (pure builders; :func:`opuhub.hubconfig.configure_branding` applies them).

JupyterHub's own templates are extended, not copied: ``templates/`` here holds small
overrides (``{% extends "templates/login.html" %}``) that add an introduction block to the
login, home, spawn and progress pages, fed by ``template_vars``. The spawn form itself, with
each device's state, is :func:`opuhub.profiles.options_form_html`.
"""

from __future__ import annotations

from pathlib import Path

PLATFORM_NAME = "OPU Hub"
TEMPLATES_DIR = Path(__file__).parent / "templates"
LOGO_FILE = Path(__file__).parent / "static" / "opuhub-logo.svg"

WHAT_AN_OPU_IS = (
    "An OPU (optical processing unit) computes random projections with light: a binary input "
    "x is shown on a micro-mirror array, light crosses a scattering medium, and a camera reads "
    "y = |Hx|², with H a fixed random complex matrix."
)


def device_sentence(n_devices: int) -> str:
    """Whether this hub has an OPU, and what that means for the user, in one sentence."""
    if n_devices <= 0:
        return ("This hub has no OPU device: your notebooks run on the simulator, which "
                "computes what an ideal device would, on the CPU.")
    devices = "one OPU device" if n_devices == 1 else f"{n_devices} OPU devices"
    return (f"This hub has {devices}: choose “OPU hardware” when you start your server to "
            "lease one for yourself; the simulator is always available.")


def template_vars(n_devices: int, name: str = PLATFORM_NAME) -> dict[str, str]:
    """Variables every page template gets (names prefixed ``opuhub_``: no clash with
    JupyterHub's own)."""
    return {
        "opuhub_name": name,
        "opuhub_what": WHAT_AN_OPU_IS,
        "opuhub_devices": device_sentence(n_devices),
        "opuhub_has_opu": "yes" if n_devices > 0 else "no",
    }


def template_paths(existing: list[str] | None) -> list[str]:
    """Ours first, then whatever was there (NativeAuthenticator's pages): JupyterHub searches
    them in order and adds its own defaults last."""
    ours = str(TEMPLATES_DIR)
    return [ours, *[p for p in (existing or []) if p != ours]]
