"""The run folder, a contract users and tools rely on.

    <run>/config.yaml        the resolved config
    <run>/metrics.jsonl      one JSON object per logged step: `step` + TRL's metric names (appended live)
    <run>/completions.jsonl  sampled completions with their rewards, per step
    <run>/sft.jsonl          the warm-up's steps (step, loss, learning_rate, seconds), when it had one
    <run>/status.json        running (with the pid) | finished | stopped | failed, with the message
    <run>/adapter/           PEFT save_pretrained (safetensors), refreshed every grpo.save_steps
    <run>/checkpoints/       Trainer checkpoints (adapter, optimizer, scheduler, RNG, trainer state): resume
    <run>/eval.json          the latest `eval` report

A run whose status says `running` but whose process is gone (a crash, a kill, an app restart) reads as
`interrupted`: its metrics and last checkpoint are intact and `train --resume` continues it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, ConfigError
from .files import write_atomic


def new_run_dir(cfg: Config) -> Path:
    """`run.dir` if set, else `<root>/<timestamp>-<model>`; never reuses a folder that already has a run."""
    if cfg.run.dir:
        path = Path(cfg.run.dir)
        if (path / "metrics.jsonl").is_file() or (path / "status.json").is_file():
            raise ConfigError(f"run.dir '{path}' already holds a run; choose a new folder (nothing was changed).")
    else:
        model = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(cfg.model.name).name or "model").strip("-")
        path = Path(cfg.run.root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{model}"
        base, i = path, 1
        while path.exists():
            i += 1
            path = base.with_name(f"{base.name}-{i}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({k: _clean(v) for k, v in row.items()}, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a half-written last line (a run still writing) is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


@dataclass
class RunInfo:
    path: Path
    model: str
    status: str
    steps: int
    has_adapter: bool
    created: float

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.status}, {self.steps} steps)"


def write_status(run_dir: Path, status: str, message: str = "", **extra: Any) -> None:
    data = {"status": status, "message": message, "time": time.time(), **extra}
    if status == "running":
        data.update(pid=os.getpid(), host=socket.gethostname())
    write_atomic(run_dir / "status.json", json.dumps(data, indent=2))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(run_dir: Path) -> dict:
    """The run's status; `running` becomes `interrupted` when the process that wrote it is gone."""
    try:
        data = json.loads((Run(run_dir).status_file).read_text())
    except (OSError, json.JSONDecodeError):
        return {"status": "unknown", "message": ""}
    pid = int(data.get("pid") or 0)
    if data.get("status") == "running" and (pid <= 0 or (data.get("host") == socket.gethostname() and not _alive(pid))):
        data["status"] = "interrupted"
        data["message"] = "The process running it ended without saying so (crash, kill or restart): resume it."
    return data


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete Trainer checkpoint of a run (one with its trainer state written)."""
    folder = Path(run_dir) / "checkpoints"
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()] if folder.is_dir() else []
    return max(done, key=lambda p: int(p.name.rpartition("-")[2]), default=None)


def drop_incomplete_checkpoints(run_dir: Path) -> None:
    """Delete checkpoint folders a failure cut short (no trainer state yet): they cannot be resumed from."""
    folder = Path(run_dir) / "checkpoints"
    for p in folder.glob("checkpoint-*") if folder.is_dir() else []:
        if not (p / "trainer_state.json").is_file():
            shutil.rmtree(p, ignore_errors=True)


def keep_steps_up_to(path: Path, step: int) -> int:
    """Drop the rows of a JSONL log after `step` (logged after the checkpoint a resume starts from)."""
    if not path.is_file():
        return 0
    rows = read_jsonl(path)
    kept = [r for r in rows if r.get("step", 0) <= step]
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return len(rows) - len(kept)


class Run:
    """Read access to one run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def completions_file(self) -> Path:
        return self.path / "completions.jsonl"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    def has_adapter(self) -> bool:
        return (self.adapter_dir / "adapter_config.json").is_file()

    def config(self) -> Config:
        return Config.load(self.config_file)

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_file)

    @property
    def warmup_file(self) -> Path:
        return self.path / "sft.jsonl"

    def warmup(self) -> list[dict]:
        """The warm-up's steps, empty for a run without one."""
        return read_jsonl(self.warmup_file)

    def completions(self) -> list[dict]:
        return read_jsonl(self.completions_file)

    def info(self) -> RunInfo:
        """What the run lists show; a folder whose config or status cannot be read is `damaged`, not an error."""
        status = read_status(self.path).get("status", "unknown")
        metrics = self.metrics()
        try:
            model = self.config().model.name
        except Exception:
            model, status = "?", "damaged"
        if status == "unknown":
            status = "damaged"
        stamps = [p.stat().st_mtime for p in (self.config_file, self.status_file, self.metrics_file) if p.exists()]
        return RunInfo(
            self.path,
            model,
            status,
            metrics[-1].get("step", 0) if metrics else 0,
            self.has_adapter(),
            min(stamps, default=0.0),
        )

    def active(self) -> bool:
        """Training right now, in this process or another one on this machine."""
        return read_status(self.path).get("status") == "running"


