"""Benchmark: memory and first-point latency of the app as a user meets them (issue #20).

    python bench/bench_memory.py               # quick preset, 30 steps; writes bench/results/memory-<time>.json
    python bench/bench_memory.py --steps 100 --only quick   # the whole quick run, default settings only

1. The app's registry (training in a warm worker process, as `app.py` runs it) starts the quick preset: seconds
   from Start to the first chart point, the worker's peak memory (status.json) and its memory step by step.
2. The same run with `speed.return_memory=on` (the heap trimmed after each step) and with gradient checkpointing on
   (memory for speed).
3. The app process itself after the run and after one Compare generation (base and tuned on the cat document,
   the recipe's generation settings): its resident memory when idle again, and the spare warm worker's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
GB = 2**30


VARIANTS = {  # name -> overrides of the quick preset
    "quick": [],
    "return_memory=on": [("speed.return_memory", "on")],
    "gradient checkpointing on": [("speed.skip_checkpointing", "off"), ("grpo.gradient_checkpointing", True)],
}


def _train(registry, steps: int, run_dir: Path, overrides: list) -> dict:
    from grpo_app.config import load_config

    cfg = load_config("quick", overrides=[("grpo.max_steps", steps), ("run.dir", str(run_dir)), *overrides])
    started = time.perf_counter()
    job = registry.start(cfg)
    first = None
    while True:
        s = job.snapshot()
        if first is None and s.metrics:
            first = time.perf_counter() - started
        if not s.active:
            break
        time.sleep(0.2)
    status = json.loads((run_dir / "status.json").read_text())
    memory = [json.loads(line)["memory_gb"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "status": s.status,
        "first_point_s": round(first or -1, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_memory_gb": status.get("peak_memory_gb"),
        "memory_gb_by_step": memory,
    }


def _rss_gb(pid: int | None = None) -> float:
    return round(psutil.Process(pid).memory_info().rss / GB, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--only", choices=list(VARIANTS), help="run this variant alone")
    args = parser.parse_args()
    from grpo_app.config import load_config
    from grpo_app.memory import trim
    from grpo_app.registry import JobRegistry
    from grpo_app.ui.compare_tab import CAT_DOCUMENT

    root = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    results: dict = {"steps": args.steps, "app_start_gb": _rss_gb()}
    registry = JobRegistry(processes=True)
    registry.warm()
    time.sleep(5)  # the warm worker's imports, as in an app a user opened a while ago
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        if args.only and name != args.only:
            continue
        results[name] = _train(registry, args.steps, root / f"v{i}", overrides)
        print(name, {k: v for k, v in results[name].items() if k != "memory_gb_by_step"}, flush=True)
    results["app_after_runs_gb"] = _rss_gb()
    cfg = load_config("quick")
    models = registry.inference(cfg)
    for _ in models.stream_pair(CAT_DOCUMENT, cfg.generation, str(root / "v0" / "adapter")):
        pass
    results["app_after_compare_gb"] = _rss_gb()
    trim()
    results["app_idle_after_compare_gb"] = _rss_gb()
    spare = registry._worker.proc.pid if registry._worker is not None else None
    results["spare_worker_gb"] = _rss_gb(spare) if spare else None
    print(json.dumps({k: v for k, v in results.items() if k not in VARIANTS}, indent=1))
    out = REPO / "bench" / "results" / f"memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
