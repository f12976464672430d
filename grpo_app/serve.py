"""Serve the app: what `python app.py`, `make run` and `grpo-studio app` run.

Runs go to GRPO_STUDIO_RUNS, else /data/runs where a Space has persistent storage, else ./runs. It listens on
127.0.0.1 unless GRADIO_SERVER_NAME says otherwise or it runs on a Space (0.0.0.0); the port follows
GRADIO_SERVER_PORT. Ctrl-C or SIGTERM stops a running training at the end of its step and saves it before the
process ends (GRPO_STUDIO_SHUTDOWN_WAIT seconds at most, default 60).
"""

from __future__ import annotations

import os
import signal


def build():
    """The Blocks app on the default runs folder (what a Space imports as `demo`)."""
    from .access import default_runs_root
    from .ui import create_ui

    return create_ui(runs_root=default_runs_root())


# Gradio's queue looks for new events every 1 ms while it has none, and its progress loop every 10 ms: 3-4% of a core
# for an app with nothing to do, taken from training on a 2-core machine. An event now waits at most 20 ms to start.
QUEUE_POLL_S = 0.02


def calm_queue(demo) -> None:
    """Let the queue's idle loops sleep QUEUE_POLL_S (docs/performance.md, "The app at rest")."""
    queue = getattr(demo, "_queue", None)
    for name in ("sleep_when_free", "progress_update_sleep_when_free"):
        if hasattr(queue, name):
            setattr(queue, name, max(getattr(queue, name), QUEUE_POLL_S))


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # Gradio closes the server on it, as on Ctrl-C


def main(demo=None) -> int:
    from .memory import return_freed_memory
    from .ui import CSS, THEME
    from .ui.pulse import add_live_routes

    demo = demo or build()
    signal.signal(signal.SIGTERM, _interrupt)
    demo.registry.warm()  # a training process with its imports done, so Start does not wait for them
    return_freed_memory()  # what a Compare generation frees goes back to the system, not to a growing heap
    policy = demo.policy
    try:
        calm_queue(demo.queue(default_concurrency_limit=4))
        demo.launch(
            theme=THEME,
            css=CSS,
            show_error=True,
            server_name=policy.host,
            allowed_paths=policy.allowed_paths(),
            max_file_size=f"{policy.max_upload_mb:g}mb" if policy.public else None,
            prevent_thread_lock=True,
        )
        add_live_routes(demo.app, demo.registry, demo.train.feed)  # what open pages poll (ui/pulse.py)
        demo.block_thread()
    finally:
        snap = demo.registry.shutdown(float(os.environ.get("GRPO_STUDIO_SHUTDOWN_WAIT") or 60))
        if snap is not None:
            print(f"Training {snap.status}: {snap.message}", flush=True)
    return 0
