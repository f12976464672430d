"""The app's API: a handful of named, typed endpoints for `gradio_client` (or a Space's API page), not the page's
internal events. Start a run from a YAML config or a preset with overrides, follow it, stop it, list runs,
generate from the base model and a run's adapter, evaluate a run on held-out prompts.

On a public app the same rules hold for API callers as for visitors: the operator's caps and path rules, and
only the client that started a run may stop it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr

from ..config import Config, ConfigError, load_config, parse_set, set_value
from ..data import DataConfig, to_prompt
from ..runs import Run, list_runs
from . import live
from .compare_tab import run_config

ENDPOINTS = ("start_run", "run_status", "stop_run", "list_runs", "generate", "evaluate")


def _caller(request: gr.Request | None) -> str:
    """Who calls: one id per client session (a gradio_client Client, a browser tab)."""
    return f"api-{request.session_hash}" if request is not None and request.session_hash else "api-anonymous"


def _error(e: Exception) -> gr.Error:
    return gr.Error(str(e), print_exception=False)


def create_api(registry, runs_root: str, policy, train) -> None:
    """Register the endpoints on the Blocks being built (call inside `with gr.Blocks()`)."""

    def run_folder(run_id: str) -> Path:
        path = Path(runs_root) / run_id
        if not run_id or not (path / "config.yaml").is_file():
            raise _error(ConfigError(f"No run '{run_id}' in {runs_root}: list_runs gives the ids."))
        return policy.run_folder(str(path))

    def start_run(
        config_yaml: str = "", preset: str = "quick", overrides: list[str] | None = None, request: gr.Request = None
    ) -> dict:
        """Start a training run from a YAML config (what `config` prints or Download settings saves), else from a
        preset ('quick' or 'recipe'), then `overrides` as `section.field=value` (as the CLI's --set). Waits until
        the run has passed its checks and returns its id (the run folder's name) and status."""
        try:
            if config_yaml.strip():
                cfg = Config.from_yaml(config_yaml)
            else:
                cfg = load_config(preset or None)
            for key, value in parse_set(list(overrides or [])):
                set_value(cfg, key, value)
            cfg.run.root, cfg.run.dir = runs_root, ""
            note = train._launch(cfg, _caller(request))
        except ConfigError as e:
            raise _error(e) from None
        job, deadline = registry.current, time.time() + 300
        while not job.snapshot().run_dir and job.snapshot().active and time.time() < deadline:
            time.sleep(0.2)
        s = job.snapshot()
        if not s.run_dir:
            raise _error(ConfigError(s.message))
        return {"run_id": Path(s.run_dir).name, "status": s.status, "message": s.message, "note": note}

    def run_status(run_id: str = "") -> dict:
        """A run's status, step, total steps, elapsed seconds and latest metrics (the run in progress when
        `run_id` is empty)."""
        job = registry.current
        live_dir = job.snapshot().run_dir if job else ""
        if not run_id or (live_dir and Path(live_dir).name == run_id):
            s = registry.snapshot()
        else:
            s = live.run_snapshot(Run(run_folder(run_id)))
        return {
            "run_id": Path(s.run_dir).name if s.run_dir else "",
            "status": s.status,
            "message": s.message,
            "step": s.step,
            "total": s.total,
            "elapsed": round(s.elapsed, 1),
            "eta": round(s.eta, 1) if s.eta is not None else None,
            "metrics": s.metrics[-1] if s.metrics else {},
        }

    def stop_run(request: gr.Request = None) -> dict:
        """Stop the run in progress at the end of its step (it saves, as Stop does); on a public app only the
        client that started it may."""
        try:
            stopped = registry.stop(_caller(request) if policy.owned_runs else None)
        except ConfigError as e:
            raise _error(e) from None
        s = registry.snapshot()
        return {"stopping": stopped, "status": s.status, "message": s.message}

    def list_runs_api() -> list[dict]:
        """Every run of this app, newest first: id, status, steps, model and whether it has an adapter."""
        return [
            {"run_id": r.path.name, "status": r.status, "steps": r.steps, "model": r.model, "adapter": r.has_adapter}
            for r in list_runs(runs_root)
        ]

    def generate(
        prompt: str,
        run_id: str = "",
        max_new_tokens: int = 256,
        temperature: float = 0.5,
        min_p: float = 0.1,
        seed: int = 0,
    ) -> dict:
        """The base model's answer to `prompt` and, with `run_id`, the tuned one's (the run's instruction and chat
        format applied, the recipe's sampling by default, the same seed for both)."""
        try:
            adapter = str(run_folder(run_id) / "adapter") if run_id else None
            cfg = run_config(adapter)
            settings = cfg.generation
            settings.max_new_tokens, settings.temperature, settings.min_p, settings.seed = (
                max_new_tokens,
                temperature,
                min_p,
                seed,
            )
            from ..checks import validate

            validate(cfg)
            p = to_prompt(prompt, DataConfig(instruction=cfg.data.instruction, chat_format=cfg.data.chat_format))
            models = registry.inference(cfg)
            base = models.generate([p], settings)[0].text
            tuned = models.generate([p], settings, adapter)[0].text if adapter else None
        except ConfigError as e:
            raise _error(e) from None
        return {"base": base, "tuned": tuned}

    def evaluate(run_id: str, prompts: str = "posts", limit: int = 20) -> dict[str, Any]:
        """Base vs tuned (and the no-model baselines) on the bundled held-out `posts`, `documents` or `plain`
        texts: the figures `eval` reports (summaries, copies, coverage, ROUGE, length error, every reward)."""
        from ..evaluation import HELDOUT, TASK_SETS, compare_batch, heldout_set, summarize

        try:
            if prompts not in {**HELDOUT, **TASK_SETS}:
                raise ConfigError(f"prompts is one of {', '.join([*HELDOUT, *TASK_SETS])}, not '{prompts}'.")
            adapter = str(run_folder(run_id) / "adapter")
            cfg = run_config(adapter)
            pset = heldout_set(cfg.data, prompts, max(0, int(limit)))
            df = compare_batch(registry.inference(cfg), pset, cfg.generation, adapter, cfg.reward)
        except ConfigError as e:
            raise _error(e) from None
        return {"prompts": len(pset), **summarize(df, cfg.reward.ideal_length)}

    for fn in (start_run, run_status, stop_run, generate, evaluate):
        gr.api(fn, api_name=fn.__name__)
    gr.api(list_runs_api, api_name="list_runs")
