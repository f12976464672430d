"""Benchmark: generation as a user runs it, a whole process each side (imports, model load, prefill, decoding).

    make bench                              # runs this after the generation benchmark
    python bench/bench_process.py --posts 24 --new-tokens 128

(a) `bench/plain_generate.py`: plain transformers, `generate` in batches of 8, as a user would write it;
(b) `python -m grpo_app generate`: this app's CLI.
Both answer the same chat prompts (the first N held-out posts after "Summarize this text in one sentence.") with
the recipe's sampling (temperature 0.5, min_p 0.1) on the offline SmolLM2-135M-Instruct. Each side runs twice:
with one new token (what start-up and the prefill cost) and with N new tokens; the difference is the decoding.
The sides alternate so that the machine's drift falls on both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def prompts_file(n: int, out: Path) -> Path:
    from grpo_app.evaluation import heldout_set
    from grpo_app.settings import DataConfig

    form = DataConfig(instruction="Summarize this text in one sentence.", chat_format=True)
    rows = heldout_set(form, "posts", n).prompts
    out.write_text("".join(json.dumps({"prompt": p}, ensure_ascii=False) + "\n" for p in rows), encoding="utf-8")
    return out


def command(side: str, model: str, prompts: Path, out: Path, new_tokens: int) -> list[str]:
    if side == "plain":
        script = str(REPO / "bench" / "plain_generate.py")
        return [sys.executable, script, model, str(prompts), str(out), "--max-new-tokens", str(new_tokens)]
    return [
        *(sys.executable, "-m", "grpo_app", "generate", "--prompts", str(prompts), "--out", str(out)),
        *("--set", f"generation.max_new_tokens={new_tokens}", "generation.temperature=0.5", "generation.min_p=0.1"),
    ]


def timed(cmd: list[str], out: Path) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {"wall_s": round(wall, 2), "tokens": sum(r["tokens"] for r in rows), "answers": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=24)
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()
    from grpo_app.models import resolve_model

    model = resolve_model("default")
    tmp = Path(tempfile.mkdtemp(prefix="grpo-bench-process-"))
    prompts = prompts_file(args.posts, tmp / "prompts.jsonl")
    result: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "posts": args.posts,
        "new_tokens": args.new_tokens,
    }
    for new_tokens in (args.new_tokens, 1):
        for side in ("app", "plain"):
            out = tmp / f"{side}-{new_tokens}.jsonl"
            print(f"{side}, {new_tokens} new tokens…", flush=True)
            result[f"{side}_{new_tokens}"] = timed(command(side, model, prompts, out, new_tokens), out)
    report(result)
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"process-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


def report(r: dict) -> None:
    n = r["new_tokens"]
    print(f"\n{r['posts']} posts, {n} new tokens, a whole process each:")
    print(f"{'':40}{'(a) plain generate':>20}{'(b) grpo_app generate':>24}")
    rows = []
    for side in ("plain", "app"):
        full, one = r[f"{side}_{n}"], r[f"{side}_1"]
        decode = full["wall_s"] - one["wall_s"]
        rows.append((full["wall_s"], one["wall_s"], decode, full["tokens"], full["tokens"] / full["wall_s"]))
    labels = ("whole run (s)", "start-up + prefill: 1 new token (s)", "decoding: the difference (s)", "tokens")
    for i, label in enumerate((*labels, "tokens / s, whole run")):
        a, b = rows[0][i], rows[1][i]
        print(f"{label:40}{a:>20.1f}{b:>24.1f}" if isinstance(a, float) else f"{label:40}{a:>20}{b:>24}")
    (pa, _, da, ta, ra), (pb, _, db, tb, rb) = rows
    print(
        f"\nwhole process: {rb / ra:.2f}x plain's tokens/s ({pa / pb:.2f}x its wall time); "
        f"decoding alone: {(tb / db) / (ta / da):.2f}x its tokens/s"
    )


if __name__ == "__main__":
    main()
