"""Benchmark: the reference recipe in plain TRL (a) vs GRPO Studio's engine (b), same prompts and seeds.

    make bench                         # 5 steps each, five runs, writes bench/results/<time>.json
    python bench/bench.py --steps 8 --runs 1

Offline, the recipe runs on SmolLM2-135M-Instruct (the offline default) and the bundled posts as plain
prompts; every hyperparameter is the `recipe` preset's. (a) is the recipe copied into TRL as a user
would, with only what the host forces (no 8-bit Adam without CUDA): fp32 weights + bf16 autocast,
gradient checkpointing on (GRPOConfig's default), sdpa. Each variant runs in its own process so peak
memory is its own. Step times exclude the first step (warm-up). The machine drifts, so the ratio is read over
several runs (median and range).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _recipe(steps: int, run_dir: str):
    from grpo_app.config import load_config

    return load_config(
        "recipe",
        overrides=[
            ("model.name", "default"),
            ("data.path", "bundled"),
            ("data.prompt_column", "prompt"),
            ("grpo.max_steps", steps),
            ("grpo.seed", 0),
            ("run.dir", run_dir),
        ],
    )


class GenTimer:
    """Counts seconds spent sampling completions: the trainer's `_generate_single_turn`, whichever sampler it uses."""

    def __init__(self, trainer_class):
        self.seconds, original = [], trainer_class._generate_single_turn
        timer = self

        def timed(trainer, *a, **k):
            t = time.perf_counter()
            out = original(trainer, *a, **k)
            timer.seconds.append(time.perf_counter() - t)
            return out

        trainer_class._generate_single_turn = timed


def run_trl(steps: int, out_dir: str) -> dict:
    """(a) The recipe as a user writes it with TRL."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from grpo_app.data import read_rows
    from grpo_app.models import resolve_model

    timer = GenTimer(GRPOTrainer)
    path = resolve_model("default")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    tok = AutoTokenizer.from_pretrained(path)
    dataset = Dataset.from_dict({"prompt": list(read_rows("bundled", "train")["prompt"])})

    def reward_len(completions, **kwargs):
        return [-abs(50 - len(completion)) for completion in completions]

    # The course's values plus the TRL 0.14 defaults it ran with (the recipe preset pins the same ones).
    args = GRPOConfig(
        output_dir=out_dir,
        learning_rate=2e-5,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        max_completion_length=96,
        num_generations=8,
        optim="adamw_torch",
        bf16=True,
        num_train_epochs=1,
        max_steps=steps,
        logging_steps=1,
        beta=0.04,
        loss_type="grpo",
        temperature=0.9,
        top_k=50,
        use_bias_correction_kl=False,
        gradient_checkpointing=False,
        report_to="none",
        seed=0,
        use_cpu=True,
        save_strategy="no",
    )
    lora = LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, target_modules="all-linear")
    trainer = GRPOTrainer(
        model=model, reward_funcs=[reward_len], args=args, train_dataset=dataset, processing_class=tok, peft_config=lora
    )
    trainer.train()
    logs = [r for r in trainer.state.log_history if "reward" in r]
    return {"logs": logs, "gen_seconds": timer.seconds}


def run_engine(steps: int, out_dir: str) -> dict:
    """(b) GRPO Studio's engine through its job registry, polling the live view as the page does."""
    from grpo_app.fast import FastGRPOTrainer
    from grpo_app.registry import JobRegistry
    from grpo_app.ui import live
    from grpo_app.ui.charts import all_figures

    timer = GenTimer(FastGRPOTrainer)
    registry = JobRegistry()
    job = registry.start(_recipe(steps, out_dir))
    refresh_ms, draw_ms, version, drawn = [], [], None, -1
    while job.snapshot().active:  # what the Train tab's timer does: redraw only what changed
        t = time.perf_counter()
        s = registry.snapshot()
        live.status_markdown(s), live.progress_html(s), live.log_text(s)
        draw = len(s.metrics) != drawn
        if draw:
            all_figures(s.metrics)
            drawn = len(s.metrics)
        if s.version != version:
            live.completions_frame(s.completions)
            version = s.version
        (draw_ms if draw else refresh_ms).append(1000 * (time.perf_counter() - t))
        time.sleep(1.5)
    snap = job.wait()
    if snap.status != "finished":
        raise SystemExit(f"engine run {snap.status}: {snap.message}\n{snap.error}")
    return {"logs": snap.metrics, "gen_seconds": timer.seconds, "refresh_ms": refresh_ms, "draw_ms": draw_ms}


def summarize(raw: dict, params: dict) -> dict:
    logs = raw["logs"][1:]  # the first step warms up
    gen = raw["gen_seconds"][1:]
    step = statistics.mean(r["step_time"] for r in logs)
    gen_per_step = sum(gen) / len(logs)
    completion_tokens = statistics.mean(r["completions/mean_length"] for r in logs) * 16
    tokens_per_step = statistics.mean(
        b["num_tokens"] - a["num_tokens"] for a, b in zip(raw["logs"], raw["logs"][1:], strict=False)
    )
    # LoRA training FLOPs: forward 2PT + backward (activation grads) 2PT over all tokens, plus the LM head on
    # the completion tokens; gradient checkpointing's extra forward is not useful work and is not counted.
    flops = 4 * params["non_embedding"] * tokens_per_step + 4 * params["lm_head"] * completion_tokens
    train_s = max(step - gen_per_step, 1e-9)
    return {
        "step_s": step,
        "completion_tokens_per_s": completion_tokens / step,
        "generation_share": gen_per_step / step,
        "training_share": 1 - gen_per_step / step,
        "train_tflops": flops / 1e12,
        "train_gflops_per_s": flops / train_s / 1e9,
        "rewards": [r["reward"] for r in raw["logs"]],
        "peak_rss_mb": raw["peak_rss_mb"],
        "refresh_ms": raw.get("refresh_ms", []),
        "draw_ms": raw.get("draw_ms", []),
    }


