"""Benchmark: generation where a user waits, in three ways, one process, back to back.

    make bench                          # runs this after the training benchmark
    python bench/bench_generation.py --posts 40

(a) transformers `generate`, as the Compare tab streamed before: a TextIteratorStreamer, base then tuned (PEFT
adapter switched on and off), and `generate` in batches of 8 for the batch comparison;
(b) `pipeline("text-generation")` as the Hugging Face course uses it, on the base and on a merged copy;
(c) this app's engine (`InferenceModels`): both sides stream together; batches on the fast decoder.
They run in the order c, b, a: (a) attaches the adapter to the base model itself, as the old path did.

Offline model (SmolLM2-135M-Instruct), the recipe's generation settings (256 new tokens, temperature 0.5, min_p 0.1),
the Compare tab's cat document, and the first N held-out posts. The tuned side is a LoRA adapter given with
--adapter, or else a fresh one with random weights (r 16, all-linear): speed does not depend on what it learned,
but answer lengths do, so every figure says how many tokens it made.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from grpo_app.config import Config  # noqa: E402
from grpo_app.data import to_prompt  # noqa: E402
from grpo_app.evaluation import heldout_set  # noqa: E402
from grpo_app.inference.decoder import generate_kwargs  # noqa: E402
from grpo_app.inference.engine import InferenceModels  # noqa: E402
from grpo_app.prompts import render_prompt  # noqa: E402
from grpo_app.settings import DataConfig, GenerationSettings  # noqa: E402

FORMAT = DataConfig(instruction="Summarize this text in one sentence.", chat_format=True)


def random_adapter(cfg: Config, out: Path) -> str:
    from peft import LoraConfig, get_peft_model

    from grpo_app.models import load_model

    model, tokenizer, _ = load_model(cfg)
    torch.manual_seed(0)
    peft = get_peft_model(
        model,
        LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"),
    )
    peft.save_pretrained(out)
    return str(out)


def streamed(run, tokenizer) -> dict:
    """Time to the first piece of text and the whole, for a generate(streamer=...) call run in a thread."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    t0 = time.perf_counter()
    thread = threading.Thread(target=run, args=(streamer,))
    thread.start()
    first, text = None, ""
    for piece in streamer:
        first = first if first is not None or not piece else time.perf_counter() - t0
        text += piece
    thread.join()
    return {"first_s": first, "text": text, "done_s": time.perf_counter() - t0}


def compare_generate(models: InferenceModels, adapter: str, prompt, s: GenerationSettings) -> dict:
    """(a) base then tuned, each `generate` with a streamer, as the Compare tab did."""
    from grpo_app.inference.engine import _adapters_off, _encode

    tok, out, t0 = models.tokenizer, {}, time.perf_counter()
    for side, target in (("base", None), ("tuned", adapter)):
        model = models.select(target)
        inputs = _encode([render_prompt(prompt, tok)], tok, models.base.device)

        def run(streamer, model=model, inputs=inputs):
            with _adapters_off(model), torch.inference_mode():
                torch.manual_seed(s.seed)
                model.generate(**inputs, streamer=streamer, **generate_kwargs(s, tok))

        start = time.perf_counter() - t0
        r = streamed(run, tok)
        out[side] = {
            "first_s": start + r["first_s"],
            "done_s": start + r["done_s"],
            "tokens": len(tok(r["text"], add_special_tokens=False)["input_ids"]),
        }
    return out


def pipelines(models: InferenceModels, adapter: str):
    import copy

    from peft import PeftModel
    from transformers import pipeline

    merged = PeftModel.from_pretrained(copy.deepcopy(models.base), adapter).merge_and_unload()
    return {
        side: pipeline("text-generation", model=m, tokenizer=models.tokenizer)
        for side, m in (("base", models.base), ("tuned", merged))
    }


def pipeline_kwargs(s: GenerationSettings) -> dict:
    return {"max_new_tokens": s.max_new_tokens, "do_sample": True, "temperature": s.temperature, "min_p": s.min_p}


def compare_pipeline(pipes: dict, prompt, s: GenerationSettings) -> dict:
    """(b) the course's call, one side after the other; a pipeline shows nothing until it is done."""
    out, t0 = {}, time.perf_counter()
    for side, pipe in pipes.items():
        torch.manual_seed(s.seed)
        text = pipe(prompt, **pipeline_kwargs(s))[0]["generated_text"][-1]["content"]
        done = time.perf_counter() - t0
        out[side] = {
            "first_s": done,
            "done_s": done,
            "tokens": len(pipe.tokenizer(text, add_special_tokens=False)["input_ids"]),
        }
    return out


