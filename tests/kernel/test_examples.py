"""Delivery of the example notebooks into ~/examples (opu_kernel.examples)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opu_kernel.examples import MANIFEST_NAME, main, sync_examples


@pytest.fixture
def release(tmp_path):
    """A shipped examples folder with two notebooks, a README and files that must not ship."""
    source = tmp_path / "image" / "examples"
    source.mkdir(parents=True)
    (source / "01-a.ipynb").write_text('{"v": 1}')
    (source / "02-b.ipynb").write_text('{"v": 1, "b": true}')
    (source / "README.md").write_text("# Examples\n")
    (source / "sanitize.cfg").write_text("[regex1]\n")
    (source / ".ipynb_checkpoints").mkdir()
    (source / ".ipynb_checkpoints" / "01-a-checkpoint.ipynb").write_text("{}")
    return source


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home" / "examples"


def manifest(target):
    return json.loads((target / MANIFEST_NAME).read_text())["files"]


def test_first_start_copies_every_shipped_file(release, home):
    report = sync_examples(release, home)
    assert report.added == ["01-a.ipynb", "02-b.ipynb", "README.md"]
    assert (home / "01-a.ipynb").read_text() == '{"v": 1}'
    assert not (home / "sanitize.cfg").exists()
    assert not (home / ".ipynb_checkpoints").exists()
    assert set(manifest(home)) == {"01-a.ipynb", "02-b.ipynb", "README.md"}


def test_second_start_changes_nothing(release, home):
    sync_examples(release, home)
    before = (home / MANIFEST_NAME).stat().st_mtime_ns
    report = sync_examples(release, home)
    assert report.unchanged == ["01-a.ipynb", "02-b.ipynb", "README.md"]
    assert report.added == report.updated == report.kept == report.deleted == []
    assert (home / MANIFEST_NAME).stat().st_mtime_ns == before


def test_new_notebook_in_a_release_is_added(release, home):
    sync_examples(release, home)
    (release / "03-c.ipynb").write_text('{"c": 1}')
    report = sync_examples(release, home)
    assert report.added == ["03-c.ipynb"]
    assert (home / "03-c.ipynb").read_text() == '{"c": 1}'


def test_unmodified_notebook_is_updated_by_a_new_release(release, home):
    sync_examples(release, home)
    (release / "01-a.ipynb").write_text('{"v": 2}')
    report = sync_examples(release, home)
    assert report.updated == ["01-a.ipynb"]
    assert (home / "01-a.ipynb").read_text() == '{"v": 2}'
    # and again with a third release: the manifest followed the update
    (release / "01-a.ipynb").write_text('{"v": 3}')
    assert sync_examples(release, home).updated == ["01-a.ipynb"]
    assert (home / "01-a.ipynb").read_text() == '{"v": 3}'


def test_notebook_changed_by_the_user_is_never_overwritten(release, home):
    sync_examples(release, home)
    (home / "01-a.ipynb").write_text('{"v": 1, "mine": true}')
    (release / "01-a.ipynb").write_text('{"v": 2}')
    report = sync_examples(release, home)
    assert report.kept == ["01-a.ipynb"]
    assert (home / "01-a.ipynb").read_text() == '{"v": 1, "mine": true}'
    # still kept at the next start, even though nothing changed in the release
    assert sync_examples(release, home).kept == ["01-a.ipynb"]
    assert (home / "01-a.ipynb").read_text() == '{"v": 1, "mine": true}'


def test_notebook_deleted_by_the_user_stays_deleted(release, home):
    sync_examples(release, home)
    (home / "02-b.ipynb").unlink()
    (release / "02-b.ipynb").write_text('{"v": 2}')
    report = sync_examples(release, home)
    assert report.deleted == ["02-b.ipynb"]
    assert not (home / "02-b.ipynb").exists()


def test_deleting_the_manifest_restores_deleted_examples(release, home):
    sync_examples(release, home)
    (home / "02-b.ipynb").unlink()
    (home / MANIFEST_NAME).unlink()
    report = sync_examples(release, home)
    assert report.added == ["02-b.ipynb"]
    assert (home / "02-b.ipynb").exists()


def test_unrecorded_files_are_adopted_if_identical_and_kept_otherwise(release, home):
    home.mkdir(parents=True)
    (home / "01-a.ipynb").write_text('{"v": 1}')  # identical to the shipped one
    (home / "02-b.ipynb").write_text("my own notebook with that name")
    report = sync_examples(release, home)
    assert report.unchanged == ["01-a.ipynb"]
    assert report.kept == ["02-b.ipynb"]
    assert (home / "02-b.ipynb").read_text() == "my own notebook with that name"
    # the adopted one now follows releases; the user's one never does
    (release / "01-a.ipynb").write_text('{"v": 2}')
    (release / "02-b.ipynb").write_text('{"v": 2}')
    report = sync_examples(release, home)
    assert report.updated == ["01-a.ipynb"]
    assert report.kept == ["02-b.ipynb"]


def test_user_files_that_are_not_examples_are_left_alone(release, home):
    sync_examples(release, home)
    (home / "scratch.ipynb").write_text("mine")
    sync_examples(release, home)
    assert (home / "scratch.ipynb").read_text() == "mine"
    assert "scratch.ipynb" not in manifest(home)


def test_symlink_or_folder_in_place_of_an_example_is_not_touched(release, home, tmp_path):
    home.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.ipynb"
    elsewhere.write_text("precious")
    (home / "01-a.ipynb").symlink_to(elsewhere)
    (home / "02-b.ipynb").mkdir()
    report = sync_examples(release, home)
    assert report.kept == ["01-a.ipynb", "02-b.ipynb"]
    assert elsewhere.read_text() == "precious"


def test_subfolders_are_shipped(release, home):
    (release / "extra").mkdir()
    (release / "extra" / "more.ipynb").write_text("{}")
    assert "extra/more.ipynb" in sync_examples(release, home).added
    assert (home / "extra" / "more.ipynb").exists()


def test_corrupt_manifest_is_treated_as_missing(release, home):
    sync_examples(release, home)
    (home / MANIFEST_NAME).write_text("not json")
    (home / "01-a.ipynb").write_text("edited")
    report = sync_examples(release, home)
    assert report.kept == ["01-a.ipynb"]
    assert report.unchanged == ["02-b.ipynb", "README.md"]
    assert set(manifest(home)) == {"02-b.ipynb", "README.md"}


def test_no_temporary_files_are_left_behind(release, home):
    sync_examples(release, home)
    (release / "01-a.ipynb").write_text('{"v": 2}')
    sync_examples(release, home)
    assert sorted(p.name for p in home.iterdir()) == [
        MANIFEST_NAME, "01-a.ipynb", "02-b.ipynb", "README.md"]


def test_missing_source_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no examples folder"):
        sync_examples(tmp_path / "nowhere", tmp_path / "target")


def test_cli_prints_what_it_did(release, home, capsys):
    assert main([str(release), str(home)]) == 0
    out = capsys.readouterr().out
    assert "01-a.ipynb: added" in out
    assert out.strip().endswith("examples: 3 added, 0 updated, 0 unchanged, 0 kept, 0 deleted")
    (home / "01-a.ipynb").write_text("edited")
    assert main([str(release), str(home), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == ["01-a.ipynb"]


def test_cli_reports_a_missing_source_without_a_traceback(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "t")]) == 1
    assert "no examples folder" in capsys.readouterr().err


def test_module_runs_as_a_script(release, home):
    result = subprocess.run([sys.executable, "-m", "opu_kernel.examples", str(release),
                             str(home), "--quiet"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "examples: 3 added, 0 updated, 0 unchanged, 0 kept, 0 deleted"


def test_the_repository_notebooks_ship_without_test_configuration(tmp_path):
    """What the image ships: every notebook and the README of notebooks/, not sanitize.cfg."""
    shipped = Path(__file__).resolve().parents[2] / "notebooks"
    notebooks = sorted(p.name for p in shipped.glob("*.ipynb"))
    assert notebooks, f"no notebooks in {shipped}"
    report = sync_examples(shipped, tmp_path / "examples")
    assert report.added == notebooks + ["README.md"]
    assert not (tmp_path / "examples" / "sanitize.cfg").exists()
