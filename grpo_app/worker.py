"""The training process the app supervises: `python -m grpo_app worker`.

It imports the heavy libraries first and then waits, so that a Start in the app does not pay for them (a warm
worker). The request (a config and whether to resume) comes as one JSON line on stdin, or as a file for
`accelerate launch -m grpo_app worker --request FILE`, where every rank reads it. The run reports what it does
as JSON lines on the original stdout, one per Reporter call (rank 0 only); anything else the libraries print goes
to stderr. SIGTERM stops at the end of the step and saves, as in the CLI; a second one quits at once.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any


class EventReporter:
    """A Reporter that writes each call as one JSON line: what the app's job turns back into calls."""

    def __init__(self, stream: IO[str]):
        self.stream, self.lock = stream, threading.Lock()

    def emit(self, event: str, **data: Any) -> None:
        from .training import is_main_process

        if not is_main_process():
            return
        line = json.dumps({"event": event, **data}, ensure_ascii=False, default=str)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def on_status(self, status: str, message: str = "") -> None:
        self.emit("status", status=status, message=message)

    def on_log(self, line: str) -> None:
        self.emit("log", line=line)

    def on_progress(self, step: int, total: int) -> None:
        self.emit("progress", step=step, total=total)

    def on_metrics(self, row: dict) -> None:
        self.emit("metrics", row=row)

    def on_completions(self, step: int, rows: list[dict]) -> None:
        self.emit("completions", step=step, rows=rows)

    def on_warmup(self, row: dict) -> None:
        self.emit("warmup", row=row)

    def on_history(
        self, metrics: list[dict], completions: list[dict], elapsed: float, warmup: list[dict] | None = None
    ) -> None:
        self.emit("history", metrics=metrics, completions=completions, elapsed=elapsed, warmup=warmup or [])

    def on_run_dir(self, path: str) -> None:
        self.emit("run_dir", path=path)


def _events_stream() -> IO[str]:
    """The original stdout, kept for events; fd 1 then points at stderr so that stray prints cannot corrupt them."""
    events = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def warm_up() -> None:
    """Import what a run needs before the request arrives (about 4 s on a 2-core CPU)."""
    import peft  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from . import fast, training  # noqa: F401


def main(request_file: str | None = None) -> int:
    from .signals import StopOnSignal

    events = EventReporter(_events_stream())
    warm_up()
    events.emit("ready", pid=os.getpid())
    text = Path(request_file).read_text() if request_file else sys.stdin.readline()
    if not text.strip():
        return 0  # the app closed before asking for a run
    from .config import Config, ConfigError
    from .training import train

    request = json.loads(text)
    stop, cfg = threading.Event(), None
    try:
        with StopOnSignal(stop):
            cfg = Config.from_dict(request["config"])
            result = train(cfg, events, stop, resume=bool(request.get("resume")))
    except ConfigError as e:  # refused by its checks: no run folder exists
        events.emit("result", status="failed", message=str(e), error="", run_dir="", elapsed=0.0)
        return 2
    except KeyboardInterrupt:  # a second SIGTERM: train() saved what there was
        events.emit(
            "result",
            status="stopped",
            message="Stopped at once; the adapter of the last step is saved.",
            error="",
            run_dir=cfg.run.dir if cfg else "",
            elapsed=0.0,
        )
        return 130
    except Exception as e:  # a bug: still one sentence, the traceback for the log
        from .errors import first_line

        events.emit(
            "result",
            status="failed",
            message=f"{type(e).__name__}: {first_line(e)}",
            error=traceback.format_exc(),
            run_dir=cfg.run.dir if cfg else "",
            elapsed=0.0,
        )
        return 1
    events.emit(
        "result",
        status=result.status,
        message=result.message,
        error=result.error,
        run_dir=str(result.run_dir),
        elapsed=result.elapsed,
    )
    return 0 if result.status != "failed" else 1
