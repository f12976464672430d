"""The training job, and the one registry of jobs a process holds.

A TrainingJob runs `train()` in a background thread (a library embedding the engine); the app's registry runs
it in a child process instead (`supervisor.ProcessJob`, same Reporter calls), so nothing a run does can take the
server down. The job belongs to the process, not to a browser tab: every page that asks sees the same live
state (a copy taken under a lock), so a reload or a second browser shows the full history of the run.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .checks import validate
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

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


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

    # Reporter: called from the training thread
    def _update(self, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self._state, key, value)
            self._state.version += 1

    def on_status(self, status: str, message: str = "") -> None:
        self.on_log(f"[{status}] {message}")
        with self._lock:
            if self._stop.is_set() and status in ACTIVE and self._state.status == "stopping":
                return  # Stop was pressed: only the end (stopped, finished, failed) replaces "stopping"
            if status not in ACTIVE and not self._ended:
                self._ended = time.time()  # the clock stops with the run
            self._state.status, self._state.message = status, message
            self._state.version += 1

    def on_history(self, metrics: list[dict], completions: list[dict], elapsed: float) -> None:
        """A resumed run's logged steps (and its clock) before this session: the charts keep them."""
        last = max((c.get("step", 0) for c in completions), default=0)
        with self._lock:
            self._state.metrics = list(metrics)
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

    def on_progress(self, step: int, total: int) -> None:
        now = time.time()
        if self.max_seconds and now - self._started > self.max_seconds and not self._stop.is_set():
            self.on_log(f"The time cap of {self.max_seconds / 60:g} minutes is reached: stopping and saving.")
            self.stop()
        with self._lock:
            times = [m["step_time"] for m in self._state.metrics if m.get("step_time")]
        self._update(step=step, total=total, eta=eta(times, total - step))

    def on_metrics(self, row: dict) -> None:
        with self._lock:
            self._state.metrics.append(row)
            self._state.version += 1

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
                **{**s.__dict__, "metrics": list(s.metrics), "completions": list(s.completions), "log": list(self._log)}
            )
        running = (self._ended or time.time()) - self._started if self._started else 0.0
        copy.elapsed = self._final_elapsed if self._final_elapsed is not None else self._elapsed_before + running
        return copy


class JobRegistry:
    """The one place a process keeps its training job: one run at a time, visible to every session."""

    def __init__(self, processes: bool = False) -> None:
        """`processes`: run each training in a child process (the app) rather than a thread (a library)."""
        self._lock = threading.Lock()
        self.current: TrainingJob | None = None
        self.processes = processes
        self._worker = None  # a warm supervisor.Worker, started ahead of the next run
        self._warming = False
        self._inference = None  # InferenceModels for the Compare tab, one base model at a time

    def warm(self) -> None:
        """Keep a training process ready (its imports done), now and after every run, so Start is quick."""
        from .supervisor import Worker

        with self._lock:
            self._warming = self.processes
            if self._warming and (self._worker is None or not self._worker.alive()):
                self._worker = Worker()

    def _job(self, cfg: Config, resume: bool, owner: str, max_seconds: float) -> TrainingJob:
        if not self.processes:
            return TrainingJob(cfg, resume, owner, max_seconds)
        from .supervisor import ProcessJob

        worker, self._worker = self._worker, None
        return ProcessJob(
            cfg,
            resume,
            owner,
            max_seconds,
            worker=worker,
            processes=cfg.run.processes,
            on_end=lambda job: self.warm() if self._warming else None,
        )

    def inference(self, cfg: Config):
        """The process's inference copy of a base model (separate from any model being trained)."""
        from .generation import InferenceModels

        with self._lock:
            if self._inference is None or self._inference.cfg.model.name != cfg.model.name:
                self._inference = None  # free the old base before loading another
                self._inference = InferenceModels(cfg)
            return self._inference

    def start(self, cfg: Config, resume: bool = False, owner: str = "", max_seconds: float = 0) -> TrainingJob:
        """Start a run (or resume the one in cfg.run.dir) unless one is active; one job at a time.

        `owner`: who started it (a visitor id); with `owner` set, only the same owner may stop it."""
        validate(cfg)
        with self._lock:
            if self.current is not None and self.current.snapshot().active:
                s = self.current.snapshot()
                if s.status == "stopping":
                    raise JobBusy("The current run is stopping and saving; start again in a moment.")
                raise JobBusy(
                    f"A run is already in progress (step {s.step}/{s.total or '?'}). "
                    "Stop it first, or wait for it to finish."
                )
            self.current = self._job(cfg, resume, owner, max_seconds)
            self.current.start()
            return self.current

    def stop(self, requester: str | None = None) -> bool:
        """Stop the current run; `requester` (visitor ids, space-separated) must share one with its owner's."""
        job = self.current
        if (
            job is not None
            and job.owner
            and requester is not None
            and not set(requester.split()) & set(job.owner.split())
        ):
            if job.snapshot().active:
                raise NotYourRun(
                    "Another visitor started this run, so only they can stop it: watch it live here, "
                    "or duplicate the Space to train your own."
                )
        return job.stop() if job is not None else False

    def shutdown(self, timeout: float = 30.0) -> JobSnapshot | None:
        """The app is closing (Ctrl-C, SIGTERM): stop the run and give it `timeout` seconds to save; the warm
        worker goes too."""
        self._warming = False
        if self._worker is not None:
            self._worker.close()
        job = self.current
        if job is None or not job.stop():
            return None
        snap = job.wait(timeout)
        if snap.active and hasattr(job, "kill"):  # it had its time: a child process must not outlive the app
            job.kill()
            snap = job.wait(10)
        return snap

    def snapshot(self) -> JobSnapshot:
        return self.current.snapshot() if self.current else JobSnapshot()

    def renamed(self, old: Path, new: Path) -> None:
        """A run folder was renamed: the job that made it names the new folder from now on."""
        job = self.current
        if job is None or not job.cfg.run.dir or Path(job.cfg.run.dir).resolve() != Path(old).resolve():
            return
        job.cfg.run.dir = str(new)
        with job._lock:
            job._state.run_dir = str(new)
            job._state.message = job._state.message.replace(str(old), str(new))
            job._state.version += 1

    def latest_adapter(self) -> Path | None:
        """The adapter saved by the current (or just-finished) run, if any."""
        if self.current is None:
            return None
        run_dir = self.current.snapshot().run_dir
        adapter = Path(run_dir) / "adapter" if run_dir else None
        return adapter if adapter and (adapter / "adapter_config.json").is_file() else None
