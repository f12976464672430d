"""A training job and what a page sees of it (JobSnapshot).

A TrainingJob runs `train()` in a background thread (a library embedding the engine); the app runs it in a
child process instead (`supervisor.ProcessJob`, the same Reporter calls), so nothing a run does can take the
server down. `registry.JobRegistry` holds the one job of a process.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import Config, ConfigError
from .training import Reporter, train

ACTIVE = ("starting", "loading", "training", "stopping")


def eta(step_times: list[float], remaining: int) -> float | None:
    """Seconds left: the median of the last few steps' times (the first step, which warms the model up, counts
    only while it is the only one), or None before any step."""
    if not step_times or remaining <= 0:
        return 0.0 if step_times else None
    recent = sorted((step_times[1:] or step_times)[-5:])
    return recent[len(recent) // 2] * remaining


class JobBusy(ConfigError):
    """A second start while a run is active."""


class NotYourRun(ConfigError):
    """Stop pressed by a visitor who did not start the run (public mode)."""


@dataclass
class JobSnapshot:
    """A consistent copy of a job's state for one refresh of the page."""

    status: str = "idle"
    message: str = "No run yet. Press Start."
    step: int = 0
    total: int = 0
    elapsed: float = 0.0
    eta: float | None = None
    run_dir: str = ""
    error: str = ""
    metrics: list[dict] = field(default_factory=list)
    completions: list[dict] = field(default_factory=list)
    completions_step: int = 0
    log: list[str] = field(default_factory=list)
    version: int = 0
    warmup: list[dict] = field(default_factory=list)  # the warm-up's steps: the loss chart's first panel

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def charted(self) -> int:
        """Steps the charts draw, warm-up and GRPO: a page redraws them when this moves."""
        return len(self.warmup) + len(self.metrics)


class TrainingJob(Reporter):
    """One run of `train()` in a daemon thread, reporting into thread-safe state."""

    def __init__(self, cfg: Config, resume: bool = False, owner: str = "", max_seconds: float = 0):
        self.cfg, self.resume = cfg, resume
        self.owner, self.max_seconds = owner, max_seconds  # who may stop it; the operator's time cap (0 = none)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = JobSnapshot(status="starting", message="Starting…")
        self._log: deque[str] = deque(maxlen=200)
        self._started = 0.0
        self._ended = 0.0
        self._elapsed_before = 0.0  # a resumed run's clock goes on from where it stopped
        self._final_elapsed: float | None = None  # the run's own figure once it has ended (as status.json says)
        self.thread: threading.Thread | None = None
        self.on_step: list[Callable[[TrainingJob], None]] = []  # called (in the reporting thread) after each step

    # Reporter: called from the training thread
    def _update(self, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self._state, key, value)
            self._state.version += 1

    def on_status(self, status: str, message: str = "") -> None:
        self.on_log(f"[{status}] {message}")
        if status in ACTIVE:  # loading and each warm-up step report here, before GRPO's first progress
            self._keep_time_cap()
        with self._lock:
            if self._stop.is_set() and status in ACTIVE and self._state.status == "stopping":
                return  # Stop was pressed: only the end (stopped, finished, failed) replaces "stopping"
            if status not in ACTIVE and not self._ended:
                self._ended = time.time()  # the clock stops with the run
            self._state.status, self._state.message = status, message
            self._state.version += 1

    def on_history(
        self, metrics: list[dict], completions: list[dict], elapsed: float, warmup: list[dict] | None = None
    ) -> None:
        """A resumed run's logged steps (and its clock) before this session: the charts keep them."""
        last = max((c.get("step", 0) for c in completions), default=0)
        with self._lock:
            self._state.metrics = list(metrics)
            self._state.warmup = list(warmup or [])
            self._state.completions = [c for c in completions if c.get("step") == last]
            self._state.completions_step = last
            self._elapsed_before = elapsed
            self._state.version += 1

    def on_run_dir(self, path: str) -> None:
        self.cfg.run.dir = path
        self._update(run_dir=path)

    def on_log(self, line: str) -> None:
        with self._lock:
            self._log.append(f"{time.strftime('%H:%M:%S')} {line}")
            self._state.version += 1

    def _keep_time_cap(self) -> None:
        """The operator's minute cap, checked at each status while loading and warming up and at each GRPO step:
        past it, stop and save what there is."""
        over = bool(self._started) and time.time() - self._started > self.max_seconds
        if self.max_seconds and over and not self._stop.is_set():
            self.on_log(f"The time cap of {self.max_seconds / 60:g} minutes is reached: stopping and saving.")
            self.stop()

    def on_progress(self, step: int, total: int) -> None:
        self._keep_time_cap()
        with self._lock:
            times = [m["step_time"] for m in self._state.metrics if m.get("step_time")]
        self._update(step=step, total=total, eta=eta(times, total - step))

    def on_metrics(self, row: dict) -> None:
        self._add_row("metrics", row)

    def on_warmup(self, row: dict) -> None:
        self._add_row("warmup", row)

    def _add_row(self, rows: str, row: dict) -> None:
        """A logged step (GRPO's or the warm-up's) into the state's list of that name, then the step listeners."""
        with self._lock:
            getattr(self._state, rows).append(row)
            self._state.version += 1
        for listener in self.on_step:  # e.g. the page drawing the new step's charts before anyone asks
            listener(self)

    def on_completions(self, step: int, rows: list[dict]) -> None:
        self._update(completions=rows, completions_step=step)

    # Control: called from the UI
    def start(self) -> None:
        self._started = time.time()
        self.thread = threading.Thread(target=self._run, name="grpo-training", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            result = train(self.cfg, self, self._stop, resume=self.resume)
            self._final_elapsed = result.elapsed or None
            self._update(run_dir=str(result.run_dir) if result.run_dir.name else "", error=result.error)
            if self.snapshot().active:  # every way out of train() ends in a final status
                self.on_status(result.status, result.message)
        except Exception as e:  # a config error before the run folder exists
            self._update(error=traceback.format_exc())
            self.on_status("failed", f"{type(e).__name__}: {e}" if not isinstance(e, ConfigError) else str(e))

    def stop(self) -> bool:
        """Ask the run to stop at the next step boundary; False when it has already ended."""
        with self._lock:
            if self._state.status not in ACTIVE:
                return False
            self._stop.set()
            if self._state.status != "stopping":
                self._state.status, self._state.message = "stopping", "Stopping at the end of the current step…"
                self._state.version += 1
        self.on_log("[stopping] Stop requested.")
        return True

    def wait(self, timeout: float | None = None) -> JobSnapshot:
        if self.thread:
            self.thread.join(timeout)
        return self.snapshot()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            s = self._state
            copy = JobSnapshot(
                **{
                    **s.__dict__,
                    "metrics": list(s.metrics),
                    "warmup": list(s.warmup),
                    "completions": list(s.completions),
                    "log": list(self._log),
                }
            )
        copy.elapsed = self._elapsed()
        return copy

    def pulse(self) -> tuple[int, str, str, int, str, float]:
        """(version, status, message, steps charted (warm-up and GRPO), run folder, elapsed) without copying the
        metrics: what an open page polls."""
        with self._lock:
            s = self._state
            version, status, message, logged, folder = s.version, s.status, s.message, s.charted, s.run_dir
        return version, status, message, logged, folder, self._elapsed()

    def _elapsed(self) -> float:
        running = (self._ended or time.time()) - self._started if self._started else 0.0
        return self._final_elapsed if self._final_elapsed is not None else self._elapsed_before + running
