"""The one registry of jobs a process holds: one run at a time, and the Compare tab's inference models.

The job belongs to the process, not to a browser tab: every page that asks sees the same live state (a copy
taken under a lock), so a reload or a second browser shows the full history of the run.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import NamedTuple

from .checks import validate
from .config import Config
from .jobs import ACTIVE, JobBusy, JobSnapshot, NotYourRun, TrainingJob


class Pulse(NamedTuple):
    """What an open page polls. The key moves with anything the live view shows (another job, any new version of
    its state); the moment only with what a page shows at once (another job, a new status line, a new step's
    metrics); the stage only where a page needs more than the live view (another job, its run folder known or
    renamed, its end): the run's settings in the form and the list of runs."""

    key: str
    moment: str
    stage: str
    active: bool
    elapsed: float


def stage(job_id: int | None, active: bool, folder: str) -> str:
    """`Pulse.stage` for the job with that id (None: no job yet) and run folder ("" while it has none)."""
    if job_id is None:
        return "none"
    return f"{job_id}-{int(active)}-{hash(folder) & 0xFFFFFFFF:x}" if folder else f"{job_id}-{int(active)}-none"


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
        self.on_step: list = []  # called with each job after each of its steps (TrainingJob.on_step)

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
        from .inference.engine import InferenceModels

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
            self.current.on_step.extend(self.on_step)
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

    def pulse(self) -> Pulse:
        """Where the current job stands, cheap enough for every open page to ask every 1.5 s (see `Pulse`)."""
        job = self.current
        if job is None:
            return Pulse("none", "none", "none", False, 0.0)
        version, status, message, logged, folder, elapsed = job.pulse()
        moment = f"{id(job)}-{status}-{logged}-{hash(message) & 0xFFFFFFFF:x}"
        active = status in ACTIVE
        return Pulse(f"{id(job)}-{version}", moment, stage(id(job), active, folder), active, elapsed)

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