def child(variant: str, steps: int, out: str) -> None:
    raw = (run_trl if variant == "trl" else run_engine)(steps, str(Path(out).with_suffix("")) + "-run")
    raw["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out).write_text(json.dumps(raw, default=float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5, help="(a) then (b), this many times: the ratio's spread")
    parser.add_argument("--variant", choices=["trl", "engine"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return child(args.variant, args.steps, args.out)
    runs = []
    for i in range(args.runs):
        print(f"run {i + 1} of {args.runs}", flush=True)
        runs.append(one_run(args.steps))
        report(runs[-1])
    ratios = [r["speedup"] for r in runs]
    print(
        f"\nspeed-up over {len(runs)} runs: median {statistics.median(ratios):.2f}x, "
        f"{min(ratios):.2f}x to {max(ratios):.2f}x ({', '.join(f'{x:.2f}' for x in ratios)})"
    )
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    result = {**runs[-1], "runs": runs, "speedups": ratios} if len(runs) > 1 else runs[0]
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


def one_run(steps: int) -> dict:
    """(a) and (b) back to back, each in its own process; the figures of both and their ratio."""
    import tempfile

    from transformers import AutoConfig

    from grpo_app.models import cpu_matmul_gflops, resolve_model

    tmp = Path(tempfile.mkdtemp(prefix="grpo-bench-"))
    raw = {}
    for variant in ("trl", "engine"):
        print(f"running ({'a' if variant == 'trl' else 'b'}) {variant}, {steps} steps…", flush=True)
        out = tmp / f"{variant}.json"
        subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--steps", str(steps), "--out", str(out)], check=True
        )
        raw[variant] = json.loads(out.read_text())
    cfg = AutoConfig.from_pretrained(resolve_model("default"))
    lm_head = cfg.vocab_size * cfg.hidden_size
    import torch
    from transformers import AutoModelForCausalLM

    total = sum(p.numel() for p in AutoModelForCausalLM.from_config(cfg).parameters())
    params = {"non_embedding": total - lm_head, "lm_head": lm_head}
    speed = cpu_matmul_gflops(2048)  # the MFU denominator: the faster dtype (a Xeon ran float32 twice bf16's speed)
    bf16, fp32 = speed.get("bfloat16", 0.0), speed["float32"]
    peak = max(bf16, fp32)
    a, b = (summarize(raw[v], params) for v in ("trl", "engine"))
    for r in (a, b):
        r["train_mfu"] = r["train_gflops_per_s"] / peak
    return {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "bf16_matmul_gflops": bf16,
            "fp32_matmul_gflops": fp32,
        },
        "steps": steps,
        "a_plain_trl": a,
        "b_engine": b,
        "speedup": a["step_s"] / b["step_s"],
    }


def report(result: dict) -> None:
    a, b = result["a_plain_trl"], result["b_engine"]
    rows = [
        ("s / optimizer step", "step_s", "{:.1f}"),
        ("completion tokens / s", "completion_tokens_per_s", "{:.1f}"),
        ("generation share", "generation_share", "{:.0%}"),
        ("training share", "training_share", "{:.0%}"),
        ("training MFU*", "train_mfu", "{:.1%}"),
        ("peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
    ]
    machine, steps = result["machine"], result["steps"]
    peaks = {"bf16": machine["bf16_matmul_gflops"], "float32": machine.get("fp32_matmul_gflops")}  # older: bf16 only
    said = ", ".join(f"{k} {v:.0f}" for k, v in peaks.items() if v)
    print(f"\nmatmul peak here: {said} GFLOP/s (MFU against the faster); {steps} steps each, first excluded\n")
    print(f"{'':28}{'(a) plain TRL':>16}{'(b) engine':>14}")
    for label, key, fmt in rows:
        print(f"{label:28}{fmt.format(a[key]):>16}{fmt.format(b[key]):>14}")
    mean = statistics.mean
    print(f"{'mean reward (all steps)':28}{mean(a['rewards']):>16.1f}{mean(b['rewards']):>14.1f}")
    if b["refresh_ms"] and b["draw_ms"]:
        print(
            f"{'live-view refresh (ms)':28}{'':>16}{statistics.median(b['refresh_ms']):>9.1f} med"
            f" / {max(b['refresh_ms']):.0f} max"
        )
        print(
            f"{'  ...with a new step drawn':28}{'':>16}{statistics.median(b['draw_ms']):>9.0f} med"
            f" / {max(b['draw_ms']):.0f} max"
        )
    print("* FLOPs of plain TRL's step (all prompt and padding tokens): work the engine skips still counts.")
    print(f"\nspeed-up (a)/(b) per step: {result['speedup']:.2f}x")


if __name__ == "__main__":
    main()