def _is_run(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in ("config.yaml", "status.json", "metrics.jsonl"))


def list_runs(root: str | Path = "runs") -> list[RunInfo]:
    """Runs under `root`, newest first (damaged ones too, so they can be seen and deleted)."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [Run(p).info() for p in root.iterdir() if _is_run(p)]
    return sorted(runs, key=lambda r: r.created, reverse=True)


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _valid_name(name: str) -> bool:
    return bool(RUN_NAME.fullmatch(name or "")) and ".." not in name


def _own_run(root: str | Path, name: str) -> Path:
    """A run folder directly under `root`, by its name: never a path elsewhere, never `..`."""
    if not _valid_name(name):
        raise ConfigError(f"'{name}' is not a run name: letters, digits, '_', '.', '-' only, no separators.")
    path = Path(root) / name
    if not _is_run(path):
        raise ConfigError(f"No run named '{name}' in {root}.")
    if Run(path).active():
        raise ConfigError(f"'{name}' is training right now: stop it first.")
    return path


def rename_run(root: str | Path, name: str, new_name: str) -> Path:
    """Give a run folder a new name (its config's run.dir follows); refuses names in use or with separators."""
    path = _own_run(root, name)
    if not _valid_name(new_name):
        raise ConfigError(f"'{new_name}' is not a valid run name: letters, digits, '_', '.', '-' only.")
    target = Path(root) / new_name
    if target.exists():
        raise ConfigError(f"A run named '{new_name}' already exists; nothing was renamed.")
    path.rename(target)
    run = Run(target)
    try:
        cfg = run.config()
        cfg.run.dir = str(target)
        cfg.save(run.config_file)
    except ConfigError:
        pass  # a damaged run keeps its damaged config
    try:  # the status message names the folder ("adapter saved to <run>/adapter"): it follows too
        status = json.loads(run.status_file.read_text())
        status["message"] = str(status.get("message", "")).replace(str(path), str(target))
        write_atomic(run.status_file, json.dumps(status, indent=2))
    except (OSError, json.JSONDecodeError):
        pass
    return target


def delete_run(root: str | Path, name: str) -> None:
    """Delete a run folder under `root` (the caller asks the user first)."""
    shutil.rmtree(_own_run(root, name))


def run_of_adapter(adapter: str | Path) -> Run | None:
    """The run an adapter folder belongs to (its parent holds config.yaml), if any."""
    parent = Path(adapter).resolve().parent
    return Run(parent) if (parent / "config.yaml").is_file() else None


def steps_text(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def end_message(status: str, step: int, run_dir: Path) -> str:
    """How a run ended, saying only what its folder holds: a Stop before GRPO's first step may have saved the
    warm-up's adapter, or nothing at all."""
    adapter, verb = run_dir / "adapter", status.capitalize()
    if not (adapter / "adapter_config.json").is_file():
        return f"{verb} before the first step; nothing was saved."
    warm = len(Run(run_dir).warmup()) if step == 0 else 0
    if warm:
        return f"{verb} after the warm-up ({steps_text(warm)}, no GRPO step); adapter saved to {adapter}."
    return f"{verb} after {steps_text(step)}; adapter saved to {adapter}."
