"""Experiment trackers beside the app's own charts: trackio and tensorboard keep their own records, and no token."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CANARY = "hf_CANARYtrainingToken0123456789"


def test_two_steps_are_recorded_by_trackio_and_tensorboard(tiny_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tiny_cfg.run.report_to = "trackio,tensorboard"
    config = tmp_path / "run.yaml"
    tiny_cfg.save(config)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TRACKIO_DIR": str(tmp_path / "trackio"),
        "HF_TOKEN": CANARY,
        "HUGGING_FACE_HUB_TOKEN": CANARY,
        "WANDB_API_KEY": CANARY,
    }
    r = subprocess.run(
        [sys.executable, "-m", "grpo_app", "train", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(tiny_cfg.run.dir)
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2  # the app's own log is unchanged

    events = list(run_dir.rglob("events.out.tfevents.*"))
    assert events, "no tensorboard event file"
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/reward")] == [1, 2]

    dbs = list((tmp_path / "trackio").glob("*.db"))
    assert [p.stem for p in dbs] == ["grpo-studio"]
    with sqlite3.connect(dbs[0]) as db:
        tables = [t for (t,) in db.execute("select name from sqlite_master where type='table'")]
        assert "metrics" in tables, tables
        rows = db.execute("select run_name, step from metrics").fetchall()
    assert {name for name, _ in rows} == {run_dir.name} and {step for _, step in rows} >= {1, 2}
    # tokens in the environment reach no log, config, metric, completion or tracker record
    assert CANARY not in r.stdout + r.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
