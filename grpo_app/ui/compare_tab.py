"""The Compare tab: one prompt to the base and the tuned model, streamed side by side, and a batch
comparison over held-out prompts with numbers and a chart.

Both sides come from one inference copy of the base model (adapter on / off), separate from the model a
running job trains, and the tuned side reads the run's last *saved* adapter: comparing never touches
the training weights, it only shares the CPU.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from ..access import Policy
from ..checks import validate
from ..config import Config, ConfigError, preset, set_value
from ..data import ASSETS, FILE_TYPES, to_prompt
from ..evaluation import HELDOUT, TASK_SETS, compare_batch, figures_markdown, heldout_set, prompt_set, summarize
from ..heldout import best_step
from ..prompts import without_instruction
from ..registry import JobRegistry
from ..rewards import score
from ..runs import list_runs, run_of_adapter
from ..settings import DataConfig, GenerationSettings
from . import live
from .charts import comparison_figure, quality_bars_figure

CAT_DOCUMENT = (ASSETS / "cat_document.txt").read_text().strip() if (ASSETS / "cat_document.txt").is_file() else ""


def adapter_choices(runs_root: str) -> tuple[list[tuple[str, str]], str | None]:
    """The runs with an adapter, newest first, and the one to offer: the newest finished run (not a stray short
    one that was stopped), else the newest."""
    runs = [r for r in list_runs(runs_root) if r.has_adapter]
    offered = next((r for r in runs if r.status == "finished"), runs[0] if runs else None)
    choices = []
    for r in runs:
        choices.append((r.label, str(r.path / "adapter")))
        step = best_step(r.path)
        if step is not None:  # the adapter that scored best on held-out prompts (run.eval_steps)
            choices.append((f"{r.label} · best (step {step})", str(r.path / "best")))
    return choices, str(offered.path / "adapter") if offered else None


def run_config(adapter: str | None) -> Config:
    """Model, prompt format and rewards as the adapter's run used them; the quick preset otherwise."""
    run = run_of_adapter(adapter) if adapter and Path(adapter).exists() else None
    cfg = run.config() if run else preset("quick")
    cfg.model.device, cfg.model.dtype = "auto", "auto"  # inference picks for this host
    return cfg


def side_stats(g, cfg: Config, prompt) -> str:
    try:
        scores = score(cfg.reward, [prompt], [g.text])
        rewards = " · ".join(f"{k} **{v[0]:.2f}**" for k, v in scores.items())
    except ConfigError as e:  # a reward that reads a dataset column (an answer) has none for a typed prompt
        rewards = f"rewards not shown: {e}"
    return f"{len(g.text)} chars · {g.tokens} tokens · {g.seconds:.1f}s · {g.tokens_per_s:.1f} tok/s  \n{rewards}"


