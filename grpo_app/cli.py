"""Headless GRPO Studio: the same engine as the app.

python -m grpo_app train --preset quick
python -m grpo_app train --config my.yaml --set grpo.max_steps=20 run.dir=out
python -m grpo_app train --resume runs/<run>                # after a crash, a kill or Stop
python -m grpo_app config --preset recipe > my.yaml
python -m grpo_app generate --adapter runs/<run>/adapter --prompts posts.jsonl --out answers.jsonl
python -m grpo_app eval --adapter runs/<run>/adapter        # base vs tuned on the held-out texts
python -m grpo_app export runs/<run> --merge --push user/my-model
accelerate launch -m grpo_app train --preset recipe     # several GPUs / processes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import traceback
from pathlib import Path

from .checks import validate
from .config import Config, ConfigError, load_config, parse_set, set_value
from .errors import first_line
from .hub import is_hub_id
from .presets import PRESETS
from .signals import StopOnSignal

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (see `config`).")
    p.add_argument("--preset", choices=list(PRESETS), help="Start from a preset (a task template).")
    p.add_argument(
        "--set",
        dest="sets",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="Override settings, e.g. grpo.max_steps=20 data.path=posts.jsonl (repeatable).",
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grpo_app", description="LoRA + GRPO fine-tuning, headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="Train a LoRA adapter with GRPO.")
    _add_config_args(train)
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="Continue an interrupted or stopped run from its last "
        "checkpoint, with its own config (--set still applies).",
    )
    cfg = sub.add_parser("config", help="Print the full config as YAML.")
    _add_config_args(cfg)
    cfg.add_argument("--explain", action="store_true", help="Each field's help as a comment above it.")
    cfg.add_argument("--markdown", action="store_true", help="The configuration reference (docs/configuration.md).")
    gen = sub.add_parser("generate", help="Generate completions for a file of prompts.")
    _add_config_args(gen)
    gen.add_argument("--model", help="Base model (default: the adapter's run model, else 'default').")
    gen.add_argument("--adapter", help="LoRA adapter folder (a run's adapter/) or Hub id.")
    gen.add_argument("--prompts", required=True, help="Prompts file: .jsonl/.json/.csv/.parquet/.txt.")
    gen.add_argument("--out", required=True, help="Output JSONL: prompt, completion, rewards.")
    gen.add_argument("--batch-size", type=int, default=64, help="most prompts decoded together")
    ex = sub.add_parser("export", help="Export a run (adapter or merged model) with a model card; push it.")
    ex.add_argument("run_dir", help="The run folder.")
    ex.add_argument("--merge", action="store_true", help="Fold the adapter into the base (merge_and_unload).")
    ex.add_argument("--out", help="Folder to write (default: <run>/merged or <run>/export).")
    ex.add_argument("--gguf", choices=["f16", "q8_0"], help="Also write the merged model as one GGUF file (llama.cpp).")
    ex.add_argument(
        "--adapter",
        choices=["last", "best"],
        default="last",
        help="The last adapter, or the best on held-out prompts (run.eval_steps).",
    )
    ex.add_argument("--push", metavar="REPO_ID", help="Upload to this Hub repo (user/name); token from HF_TOKEN.")
    ex.add_argument("--private", action="store_true", help="Create the Hub repo private.")
    ev = sub.add_parser("eval", help="Score base and tuned on held-out prompts; write <run>/eval.json.")
    _add_config_args(ev)
    ev.add_argument("--adapter", required=True, help="LoRA adapter folder (a run's adapter/) or Hub id.")
    ev.add_argument("--model", help="Base model (default: the adapter's run model, else 'default').")
    ev.add_argument(
        "--prompts",
        help="Your own prompts file (with a `reference` column for ROUGE) instead of the "
        "bundled held-out posts, documents and plain texts.",
    )
    ev.add_argument("--limit", type=int, default=0, help="At most this many prompts per set (0 = all).")
    ev.add_argument("--out", help="Report path (default: <run>/eval.json, or eval.json beside the adapter).")
    ev.add_argument("--batch-size", type=int, default=64, help="most prompts decoded together")
    rw = sub.add_parser("rewards", help="Test the rewards before training: sampled groups beside lazy probes.")
    _add_config_args(rw)
    rw.add_argument("--prompts", type=int, default=4, help="Dataset prompts to sample a group for.")
    rw.add_argument("--adapter", help="Sample from base + this adapter instead of the base model.")
    rw.add_argument("--out", help="Report path (default: <run.dir>/reward_bench.json, else <run.root>/...).")
    rw.add_argument("--list", action="store_true", help="Print every built-in reward, what it scores and reads.")
    sub.add_parser("app", help="Open the app (as `python app.py`): http://127.0.0.1:7860.")
    runs = sub.add_parser("runs", help="List the runs, or compare some: how each ended and the settings that differ.")
    runs.add_argument("--root", default="runs", help="The runs folder (default: runs).")
    runs.add_argument("--compare", nargs="+", metavar="RUN", help="Run folders (or names under --root) to compare.")
    worker = sub.add_parser("worker", help="A training process for the app (reads its run from stdin).")
    worker.add_argument("--request", help="A JSON request file instead of stdin (accelerate launch).")
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", help="Print an error's traceback, not just its sentence.")
    return parser


def cmd_train(args, cfg: Config) -> int:
    from .training import Reporter, is_main_process, train

    class Printer(Reporter):
        """Rank 0 narrates the run; another rank speaks only when it fails."""

        def on_status(self, status: str, message: str = "") -> None:
            if is_main_process() or status == "failed":
                print(f"[{status}] {message}", file=sys.stderr, flush=True)

        def on_log(self, line: str) -> None:
            if is_main_process():
                print(line, file=sys.stderr, flush=True)

    if args.resume:
        from .runs import Run

        cfg = Run(args.resume).config()
        for key, value in parse_set(args.sets):
            set_value(cfg, key, value)
        cfg.run.dir = args.resume
    stop = threading.Event()
    with StopOnSignal(stop) as signals:
        result = train(cfg, Printer(), stop, resume=bool(args.resume))
    rewards = [m["reward"] for m in result.metrics if m.get("reward") is not None]
    if not is_main_process():  # under accelerate / torchrun, rank 0 speaks for the run
        return 1 if result.status == "failed" else 0
    if rewards:
        k = min(5, len(rewards))
        print(f"mean reward: first {k} steps {sum(rewards[:k]) / k:.2f}, last {k} steps {sum(rewards[-k:]) / k:.2f}")
    print(f"run folder: {result.run_dir}")
    if result.status == "failed":
        print(f"error: {result.message}", file=sys.stderr)
        if args.debug:
            print(result.error, file=sys.stderr)
        return 1
    return 128 + signals.signum if signals.signum else 0


def cmd_generate(args, cfg: Config) -> int:
    from .data import build_prompts
    from .inference.engine import InferenceModels
    from .prompts import prompt_text
    from .rewards import score

    _for_inference(args, cfg)
    cfg.data.path, cfg.data.prompt_column, cfg.data.max_samples = args.prompts, "auto", 0
    prompts, report = build_prompts(cfg.data)
    print(f"{report.summary()}", file=sys.stderr)
    models = InferenceModels(cfg)

    def progress(done: int, total: int) -> None:
        print(f"\rgenerated {done}/{total}", end="", file=sys.stderr, flush=True)

    gens = models.generate(list(prompts["prompt"]), cfg.generation, args.adapter, args.batch_size, progress)
    print(file=sys.stderr)
    texts = [g.text for g in gens]
    columns = {c: list(prompts[c]) for c in prompts.column_names if c != "prompt"}  # an `answer`, as in training
    scores = score(cfg.reward, list(prompts["prompt"]), texts, models.tokenizer, **columns)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for i, (p, g) in enumerate(zip(prompts["prompt"], gens, strict=True)):
            row = {
                "prompt": prompt_text(p),
                "completion": g.text,
                "tokens": g.tokens,
                "rewards": {k: v[i] for k, v in scores.items()},
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    n = len(texts)
    print(
        f"wrote {n} completions to {out}; mean length {sum(map(len, texts)) / n:.1f} chars, "
        f"mean reward {sum(scores['total']) / n:.2f}"
    )
    return 0


def cmd_export(args) -> int:
    from .export import export_run, push_folder

    folder = export_run(args.run_dir, merge=args.merge, out=args.out, which=args.adapter, gguf=args.gguf or "")
    what = f"merged model and model-{args.gguf}.gguf" if args.gguf else "merged model" if args.merge else "adapter"
    print(f"exported {what} with model card to {folder}")
    if args.push:
        print(f"pushed: {push_folder(folder, args.push, private=args.private)}")
    return 0


def cmd_eval(args, cfg: Config) -> int:
    from .evaluation import TASK_SETS, default_sets, evaluate, figures_markdown, prompt_set, write_report
    from .inference.engine import InferenceModels

    _for_inference(args, cfg)
    if args.prompts:
        sets = {Path(args.prompts).stem: prompt_set(cfg.data, args.prompts, args.limit)}
    else:
        sets = default_sets(cfg.data, args.limit)
    models = InferenceModels(cfg)

    def progress(name: str, done: int, total: int) -> None:
        print(f"\r{name}: {done}/{total} answers", end="", file=sys.stderr, flush=True)

    report = evaluate(models, cfg, args.adapter, sets, args.batch_size, progress)
    print(file=sys.stderr)
    for name, result in report["sets"].items():
        title = f"{name} ({result['prompts']} prompts)"
        print(f"\n{figures_markdown(result, title, task=name in TASK_SETS)}")
    out = Path(args.out) if args.out else Path(args.adapter).parent / "eval.json"
    print(f"\nreport: {write_report(report, out)}")
    return 0


def cmd_runs(args) -> int:
    from .run_compare import differing_settings, load_runs, runs_frame
    from .runs import list_runs

    if not args.compare:
        listed = list_runs(args.root)
        if not listed:
            print(f"No runs in {args.root}.")
        for r in listed:
            print(r.label)
        return 0
    paths = [Path(p) if Path(p).is_dir() else Path(args.root) / p for p in args.compare]
    missing = [str(p) for p in paths if not (p / "config.yaml").is_file()]
    if missing:
        raise ConfigError(f"Not a run folder: {missing[0]} (no config.yaml).")
    runs = load_runs(paths)
    print(runs_frame(runs).to_string(index=False))
    differ = differing_settings(runs)
    print("\nsettings that differ: " + (", ".join(differ) if differ else "none"))
    return 0


def cmd_rewards(args, cfg: Config) -> int:
    from .reward_bench import report_markdown, run_bench

    if args.list:
        from .rewards import catalogue_markdown

        print(catalogue_markdown())
        return 0
    validate(cfg)
    cfg.model.dtype, cfg.model.device = "auto", "auto"

    def progress(done: int, total: int) -> None:
        print(f"\rsampled {done}/{total}", end="", file=sys.stderr, flush=True)

    report = run_bench(cfg, args.prompts, args.adapter, progress)
    print(file=sys.stderr)
    print(report_markdown(report))
    out = Path(args.out or Path(cfg.run.dir or cfg.run.root) / "reward_bench.json")
    print(f"\nreport: {report.save(out)}")
    return 0


def _for_inference(args, cfg: Config) -> None:
    """generate / eval: the adapter must exist, --model overrides the base, dtype and device suit this host."""
    if args.adapter and not Path(args.adapter).exists() and not is_hub_id(args.adapter):
        raise ConfigError(f"Adapter folder not found: {args.adapter}")
    if args.model:
        cfg.model.name = args.model
    cfg.model.dtype, cfg.model.device = "auto", "auto"


def _generate_config(args, cfg: Config) -> Config:
    """An adapter from a run is used as it was trained (model, prompt format, rewards) unless told otherwise."""
    from .runs import run_of_adapter

    run = run_of_adapter(args.adapter) if args.adapter else None
    if run is None or args.config or args.preset:
        return cfg
    run_cfg = run.config()
    cfg.model.name, cfg.data, cfg.reward = run_cfg.model.name, run_cfg.data, run_cfg.reward
    for key, value in parse_set(args.sets):
        set_value(cfg, key, value)
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        if args.command == "export":
            return cmd_export(args)
        if args.command == "runs":
            return cmd_runs(args)
        if args.command == "app":
            from .serve import main as serve

            return serve()
        if args.command == "worker":
            from .worker import main as worker

            return worker(args.request)
        cfg = load_config(args.preset, args.config, parse_set(args.sets))
        if args.command in ("generate", "eval"):
            cfg = _generate_config(args, cfg)
        if args.command == "config":
            from .config_help import explain, reference_markdown

            validate(cfg)
            print(reference_markdown() if args.markdown else explain(cfg) if args.explain else cfg.to_yaml(), end="")
            return 0
        if args.command == "train":
            return cmd_train(args, cfg)
        if args.command == "rewards":
            return cmd_rewards(args, cfg)
        return cmd_eval(args, cfg) if args.command == "eval" else cmd_generate(args, cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`rewards --list | head`): nothing more to say, no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush would fail again
        return 141  # as a shell reports a writer its reader left (128 + SIGPIPE)
    except Exception as e:  # a bug or a fault we did not foresee: still one sentence, the rest on request
        print(
            f"error: {type(e).__name__}: {first_line(e)}" + ("" if args.debug else " (--debug shows the traceback)"),
            file=sys.stderr,
        )
        if args.debug:
            traceback.print_exc()
        return 1


def run() -> None:
    """The `grpo-studio` command."""
    sys.exit(main())
