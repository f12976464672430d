"""Rename, delete, damaged folders and settings files: run management that never loses or crashes."""

import json
import os

import pytest

from grpo_app.config import Config, ConfigError, preset
from grpo_app.runs import Run, delete_run, list_runs, read_status, rename_run, write_status
from grpo_app.ui.manage import config_file, read_config_file


def _run(root, name, status="finished"):
    path = root / name
    path.mkdir(parents=True)
    cfg = Config()
    cfg.run.dir = str(path)
    cfg.save(path / "config.yaml")
    write_status(path, status, "done")
    (path / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward": -3.0}) + "\n")
    return path


def test_rename_and_delete(tmp_path):
    _run(tmp_path, "a")
    _run(tmp_path, "b")
    target = rename_run(tmp_path, "a", "my-best-run")
    assert target.is_dir() and not (tmp_path / "a").exists()
    assert Run(target).config().run.dir == str(target)  # the config follows the folder
    for bad in ("../evil", "x/y", "", "..", ".hidden"):
        with pytest.raises(ConfigError, match="not a valid run name"):
            rename_run(tmp_path, "b", bad)
    with pytest.raises(ConfigError, match="already exists"):
        rename_run(tmp_path, "b", "my-best-run")
    with pytest.raises(ConfigError, match="not a run name"):
        delete_run(tmp_path, "../b")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    with pytest.raises(ConfigError):
        delete_run(tmp_path, str(outside))  # an absolute path is not a name under the root
    assert outside.is_dir()
    delete_run(tmp_path, "b")
    assert [r.path.name for r in list_runs(tmp_path)] == ["my-best-run"]


def test_a_running_run_is_neither_renamed_nor_deleted(tmp_path):
    path = _run(tmp_path, "live", status="running")  # written by this (alive) process
    assert read_status(path)["status"] == "running"
    with pytest.raises(ConfigError, match="training right now"):
        delete_run(tmp_path, "live")
    with pytest.raises(ConfigError, match="training right now"):
        rename_run(tmp_path, "live", "other")
    data = json.loads((path / "status.json").read_text())
    data["pid"] = 2**22 + 12345  # a process that does not exist: the run was killed
    (path / "status.json").write_text(json.dumps(data))
    assert read_status(path)["status"] == "interrupted"
    delete_run(tmp_path, "live")


def test_damaged_folders_are_listed_not_fatal(tmp_path):
    _run(tmp_path, "good")
    bad = _run(tmp_path, "bad-config")
    (bad / "config.yaml").write_text("model: [unclosed\n")
    half = tmp_path / "half-written"
    half.mkdir()
    (half / "status.json").write_text('{"status": "runn')  # truncated by a crash
    (half / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "rew')
    (tmp_path / "not-a-run").mkdir()
    runs = {r.path.name: r for r in list_runs(tmp_path)}
    assert set(runs) == {"good", "bad-config", "half-written"}
    assert runs["good"].status == "finished"
    assert runs["bad-config"].status == runs["half-written"].status == "damaged"
    assert runs["half-written"].steps == 1  # what can be read is still shown
    delete_run(tmp_path, "half-written")


def test_settings_round_trip_through_a_yaml_file():
    cfg = preset("quick")
    cfg.grpo.learning_rate = 1.5e-4
    path = config_file(cfg)
    assert read_config_file(path) == cfg
    with open(path, "a") as f:
        f.write("grpo:\n  learning_rat: 1\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        read_config_file(path)
    os.remove(path)