def create_compare_tab(registry: JobRegistry, runs_root: str, policy: Policy | None = None) -> dict:
    policy = policy or Policy(runs_root=runs_root)

    with gr.Row():
        adapter = gr.Dropdown(
            label="Tuned model (a run's adapter)",
            choices=[],
            allow_custom_value=True,
            scale=4,
            elem_id="adapter-choice",
            info="Newest run first; a running job shows its last saved adapter.",
        )
        refresh = gr.Button("↻ Refresh runs", size="sm", scale=1)
    custom = gr.Textbox(label="…or an adapter folder / Hub id", placeholder="runs/…/adapter or user/my-adapter")
    notice = gr.Markdown(elem_id="compare-notice")
    with gr.Row():
        instruction = gr.Textbox(
            label="Instruction",
            value=preset("quick").data.instruction,
            scale=4,
            lines=2,
            max_lines=4,
            info="Offered from the run's training config ({text} marks where the text goes); empty = the text alone.",
        )
        chat = gr.Checkbox(label="Chat template", value=True, scale=1)
    prompt = gr.Textbox(label="Prompt", value=CAT_DOCUMENT, lines=8, max_lines=14, elem_id="compare-prompt")
    d = GenerationSettings()  # the recipe's generation settings
    with gr.Accordion("Generation settings (the recipe's by default)", open=False):
        with gr.Row():
            max_new = gr.Number(
                d.max_new_tokens, label="Max new tokens", precision=0, min_width=90, elem_id="gen-max-new"
            )
            temperature = gr.Number(d.temperature, label="Temperature", min_width=90)
            min_p = gr.Number(d.min_p, label="min_p", min_width=90)
            top_p = gr.Number(d.top_p, label="top_p", min_width=90)
            seed = gr.Number(d.seed, label="Seed (both sides)", precision=0, min_width=90)
            greedy = gr.Checkbox(label="Greedy", value=not d.do_sample)
    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
    with gr.Row(equal_height=True):
        with gr.Column():
            gr.Markdown("### Base model")
            base_out = gr.Textbox(lines=8, max_lines=16, show_label=False, elem_id="base-output")
            base_stats = gr.Markdown(elem_id="base-stats", elem_classes="side-stats")
        with gr.Column():
            gr.Markdown("### Tuned model")
            tuned_out = gr.Textbox(lines=8, max_lines=16, show_label=False, elem_id="tuned-output")
            tuned_stats = gr.Markdown(elem_id="tuned-stats", elem_classes="side-stats")
    gr.Markdown(
        "## Batch comparison\nThe same held-out prompts through both models with the same seeds: what "
        "did training change? Length error, the share of answers that are summaries (grounded in the text, "
        "not repetitive, not filler, no copied title, heading or sentence, shorter than the text), coverage, "
        "ROUGE against the reference summaries, and every reward, beside two answers that need no model: "
        "the text's title and its first sentence."
    )
    with gr.Row():
        which = gr.Radio(
            [*HELDOUT, *TASK_SETS, "file"],
            value="posts",
            label="Held-out prompts",
            min_width=200,
            elem_id="batch-set",
            info="40 posts with a title line, 12 documents with a heading, 24 "
            "plain texts, or your file (a `reference` column adds ROUGE)",
        )
        n_prompts = gr.Number(
            20, label="Prompts", precision=0, min_width=90, elem_id="batch-n", info="at most (0 = all)"
        )
        batch_file = gr.File(label="Prompts file", file_types=list(FILE_TYPES), type="filepath", height=90)
        batch_btn = gr.Button("Run batch comparison", elem_id="batch-btn")
    batch_summary = gr.Markdown(elem_id="batch-summary")
    with gr.Row(visible=False) as batch_plots:
        batch_plot = gr.Plot(show_label=False, elem_id="batch-plot")
        quality_plot = gr.Plot(show_label=False, elem_id="batch-quality")
    batch_table = gr.Dataframe(
        wrap=True,
        max_height=400,
        elem_id="batch-table",
        visible=False,
        column_widths=["16%", "30%", "12%", "30%", "12%"],
    )
    batch_files = gr.File(label="Export", file_count="multiple", interactive=False, visible=False)

    def settings(max_new, temperature, min_p, top_p, seed, greedy) -> GenerationSettings:
        """The widgets' values (blank = the default), checked by the config's own validation."""
        values = {
            "max_new_tokens": max_new,
            "temperature": temperature,
            "min_p": min_p,
            "top_p": top_p,
            "seed": seed,
            "do_sample": not greedy,
        }
        cfg = Config()
        for key, value in values.items():
            if value is not None:
                set_value(cfg, f"generation.{key}", int(value) if key in ("max_new_tokens", "seed") else value)
        return validate(cfg).generation

    def refresh_runs(current):
        choices, best = adapter_choices(runs_root)
        value = current if current in [v for _, v in choices] else best
        note = "" if choices else "No run with an adapter yet: train one in the Train tab. The base model works now."
        return gr.update(choices=choices, value=value), note

    def pick(adapter, custom):
        chosen = (custom or "").strip() or adapter or None
        policy.check_adapter(chosen)
        return chosen

    def offer_format(adapter):
        try:
            policy.check_adapter(adapter)
        except ConfigError:
            return gr.skip(), gr.skip()
        cfg = run_config(adapter)
        return cfg.data.instruction, cfg.data.chat_format or bool(cfg.data.instruction)

    def warm(adapter):
        """Picking a run builds its decoding copies at once, so the first Generate starts streaming at once."""
        try:
            policy.check_adapter(adapter)
            if adapter and Path(adapter).exists():
                registry.inference(run_config(adapter)).warm(adapter)
        except Exception as e:  # Generate says what is wrong, in words, when it is pressed
            logging.getLogger(__name__).info("Compare warm-up skipped: %s", e)

    def generate(adapter, custom, instruction, chat, text, *gen):
        """Both answers grow together, each with its length, speed and rewards updating as it grows."""
        out = ["", "", "", ""]
        try:
            chosen = pick(adapter, custom)
            cfg = run_config(chosen)
            s = settings(*gen)
            p = to_prompt(text, DataConfig(instruction=instruction or "", chat_format=bool(chat)))
            models = registry.inference(cfg)
            if not chosen:
                out[2] = "No tuned model yet: train a run in the Train tab (or type an adapter folder)."
            for base, tuned in models.stream_pair(p, s, chosen):
                for i, g in ((0, base), (2, tuned)):
                    if g is not None:
                        out[i], out[i + 1] = g.text, side_stats(g, cfg, p)
                yield out
        except Exception as e:
            gr.Warning(str(e))
            out[3] = f"❌ {e}"
            yield out

    def run_batch(adapter, custom, instruction, chat, which, n, file, *gen, progress=gr.Progress()):
        try:
            chosen = pick(adapter, custom)
        except ConfigError as e:
            raise gr.Error(str(e)) from None
        if not chosen:
            raise gr.Error("Choose a tuned model (train a run first) to compare against the base.")
        if which == "file" and not file:
            raise gr.Error("Upload a prompts file, or pick the held-out posts or documents.")
        cfg = run_config(chosen)
        try:
            data = DataConfig(instruction=instruction or "", chat_format=bool(chat))
            limit = 20 if n is None else int(n)
            if limit < 0:
                raise ConfigError("Prompts must be 0 (all of them) or more.")
            prompts = prompt_set(data, file, limit) if which == "file" else heldout_set(data, which, limit)
            models = registry.inference(cfg)
            progress(0, desc="Generating…")
            df = compare_batch(
                models,
                prompts,
                settings(*gen),
                chosen,
                cfg.reward,
                progress=lambda d, t: progress(d / t, desc=f"{d}/{t} answers"),
            )
        except ConfigError as e:
            raise gr.Error(str(e)) from None
        ideal = cfg.reward.ideal_length
        summary = summarize(df, ideal)
        title = f"{len(df)} {which if which != 'file' else 'prompts'}"
        md = figures_markdown(summary, title, task=which in TASK_SETS) + (
            f"\n\nIdeal length {ideal} characters; **bold** = the better model. The first columns need no model: a "
            "tuned model that does not beat them has not learned to summarise."
        )
        run = run_of_adapter(chosen)
        out_dir = run.path if run else Path(tempfile.mkdtemp(prefix="grpo-compare-"))
        stem = out_dir / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
        df.to_csv(f"{stem}.csv", index=False)
        with open(f"{stem}.jsonl", "w", encoding="utf-8") as f:
            for row in df.to_dict(orient="records"):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        view = {"prompt": [live.shorten(without_instruction(x, instruction or ""), 80) for x in df["prompt"]]}
        for side in ("base", "tuned"):  # each answer beside its verdict; the numbers are in the exports
            view[f"{side} answer"] = df[f"{side}_answer"]
            view[f"{side} summary?"] = [
                ("✓" if ok else f"✗ {why}")
                for ok, why in zip(df[f"{side}_is_summary"], df[f"{side}_why_not"], strict=True)
            ]
        view = pd.DataFrame(view)
        shown = gr.update(visible=True)
        return (
            md,
            shown,
            comparison_figure(df, ideal),
            quality_bars_figure(summary),
            gr.update(value=view, visible=True),
            gr.update(value=[f"{stem}.csv", f"{stem}.jsonl"], visible=True),
        )

    gen_inputs = [max_new, temperature, min_p, top_p, seed, greedy]
    batch_file.upload(lambda: "file", None, which)
    refresh.click(refresh_runs, adapter, [adapter, notice])
    adapter.change(offer_format, adapter, [instruction, chat]).then(warm, adapter, None)
    generate_btn.click(
        generate,
        [adapter, custom, instruction, chat, prompt, *gen_inputs],
        [base_out, base_stats, tuned_out, tuned_stats],
    )
    batch_btn.click(
        run_batch,
        [adapter, custom, instruction, chat, which, n_prompts, batch_file, *gen_inputs],
        [batch_summary, batch_plots, batch_plot, quality_plot, batch_table, batch_files],
    )
    return {
        "on_load": (refresh_runs, adapter, [adapter, notice]),
        "adapter": adapter,
        "generate": generate,
        "run_batch": run_batch,
        "refresh_runs": refresh_runs,
    }
