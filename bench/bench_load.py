"""Benchmark: what open pages cost a run (issue #24). Viewers poll the live view as the page does.

    python bench/bench_load.py                       # phases of 0, 1, 5, 20 and again 0 viewers, 8 steps each
    python bench/bench_load.py --viewers 0 20 --steps-per-phase 8

Starts the app (`app.py`, loopback only), starts a quick run through its API (every step on the same post and a
learning rate too small to change the model, so that phases compare), and while it trains attaches simulated
viewers: each joins the page's own live-refresh event (the 1.5 s timer of the Train tab) over Gradio's queue, as the
browser does, with a session of its own, then the events that refresh sets off (a part of the view with news:
charts, samples), and waits for them before the next tick. Reports, per phase, the run's mean step time (from its
metrics.jsonl) and the p50/p95 latency of a whole refresh (the tick and what it set off). Goals (#24): with 20
viewers, step time within 10% of none and p95 under 300 ms. Writes bench/results/load-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
TICK = 1.5  # the Train tab's gr.Timer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_app(runs: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRPO_STUDIO_RUNS": str(runs),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log = open(runs.parent / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"the app exited: see {runs.parent / 'app.log'}")
            time.sleep(0.5)
    proc.kill()
    sys.exit("the app did not start within 300 s")


def _refresh_events(url: str) -> tuple[tuple[int, int], dict[int, tuple[int, int]]]:
    """The Train tab's timer tick as (fn_index, trigger_id), and the events its outputs set off: for each State the
    tick writes, the (fn_index, trigger_id) of its change event. All read from the page's own config."""
    config = httpx.get(f"{url}/config", timeout=30).json()
    tick, changes = None, {}
    for dep in config["dependencies"]:
        for target, event in dep.get("targets", []):
            if event == "tick":
                tick = (dep["id"], target)
            elif event == "change":
                changes[target] = (dep["id"], target)
    if tick is None:
        sys.exit("no timer event in the page's config")
    return tick, changes


class Viewer(threading.Thread):
    """One open page: a session of its own that runs the live refresh every TICK seconds, one at a time, and then,
    as the browser does, the change events of the States that refresh changed (the parts of the view with news)."""

    def __init__(self, url: str, tick: tuple[int, int], changes: dict, stop: threading.Event):
        super().__init__(daemon=True)
        self.url, self.tick, self.changes, self.stop = url, tick, changes, stop
        self.session = uuid.uuid4().hex[:11]
        self.latencies: list[tuple[float, float]] = []  # (when, seconds): the tick and what it set off
        self.errors = 0
        self.requests = 0

    def _call(self, client: httpx.Client, event: tuple[int, int]) -> list[int]:
        """Run one event through Gradio's queue; the ids of the States it changed."""
        fn_index, trigger = event
        body = {"data": [None], "fn_index": fn_index, "trigger_id": trigger, "session_hash": self.session}
        self.requests += 1
        event_id = client.post(f"{self.url}/gradio_api/queue/join", json={**body, "event_data": None}).json()[
            "event_id"
        ]
        with client.stream("GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": self.session}) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                    if not msg.get("success", True):
                        self.errors += 1
                    return list((msg.get("output") or {}).get("changed_state_ids") or [])
        return []

    def refresh(self, client: httpx.Client) -> None:
        started = time.perf_counter()
        for state in self._call(client, self.tick):
            if state in self.changes:
                self._call(client, self.changes[state])
        self.latencies.append((time.time(), time.perf_counter() - started))

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    self.refresh(client)
                except (httpx.HTTPError, KeyError, ValueError):
                    self.errors += 1
                self.stop.wait(max(0.0, TICK - (time.perf_counter() - started)))


def _steps(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen) -> None:
    while len(_steps(run_dir)) < step:
        if proc.poll() is not None:
            sys.exit("the app exited during the run")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[0, 1, 5, 20, 0])
    parser.add_argument("--steps-per-phase", type=int, default=8)  # 6: ~5% between two quiet phases
    parser.add_argument("--warmup-steps", type=int, default=2)
    args = parser.parse_args()
    from gradio_client import Client

    root = Path(tempfile.mkdtemp(prefix="bench-load-"))
    (root / "runs").mkdir()
    proc, url = _start_app(root / "runs")
    try:
        tick, changes = _refresh_events(url)
        total = args.warmup_steps + args.steps_per_phase * len(args.viewers)
        # every step on the same post, with a learning rate too small to change the model: a step's time follows
        # its prompt's length and its answers' (shorter as the model learns) more than any viewer. With the
        # preset's texts and rate, two phases of no viewer differed by 11-30%; the work of a step is the same.
        post = json.loads((REPO / "assets" / "posts" / "train.jsonl").read_text().splitlines()[0])
        same = root / "one-post.jsonl"
        same.write_text("\n".join(json.dumps({"prompt": post["prompt"]}) for _ in range(total + 1)) + "\n")
        overrides = [f"grpo.max_steps={total}", "run.eval_steps=0", f"grpo.save_steps={total}", f"data.path={same}"]
        overrides.append("grpo.learning_rate=1e-12")
        run_id = Client(url, verbose=False).predict(preset="quick", overrides=overrides, api_name="/start_run")[
            "run_id"
        ]
        run_dir = root / "runs" / run_id
        _wait_for_step(run_dir, args.warmup_steps, proc)
        phases, done = [], args.warmup_steps
        for count in args.viewers:
            stop = threading.Event()
            viewers = [Viewer(url, tick, changes, stop) for _ in range(count)]
            for v in viewers:
                v.start()
            _wait_for_step(run_dir, done + args.steps_per_phase, proc)
            stop.set()
            for v in viewers:
                v.join(30)
            rows = _steps(run_dir)[done : done + args.steps_per_phase]
            done += args.steps_per_phase
            latencies = sorted(s for v in viewers for _, s in v.latencies)
            phase = {
                "viewers": count,
                "step_s": round(statistics.mean(r["step_time"] for r in rows), 2),
                "refreshes": len(latencies),
                "requests": sum(v.requests for v in viewers),
                "refresh_p50_ms": round(1000 * latencies[len(latencies) // 2]) if latencies else None,
                "refresh_p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))]) if latencies else None,
                "errors": sum(v.errors for v in viewers),
            }
            phases.append(phase)
            print(phase, flush=True)
    finally:
        proc.terminate()
        proc.wait(60)
    quiet = [p["step_s"] for p in phases if p["viewers"] == 0]
    print("\n| viewers | s / step | vs none | refresh p50 (ms) | p95 (ms) | refreshes | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for p in phases:
        ratio = f"{p['step_s'] / statistics.mean(quiet):.2f}x" if quiet else "-"
        print(
            f"| {p['viewers']} | {p['step_s']} | {ratio} | {p['refresh_p50_ms'] or '-'} | "
            f"{p['refresh_p95_ms'] or '-'} | {p['refreshes']} | {p['errors']} |"
        )
    out = REPO / "bench" / "results" / f"load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"url": url, "phases": phases}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
