"""Training in its own process, supervised by the app: a crash, a segfault or the kernel's out-of-memory killer
ends the run, never the server.

A `Worker` is a `python -m grpo_app worker` child started ahead of time (its imports done, so a Start does not
wait for them). A `ProcessJob` hands it the run's config and turns the JSON lines it writes back into the
Reporter calls a thread-run job receives, so the live view cannot tell the difference. Stop sends SIGTERM (the
run stops at the end of its step and saves, as the CLI does); a child that dies without saying how it ended
leaves the job `interrupted` (or `failed`, before its run folder existed) with the reason, and resumable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from .jobs import TrainingJob
from .runs import last_checkpoint

REPO = Path(__file__).resolve().parent.parent
SIGNALS = {
    signal.SIGKILL: "killed (SIGKILL: the kernel's out-of-memory killer, or kill -9)",
    signal.SIGSEGV: "crashed (SIGSEGV: a fault in a native library)",
    signal.SIGABRT: "aborted (SIGABRT: a native library gave up)",
    signal.SIGTERM: "terminated (SIGTERM) before it could save",
}


def worker_command(processes: int = 1, request_file: str | None = None) -> list[str]:
    """The child's command line: the warm worker, or `accelerate launch` for several processes (each rank reads
    the request from a file)."""
    tail = ["-m", "grpo_app", "worker", *(["--request", request_file] if request_file else [])]
    if processes > 1:
        return [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--num_processes",
            str(processes),
            "--multi_gpu",
            *tail,
        ]
    return [sys.executable, *tail]


class Worker:
    """A training process waiting for its run (one run each: a fresh process holds no memory of the last)."""

    def __init__(self, processes: int = 1, request_file: str | None = None):
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        self.processes, self.request_file = processes, request_file
        self.proc = subprocess.Popen(  # its own session: a Ctrl-C in the terminal reaches the app, which stops it
            worker_command(processes, request_file),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, request: dict) -> None:
        self.proc.stdin.write(json.dumps(request, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        self.proc.stdin.close()

    def signal(self, signum: int) -> None:
        """To the whole process group (all ranks under accelerate)."""
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """An idle worker is told there is no run (stdin closed) and exits."""
        if self.alive():
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.signal(signal.SIGKILL)


def death_message(code: int, step: int, run_dir: str) -> str:
    """Why a child ended without saying so, and what the user can do."""
    if code < 0:
        try:
            how = SIGNALS.get(signal.Signals(-code), f"killed by {signal.Signals(-code).name}")
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"ended with exit code {code} without reporting how the run ended"
    where = f" at step {step}" if step else ""
    text = f"The training process was {how}{where}; the app keeps serving."
    if run_dir and last_checkpoint(Path(run_dir)) is not None:
        text += " Its last checkpoint is kept: press Resume to go on from it."
    elif run_dir:
        text += " No checkpoint was saved yet: start it again."
    return text


class ProcessJob(TrainingJob):
    """A TrainingJob whose `train()` runs in a Worker; the events it writes arrive as Reporter calls."""

    def __init__(self, *args, worker: Worker | None = None, processes: int = 1, on_end=None, **kw):
        super().__init__(*args, **kw)
        self.worker, self.processes, self.on_end = worker, processes, on_end
        self._stderr: deque[str] = deque(maxlen=60)
        self._result: dict | None = None

    def start(self) -> None:
        import time

        self._started = time.time()
        request = {"config": self.cfg.to_dict(), "resume": self.resume}
        if self.processes > 1:  # every rank reads the request: a file beside the runs, started cold
            if self.worker is not None:
                self.worker.close()
            if not self.cfg.run.dir:  # the ranks must agree on one folder: the app names it
                from .runs import new_run_dir

                self.cfg.run.dir = str(new_run_dir(self.cfg))
            folder = Path(self.cfg.run.root)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f".request-{os.getpid()}-{id(self)}.json"
            path.write_text(json.dumps(request, ensure_ascii=False))
            self.worker = Worker(self.processes, str(path))
            self.worker.proc.stdin.close()
        else:
            if self.worker is None or not self.worker.alive():
                self.worker = Worker()
            self.worker.send(request)
        self.thread = threading.Thread(target=self._read_events, name="grpo-supervisor", daemon=True)
        threading.Thread(target=self._read_stderr, name="grpo-worker-stderr", daemon=True).start()
        self.thread.start()

    def _read_stderr(self) -> None:
        for line in self.worker.proc.stderr:
            line = line.rstrip()
            noise = "\r" in line or "it/s]" in line or "s/it]" in line or line.startswith("{'")  # bars, TRL's logs
            if line and not noise:
                self._stderr.append(line)

    def _read_events(self) -> None:
        calls = {
            "status": lambda e: self.on_status(e["status"], e.get("message", "")),
            "log": lambda e: self.on_log(e["line"]),
            "progress": lambda e: self.on_progress(e["step"], e["total"]),
            "metrics": lambda e: self.on_metrics(e["row"]),
            "completions": lambda e: self.on_completions(e["step"], e["rows"]),
            "warmup": lambda e: self.on_warmup(e["row"]),
            "history": lambda e: self.on_history(e["metrics"], e["completions"], e["elapsed"], e.get("warmup")),
            "run_dir": lambda e: self.on_run_dir(e["path"]),
            "result": lambda e: setattr(self, "_result", e),
        }
        for line in self.worker.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            call = calls.get(event.get("event"))
            if call:
                call(event)
        code = self.worker.proc.wait()
        if self.worker.request_file:
            Path(self.worker.request_file).unlink(missing_ok=True)
        self._finish(code)

    def _finish(self, code: int) -> None:
        result, s = self._result, self.snapshot()
        if result is not None:
            self._update(error=result.get("error", ""))
            self._final_elapsed = result.get("elapsed") or None  # the run's own clock, as status.json keeps it
            if s.active:  # every way out of train() ends in a final status
                self.on_status(result["status"], result["message"])
        else:
            self._update(error="\n".join(self._stderr))
            self.on_status("interrupted" if s.run_dir else "failed", death_message(code, s.step, s.run_dir))
        if self.on_end:
            self.on_end(self)

    def stop(self) -> bool:
        """Ask the worker once: its second SIGTERM means "quit at once", which neither a second press of Stop nor a
        press after the operator's time cap should mean."""
        first = not self._stop.is_set()
        if not super().stop():
            return False
        if first and self.worker is not None:
            self.worker.signal(signal.SIGTERM)
        return True

    def kill(self) -> None:
        """End the child at once (the app is closing and waited long enough)."""
        if self.worker is not None:
            self.worker.signal(signal.SIGKILL)
