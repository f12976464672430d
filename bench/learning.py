"""Benchmark: does a preset learn to summarise, over several seeds? Issue #18's bar, checked as a user would run it.

    make learning                                          # quick preset, seeds 42 1 2 (about 20 minutes here)
    python bench/learning.py --seeds 42 1 --set grpo.temperature=0.6
    python bench/learning.py --report runs/a runs/b        # tabulate runs already trained and evaluated

Each seed is two whole processes, `python -m grpo_app train --preset P` then `python -m grpo_app eval`, on every
bundled held-out layout (posts with a title line, documents with a heading, plain texts). A cell passes when the
tuned answers meet all four targets: mean |characters - 50| at most a quarter of the base model's, at least 80%
summaries, no copied title/heading/label/instruction or sentence, and ROUGE-L above each no-model baseline (the
title line, the first sentence). A learning figure from one seed is an anecdote: the table has a row per seed. The exit
status is 0 only when every cell passes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIN_SUMMARY_RATE = 0.8
LENGTH_SHARE = 0.25  # of the base model's length error
TARGET_CHARS = 50  # the and the recipe's length, whatever ideal_length the preset's reward uses (80 for quick)


def length_error(figures: dict, side: str) -> float:
    """Mean |characters - TARGET_CHARS| of one side's answers."""
    answers = figures["answers"]
    return sum(abs(float(a[f"{side}_chars"]) - TARGET_CHARS) for a in answers) / len(answers)


def copies(figures: dict) -> int:
    """How many tuned answers copy a title, heading, label, the instruction or a sentence."""
    return round(figures["tuned"]["copy_rate"] * figures["prompts"])


def verdict(figures: dict) -> list[str]:
    """What a held-out set's figures miss of the bar (empty when the cell passes)."""
    tuned, most = figures["tuned"], LENGTH_SHARE * length_error(figures, "base")
    missed, error, copied = [], length_error(figures, "tuned"), copies(figures)
    if error > most:
        missed.append(f"length {error:.0f} > {most:.0f}")
    if tuned["summary_rate"] < MIN_SUMMARY_RATE:
        missed.append(f"summaries {tuned['summary_rate']:.0%}")
    if copied:
        missed.append(f"{copied} cop{'y' if copied == 1 else 'ies'}")
    for side in ("title", "lead"):
        bar = figures.get(side, {}).get("rougeL")
        if bar is not None and tuned.get("rougeL", 0.0) <= bar:
            missed.append(f"ROUGE-L ≤ {side}")
    return missed


def table(reports: dict[str, dict]) -> tuple[str, bool]:
    """A markdown row per run: each set's summaries · length error · ROUGE-L · copies, and what it missed."""
    names = list(next(iter(reports.values()))["sets"])
    lines = ["| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    passed = True
    for run, rep in reports.items():
        cells = []
        for name in names:
            figures = rep["sets"][name]
            tuned, missed = figures["tuned"], verdict(figures)
            passed &= not missed
            error, rouge_l = length_error(figures, "tuned"), tuned.get("rougeL", 0.0)
            cell = f"{tuned['summary_rate']:.0%} · {error:.0f} · {rouge_l:.3f} · {copies(figures)}"
            cells.append(f"{cell} {'PASS' if not missed else '(' + ', '.join(missed) + ')'}")
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    bars = next(iter(reports.values()))["sets"]
    base = "; ".join(
        f"{n}: base length error {length_error(s, 'base'):.0f}, ROUGE-L "
        + ", ".join(f"{side} {s[side]['rougeL']:.3f}" for side in ("title", "lead") if "rougeL" in s.get(side, {}))
        for n, s in bars.items()
    )
    legend = f"cells: summaries · mean |chars − {TARGET_CHARS}| · ROUGE-L · copies. Bars: " + base
    return "\n".join(lines) + "\n\n" + legend, passed


def run(cmd: list[str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:5])} failed (exit {done.returncode}); its output is in {log}")
    return time.perf_counter() - started


def train_and_eval(preset: str, seed: int, root: Path, extra: list[str]) -> dict:
    run_dir = root / f"{preset}-seed{seed}"
    cli = [sys.executable, "-m", "grpo_app"]
    sets = ["--set", f"grpo.seed={seed}", f"run.dir={run_dir}", *extra]
    print(f"seed {seed}: training ({run_dir})…", flush=True)
    train_s = run([*cli, "train", "--preset", preset, *sets], root / f"{run_dir.name}.train.log")
    print(f"seed {seed}: trained in {train_s / 60:.1f} min (whole process); evaluating…", flush=True)
    run([*cli, "eval", "--adapter", str(run_dir / "adapter")], root / f"{run_dir.name}.eval.log")
    report = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    report["train_seconds"] = round(train_s, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], help="config overrides passed to `train`, KEY=VALUE")
    parser.add_argument("--root", default="", help="where the runs go (default: a new folder under runs/)")
    parser.add_argument("--report", nargs="+", metavar="RUN", help="tabulate these evaluated runs; train nothing")
    args = parser.parse_args()
    if args.report:
        reports = {Path(d).name: json.loads((Path(d) / "eval.json").read_text(encoding="utf-8")) for d in args.report}
        text, passed = table(reports)
        print(text)
        raise SystemExit(0 if passed else 1)
    root = Path(args.root or REPO / "runs" / f"learning-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    root.mkdir(parents=True, exist_ok=True)
    reports = {f"seed {s}": train_and_eval(args.preset, s, root, args.set) for s in args.seeds}
    text, passed = table(reports)
    minutes = ", ".join(f"{r['train_seconds'] / 60:.1f}" for r in reports.values())
    print(f"\n{args.preset} preset {' '.join(args.set)}\n\n{text}\n\ntraining minutes (whole process): {minutes}")
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "preset": args.preset,
        "overrides": args.set,
        "runs": {name: {**r, "sets": _figures(r)} for name, r in reports.items()},
        "passed": passed,
    }
    out = REPO / "bench" / "results" / f"learning-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    raise SystemExit(0 if passed else 1)


def _figures(report: dict) -> dict:
    """A report's figures without its answers (those stay in the run's eval.json), with the bar's length error."""
    return {
        name: {k: v for k, v in s.items() if k != "answers"}
        | {f"{side}_length_error_{TARGET_CHARS}": round(length_error(s, side), 1) for side in ("base", "tuned")}
        for name, s in report["sets"].items()
    }


if __name__ == "__main__":
    main()
