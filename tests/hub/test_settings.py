"""OPUHUB_* settings: one source of defaults, parsing, checks and help; spawner auto-choice."""

from pathlib import Path

import pytest

from opuhub import lease, settings
from opuhub.lease_spawner import OPUSpawnerMixin
from opuhub.service import LeaseServiceApp
from opuhub.settings import SETTINGS, Settings, SettingsError, env_value, settings_from_env
from opuhub.spawner_choice import DOCKER, LOCAL, DockerProbe, choose_spawner


def test_defaults_and_overrides(tmp_path):
    s = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path)})
    assert s.bind_url == "http://127.0.0.1:8000" and s.devices is None and s.spawner == "auto"
    s = settings_from_env({
        "OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_DEVICES": "/dev/opu0, /dev/opu1",
        "OPUHUB_QUOTA_SECONDS": "3600", "OPUHUB_ALLOW_ALL": "yes", "OPUHUB_PIDS_LIMIT": "64",
        "OPUHUB_ADMINS": "ann,ben",
    })
    assert s.devices == ["/dev/opu0", "/dev/opu1"] and s.quota_seconds == 3600.0
    assert s.allow_all is True and s.pids_limit == 64 and s.admins == ["ann", "ben"]
    assert s.state_dir == Path(tmp_path).resolve()


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("OPUHUB_SPAWNER", "kubernetes", "OPUHUB_SPAWNER must be one of"),
        ("OPUHUB_QUOTA_SECONDS", "an hour", "OPUHUB_QUOTA_SECONDS must be a number"),
        ("OPUHUB_LEASE_MAX_SECONDS", "-1", "OPUHUB_LEASE_MAX_SECONDS must be >= 0"),
        ("OPUHUB_ALLOW_ALL", "maybe", "OPUHUB_ALLOW_ALL must be true or false"),
        ("OPUHUB_BIND_URL", "127.0.0.1", "OPUHUB_BIND_URL must look like"),
        ("OPUHUB_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("OPUHUB_USER_PASSWORD", "short", "at least 8"),
        ("OPUHUB_LOG_LEVEL", "LOUD", "OPUHUB_LOG_LEVEL must be one of DEBUG"),
        ("OPUHUB_QUOTA_PERIOD_SECONDS", "0", "OPUHUB_QUOTA_PERIOD_SECONDS must be > 0"),
        ("OPUHUB_LEASE_GRACE_SECONDS", "inf", "must be a finite number"),
        ("OPUHUB_PIDS_LIMIT", "1.5", "OPUHUB_PIDS_LIMIT must be an integer"),
        ("OPUHUB_PROXY_API_PORT", "70000", "must be a TCP port"),
    ],
)
def test_bad_values_name_the_variable(var, value, message):
    with pytest.raises(SettingsError, match=message):
        settings_from_env({var: value})


def test_spawner_choice_with_reasons():
    assert choose_spawner("local", None).class_path == LOCAL
    assert choose_spawner("docker", None).class_path == DOCKER
    assert choose_spawner("local", None).multi_user  # asked for: every user, own account
    down = choose_spawner("auto", DockerProbe(False, "ConnectionError: no socket"))
    assert down.class_path == LOCAL and "no Docker engine reachable" in down.reason
    assert not down.multi_user and "admins only" in down.reason  # a fall-back serves admins
    # fail closed: an engine without the image stays Docker (spawns say `make images`)
    no_image = choose_spawner("auto", DockerProbe(True, "Docker engine 20.10", ("img:1",)))
    assert no_image.is_docker and "img:1" in no_image.reason and "make images" in no_image.reason
    up = choose_spawner("auto", DockerProbe(True, "Docker engine 20.10"))
    assert up.is_docker and "reachable" in up.reason


def test_every_setting_has_a_help_text_and_a_default_that_passes_its_own_checks():
    for name, f in SETTINGS.items():
        assert len(f.metadata["help"]) > 20, name
    settings.validate(Settings())  # the defaults are valid


