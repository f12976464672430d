"""The run folder, a contract users and tools rely on.

    <run>/config.yaml        the resolved config
    <run>/metrics.jsonl      one JSON object per logged step: `step` + TRL's metric names (appended live)
    <run>/completions.jsonl  sampled completions with their rewards, per step
    <run>/status.json        final state: finished | stopped | failed, with the message
    <run>/adapter/           PEFT save_pretrained (safetensors)
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, ConfigError


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
    (run_dir / "status.json").write_text(json.dumps(data, indent=2))


def read_status(run_dir: Path) -> dict:
    try:
        return json.loads((Run(run_dir).status_file).read_text())
    except (OSError, json.JSONDecodeError):
        return {"status": "unknown", "message": ""}


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

    def completions(self) -> list[dict]:
        return read_jsonl(self.completions_file)

    def info(self) -> RunInfo:
        status = read_status(self.path).get("status", "unknown")
        metrics = self.metrics()
        try:
            model = self.config().model.name
        except Exception:
            model = "?"
        return RunInfo(self.path, model, status, metrics[-1].get("step", 0) if metrics else 0,
                       self.has_adapter(), self.config_file.stat().st_mtime)


def list_runs(root: str | Path = "runs") -> list[RunInfo]:
    """Runs under `root`, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [Run(p).info() for p in root.iterdir() if (p / "config.yaml").is_file()]
    return sorted(runs, key=lambda r: r.created, reverse=True)


def run_of_adapter(adapter: str | Path) -> Run | None:
    """The run an adapter folder belongs to (its parent holds config.yaml), if any."""
    parent = Path(adapter).resolve().parent
    return Run(parent) if (parent / "config.yaml").is_file() else None
