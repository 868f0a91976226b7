"""Stands for LightOn's self-test ``lightonml/cmd_line/opu_test.py`` (``opu_test``): its
options, the version line and the timed transforms, through ``lightonml.internal.config``."""

import json

import pytest


def test_opu_test_transforms_and_reports_a_rate(lightonml, capsys):
    from lightonml.cmd_line import opu_test

    assert opu_test.main(["-ns", "30", "-nf", "50", "-nc", "200", "-dp"]) == 0
    out = capsys.readouterr().out
    assert "lightonml version 1.4.3" in out and "the simulator" in out
    assert "30 transforms in" in out and "Hz)" in out
    assert opu_test.main(["-ns", "5", "-nf", "10", "-nc", "20", "-l", "-v", "0"]) == 0
    assert "5 transforms in" in capsys.readouterr().out


def test_opu_test_version_without_and_with_a_configuration(lightonml, capsys, tmp_path,
                                                           monkeypatch):
    from lightonml.cmd_line import opu_test
    from lightonml.internal import config

    monkeypatch.setattr(config, "host_path", tmp_path / "host.json")
    monkeypatch.setattr(config, "default_path", tmp_path / "opu.json")
    assert opu_test.main(["-V"]) == 0
    assert capsys.readouterr().out.startswith("No OPU detected on this host\nlightonml version")
    (tmp_path / "vulcain.json").write_text(json.dumps({"name": "vulcain", "version": "2",
                                                       "location": "lab"}))
    (tmp_path / "host.json").write_text(json.dumps(
        {"opu_config": str(tmp_path / "vulcain.json"), "lightonml_open_at_init": False}))
    assert config.host_has_opu_config()
    assert config.get_host_option("lightonml_open_at_init", True) is False
    assert config.get_host_option("absent", 7) == 7
    opu_test.main(["-V"])
    assert capsys.readouterr().out.startswith("OPU vulcain-2-lab; core type NA, core version NA")
    with pytest.raises(ValueError, match="download it"):
        config.load_config("https://example.invalid/opu.json")