def test_every_setting_reads_back_what_it_hands_on(tmp_path):
    """A service handed OPUHUB_* variables (settings_env) parses them into the same values."""
    values = {
        "OPUHUB_STATE_DIR": str(tmp_path / "state"), "OPUHUB_DEVICES": "/dev/opu0,/dev/opu1",
        "OPUHUB_METRICS_PUBLIC": "on", "OPUHUB_LEASE_GRACE_SECONDS": "45.5",
        "OPUHUB_ADMINS": "ann,ben", "OPUHUB_TIMEZONE": "Europe/Paris",
    }
    first = settings_from_env(values)
    again = settings_from_env({settings.env_name(n): env_value(first, n) for n in SETTINGS})
    assert again == first
    assert first.metrics_public is True and first.lease_grace_seconds == 45.5
    # unset devices mean "detect", an empty value "none": both survive the round trip
    assert settings_from_env({"OPUHUB_DEVICES": ""}).devices == []
    assert settings_from_env({}).devices is None


def test_traits_policy_and_service_take_their_defaults_from_settings(tmp_path, monkeypatch):
    """The spawner's traits, the lease policy and the lease service have no defaults of their
    own: each equals the setting's (they disagreed once: grace 30 s vs 60 s)."""
    mixin = OPUSpawnerMixin()
    mirrored = {
        "lease_max_duration": "lease_max_seconds", "lease_warning": "lease_warning_seconds",
        "lease_quota": "quota_seconds", "lease_quota_period": "quota_period_seconds",
        "lease_timezone": "timezone", "default_n_components": "n_components",
        "simulator_max_n_components": "simulator_max_n_components",
        "simulator_max_work": "simulator_max_work", "start_concurrency": "start_concurrency",
    }
    for trait, name in mirrored.items():
        assert getattr(mixin, trait) == settings.default_of(name), trait
        assert settings.env_name(name) in OPUSpawnerMixin.class_traits()[trait].help
    from opuhub.local_spawner import OPULocalSpawner
    from opuhub.spawner import OPUDockerSpawner

    for cls, trait, name in [
        (OPUDockerSpawner, "home_quota", "home_quota"), (OPUDockerSpawner, "pids_limit", "pids_limit"),
        (OPULocalSpawner, "home_quota", "home_quota"), (OPULocalSpawner, "mem_limit_local", "mem_limit"),
        (OPULocalSpawner, "cpu_limit_local", "cpu_limit"), (OPULocalSpawner, "pids_limit_local", "pids_limit"),
    ]:
        assert cls.class_traits()[trait].default_value == settings.default_of(name), (cls, trait)
    policy = lease.LeasePolicy()
    assert (policy.max_duration, policy.warning, policy.quota, policy.quota_period) == (
        settings.default_of("lease_max_seconds"), settings.default_of("lease_warning_seconds"),
        settings.default_of("quota_seconds"), settings.default_of("quota_period_seconds"))
    app = LeaseServiceApp(
        {"OPUHUB_STATE_DIR": str(tmp_path), "JUPYTERHUB_API_TOKEN": "t",
         "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api"}, hub_auth=object())
    assert app.enforcer.grace == settings.default_of("lease_grace_seconds")
    assert app.enforcer.warning == settings.default_of("lease_warning_seconds")
    assert app.interval == settings.default_of("lease_check_interval")
    assert app.store.path == tmp_path.resolve() / "opu_leases.sqlite"


def test_readme_settings_table_is_generated_from_settings():
    readme = (Path(__file__).resolve().parents[2] / "hub" / "README.md").read_text()
    assert settings.TABLE_START in readme, "hub/README.md lost its settings table markers"
    assert settings.readme_with_table(readme) == readme, (
        "hub/README.md's settings table differs from opuhub.settings: run "
        "`.venv/bin/python -m opuhub.settings --update hub/README.md`")
    for name in SETTINGS:
        assert f"`{settings.env_name(name)}`" in readme
