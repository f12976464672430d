"""Where a training run's memory goes: the process's RSS and the training thread's stack, sampled every 20 ms.

    python bench/profile_memory.py --steps 30                      # the quick preset, in this process
    python bench/profile_memory.py --steps 30 --set speed.return_memory=on
    MALLOC_MMAP_THRESHOLD_=65536 python bench/profile_memory.py    # glibc returns freed blocks: the live set

Prints the RSS over time and the stacks at the highest samples; writes <out>/rss.json ([seconds, GB] pairs).
How the quick run went from 4.7 to 2.8 GB: docs/experiments.md, 2026-11-30.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args()
    from grpo_app.config import load_config, parse_set
    from grpo_app.training import train

    out = Path(args.out or tempfile.mkdtemp(prefix="profile-memory-"))
    process, main_thread, samples, done = psutil.Process(), threading.get_ident(), [], threading.Event()

    def sample() -> None:
        start = time.time()
        while not done.is_set():
            frame = sys._current_frames().get(main_thread)
            stack = (
                [
                    f"{f.f_code.co_filename.split('site-packages/')[-1]}:{f.f_code.co_name}:{line}"
                    for f, line in traceback.walk_stack(frame)
                ]
                if frame
                else []
            )
            samples.append((round(time.time() - start, 2), process.memory_info().rss / 2**30, stack[:12]))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    overrides = [("grpo.max_steps", args.steps), ("run.dir", str(out)), *parse_set(args.set)]
    train(load_config(args.preset, overrides=overrides))
    done.set()
    print("RSS (GB) every ~2 s:", [round(gb, 2) for _, gb, _ in samples[::100]])
    for _, gb, stack in sorted(samples, key=lambda s: -s[1])[:200:50]:
        print(f"{gb:.3f} GB\n    " + "\n    ".join(s for s in stack if "torch/nn/modules" not in s))
    (out / "rss.json").write_text(json.dumps([(t, round(gb, 3)) for t, gb, _ in samples]))
    print(f"peak {max(gb for _, gb, _ in samples):.2f} GB; wrote {out / 'rss.json'}")


if __name__ == "__main__":
    main()