def compare_engine(models: InferenceModels, adapter: str, prompt, s: GenerationSettings) -> dict:
    """(c) both sides at once."""
    t0, out = time.perf_counter(), {"base": {}, "tuned": {}}
    for base, tuned in models.stream_pair(prompt, s, adapter):
        now = time.perf_counter() - t0
        for side, g in (("base", base), ("tuned", tuned)):
            if g.tokens and "first_s" not in out[side]:
                out[side]["first_s"] = now
            if g.tokens != out[side].get("tokens"):
                out[side].update(tokens=g.tokens, done_s=now)
    return out


def batch(fn, prompts) -> dict:
    t0 = time.perf_counter()
    tokens = fn(prompts)
    return {"wall_s": time.perf_counter() - t0, "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=40)
    parser.add_argument("--adapter", help="a trained adapter for the tuned side (default: a random LoRA)")
    args = parser.parse_args()
    cfg = Config()
    tmp = Path(tempfile.mkdtemp(prefix="grpo-bench-gen-"))
    adapter = args.adapter or random_adapter(cfg, tmp / "adapter")
    s = GenerationSettings()  # the recipe's: 256 new tokens, temperature 0.5, min_p 0.1
    cat = to_prompt((REPO / "assets" / "cat_document.txt").read_text().strip(), FORMAT)
    posts = heldout_set(FORMAT, "posts", args.posts).prompts
    models = InferenceModels(cfg)
    tok = models.tokenizer
    print(
        f"cat document: {len(tok(render_prompt(cat, tok))['input_ids'])} prompt tokens; {len(posts)} posts", flush=True
    )
    result: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
        },
        "settings": s.__dict__,
        "posts": len(posts),
    }

    models.warm(adapter)  # what picking the adapter in the Compare tab does
    print("(c) engine…", flush=True)
    result["c_engine"] = {
        "cat": compare_engine(models, adapter, cat, s),
        "batch": batch(lambda p: sum(g.tokens for side in (None, adapter) for g in models.generate(p, s, side)), posts),
    }
    print("(b) pipeline…", flush=True)
    pipes = pipelines(models, adapter)

    def pipe_batch(p):
        total = 0
        for pipe in pipes.values():
            pipe.tokenizer.padding_side = "left"
            outs = pipe(p, batch_size=8, **pipeline_kwargs(s))
            total += sum(
                len(tok(o[0]["generated_text"][-1]["content"], add_special_tokens=False)["input_ids"]) for o in outs
            )
        return total

    result["b_pipeline"] = {"cat": compare_pipeline(pipes, cat, s), "batch": batch(pipe_batch, posts)}
    print("(a) generate…", flush=True)
    from grpo_app.inference.engine import _adapters_off, generate

    def old_batch(p):
        total = 0
        for side in (None, adapter):
            model = models.select(side)
            with _adapters_off(model):
                total += sum(g.tokens for g in generate(model, tok, p, s, 8))
        return total

    result["a_generate"] = {"cat": compare_generate(models, adapter, cat, s), "batch": batch(old_batch, posts)}
    report(result)
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"generation-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {path}")


def report(r: dict) -> None:
    cols = [("(a) generate", "a_generate"), ("(b) pipeline", "b_pipeline"), ("(c) engine", "c_engine")]
    rows = []
    for label, fn in (
        ("cat: first base token (s)", lambda v: v["cat"]["base"]["first_s"]),
        ("cat: first tuned token (s)", lambda v: v["cat"]["tuned"]["first_s"]),
        ("cat: both answers done (s)", lambda v: max(v["cat"]["base"]["done_s"], v["cat"]["tuned"]["done_s"])),
        ("cat: tokens (base + tuned)", lambda v: v["cat"]["base"]["tokens"] + v["cat"]["tuned"]["tokens"]),
        (
            "cat: tokens / s, both sides",
            lambda v: (
                (v["cat"]["base"]["tokens"] + v["cat"]["tuned"]["tokens"])
                / max(v["cat"]["base"]["done_s"], v["cat"]["tuned"]["done_s"])
            ),
        ),
        (f"batch, {r['posts']} posts x 2 sides (s)", lambda v: v["batch"]["wall_s"]),
        ("batch: tokens", lambda v: v["batch"]["tokens"]),
        ("batch: tokens / s", lambda v: v["batch"]["tokens"] / v["batch"]["wall_s"]),
    ):
        rows.append((label, [fn(r[k]) for _, k in cols]))
    print(f"\n{'':34}" + "".join(f"{c:>15}" for c, _ in cols))
    for label, values in rows:
        print(f"{label:34}" + "".join(f"{v:>15.1f}" if isinstance(v, float) else f"{v:>15}" for v in values))
    a, c = r["a_generate"], r["c_engine"]
    print(
        f"\nbatch comparison: {a['batch']['wall_s'] / c['batch']['wall_s']:.2f}x generate's wall time, "
        f"{(c['batch']['tokens'] / c['batch']['wall_s']) / (a['batch']['tokens'] / a['batch']['wall_s']):.2f}x "
        "its tokens/s"
    )


if __name__ == "__main__":
    main()
