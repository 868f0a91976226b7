"""OPUSpawnerMixin behaviour that needs no running hub."""

from types import SimpleNamespace

import pytest
from tornado import web

from opuhub.local_spawner import OPULocalSpawner, home_dir_name
from opuhub.profiles import SpawnChoice


def spawner(**kw):
    return OPULocalSpawner(user=SimpleNamespace(name="alice"), **kw)


def test_an_unusable_lease_store_fails_the_spawn_clearly_and_never_the_stop(tmp_path):
    broken = tmp_path / "not-a-database.sqlite"
    broken.write_bytes(b"this is not SQLite" * 100)
    s = spawner(devices=["/dev/opu0"], lease_db=str(broken))
    with pytest.raises(web.HTTPError) as raised:
        s.claim_device(SpawnChoice("hardware"))
    assert raised.value.status_code == 503 and "Simulator" in raised.value.log_message
    s.run_post_stop_hook()  # logs, does not raise


def test_simulator_needs_no_lease_and_bad_options_are_a_400(tmp_path):
    s = spawner(devices=[], lease_db=str(tmp_path / "leases.sqlite"))
    assert s.claim_device(SpawnChoice("simulator")) is None
    assert s.options_form == ""  # no device: no choice to offer
    s.user_options = {"profile": "hardware"}
    with pytest.raises(web.HTTPError) as raised:
        s.spawn_choice()
    assert raised.value.status_code == 400 and "no OPU device" in raised.value.log_message


@pytest.mark.parametrize("trait, value", [("lease_max_duration", -1), ("lease_quota_period", 0),
                                          ("default_n_components", 0)])
def test_traits_refuse_bad_values(trait, value):
    with pytest.raises(Exception, match=trait):
        spawner(**{trait: value})


def test_home_directories_cannot_escape():
    assert home_dir_name("alice") == "alice"
    assert "/" not in home_dir_name("../../etc")
    assert home_dir_name("..") not in ("..", ".")
