"""The recipe's last steps: merge the adapter, export a folder with a model card, push it to the Hub.

`export_run` writes a folder that loads with plain `from_pretrained` (merged) or PEFT (adapter), with the
tokenizer, the chat template, a `generation_config.json` carrying the run's generation settings, a model card
(YAML metadata through huggingface_hub's ModelCardData) and the reward curve. `push_folder` uploads it with
`create_repo` + `upload_folder`. The token is used for those calls only: it is never written anywhere.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import hub
from .config import Config
from .errors import ExportError
from .models import DEFAULT_HUB_ID, pin_default
from .runs import Run

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TAGS = ["grpo", "trl", "lora", "peft", "grpo-studio"]


def _hub_id(name: str) -> str | None:
    """The Hub id of a base model, where it has one ('default' offline is SmolLM2-135M-Instruct)."""
    name = pin_default(name)
    if name == "default":
        return DEFAULT_HUB_ID
    return name if hub.is_hub_id(name) else None


def export_run(
    run_dir: str | Path, merge: bool = False, out: str | Path | None = None, which: str = "last", gguf: str = ""
) -> Path:
    """Export a run's adapter (`last`, or `best`: the one that scored best on held-out prompts) or the merged
    model, with a model card, into `out` (default: in the run); `gguf` (f16 | q8_0) adds the merged model as one
    GGUF file for llama.cpp / Ollama (and implies `merge`)."""
    run = Run(run_dir)
    merge = merge or bool(gguf)
    if gguf:
        from transformers import AutoConfig

        from .gguf_export import KINDS, architecture
        from .models import resolve_model

        if gguf not in KINDS:
            raise ExportError(f"GGUF type must be one of {', '.join(KINDS)}, not '{gguf}'.")
        architecture(AutoConfig.from_pretrained(resolve_model(run.config().model.name)))  # refused before any work
    if not run.has_adapter():
        raise ExportError(f"'{run.path}' has no saved adapter to export (train it first).")
    adapter = run.adapter_dir
    if which == "best":
        adapter = run.path / "best"
        if not (adapter / "adapter_config.json").is_file():
            raise ExportError(f"'{run.path}' has no best adapter: it was trained without run.eval_steps.")
    cfg = run.config()
    out = Path(out) if out else run.path / ("merged" if merge else "export")
    if out.exists() and any(out.iterdir()) and not (out / "README.md").is_file():
        raise ExportError(f"'{out}' exists and is not an earlier export; choose another folder (nothing written).")
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if merge:
            _write_merged(cfg, adapter, tmp)
            if gguf:
                from .gguf_export import write_gguf

                write_gguf(tmp, tmp / f"model-{gguf}.gguf", gguf, name=run.path.name)
        else:
            for name in ADAPTER_FILES:
                shutil.copy2(adapter / name, tmp / name)
            _tokenizer(cfg, adapter).save_pretrained(tmp)
        _generation_config(cfg, tmp)
        plotted = _reward_plot(run, tmp / "reward.png")
        gguf_file = f"model-{gguf}.gguf" if gguf else ""
        card(run, cfg, merged=merge, plot=plotted, gguf=gguf_file).save(tmp / "README.md")
        shutil.rmtree(out, ignore_errors=True)  # an earlier export of the same kind is replaced whole
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _tokenizer(cfg: Config, adapter: Path):
    from transformers import AutoTokenizer

    from .models import resolve_model

    source = adapter if (adapter / "tokenizer_config.json").is_file() else resolve_model(cfg.model.name)
    return AutoTokenizer.from_pretrained(source)


def _write_merged(cfg: Config, adapter: Path, out: Path) -> None:
    """base + LoRA folded into plain weights (merge_and_unload), saved as safetensors in the run's dtype."""
    from peft import PeftModel

    from .models import load_model

    cfg = Config.from_dict(cfg.to_dict())
    cfg.model.device = "cpu"
    base, tokenizer, _ = load_model(cfg)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    _tokenizer(cfg, adapter).save_pretrained(out)


def _generation_config(cfg: Config, out: Path) -> None:
    """The run's generation settings (the recipe's: 256 tokens, temperature 0.5, min_p 0.1) as the default."""
    from transformers import GenerationConfig

    g = cfg.generation
    tok = _tokenizer(cfg, out) if (out / "tokenizer_config.json").is_file() else None
    GenerationConfig(
        max_new_tokens=g.max_new_tokens,
        do_sample=g.do_sample,
        temperature=g.temperature,
        top_p=g.top_p,
        min_p=g.min_p or None,
        repetition_penalty=g.repetition_penalty,
        eos_token_id=tok.eos_token_id if tok else None,
        pad_token_id=tok.pad_token_id if tok else None,
    ).save_pretrained(out)


def _reward_plot(run: Run, path: Path) -> bool:
    rows = [m for m in run.metrics() if m.get("reward") is not None]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    ax.plot([m["step"] for m in rows], [m["reward"] for m in rows], color="#6d28d9", label="reward (mean)")
    summary = [(m["step"], m["rewards/summary/mean"]) for m in rows if m.get("rewards/summary/mean") is not None]
    if summary:
        twin = ax.twinx()
        twin.plot(*zip(*summary, strict=True), color="#16a34a", alpha=0.7, label="summaries (share)")
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("summaries")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_title("GRPO training reward")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def card(run: Run, cfg: Config, merged: bool, plot: bool, gguf: str = ""):
    """The model card: metadata for the Hub, then what was trained on what, how, with what result, and usage."""
    from huggingface_hub import ModelCard, ModelCardData

    base = _hub_id(cfg.model.name)
    sources = [cfg.data.path] + ([cfg.sft.extra_data] if cfg.sft.steps and cfg.sft.extra_data else [])
    datasets = [d for d in sources if hub.is_hub_id(d)] or None
    data = ModelCardData(
        base_model=base,
        library_name="transformers" if merged else "peft",
        tags=TAGS,
        datasets=datasets,
        pipeline_tag="text-generation",
    )
    metrics = run.metrics()
    last = metrics[-1] if metrics else {}
    weights = cfg.reward.weights or [1.0] * len(cfg.reward.functions)
    rewards = ", ".join(f"`{f}` x {w:g}" for f, w in zip(cfg.reward.functions, weights, strict=True))
    watched = [f"`{m}`" for m in cfg.reward.monitor if m not in cfg.reward.functions]
    g = cfg.grpo
    hyper = {
        "learning_rate": g.learning_rate,
        "per_device_train_batch_size": g.per_device_train_batch_size,
        "gradient_accumulation_steps": g.gradient_accumulation_steps,
        "num_generations": g.num_generations,
        "max_prompt_length": g.max_prompt_length,
        "max_completion_length": g.max_completion_length,
        "temperature": g.temperature,
        "beta": g.beta,
        "loss_type": g.loss_type,
        "max_steps": g.max_steps,
        "num_train_epochs": g.num_train_epochs,
        "optim": g.optim,
        "bf16": g.bf16,
        **g.extra,
        "lora": f"r={cfg.lora.r}, alpha={cfg.lora.lora_alpha}, dropout={cfg.lora.lora_dropout}, "
        f"target={cfg.lora.target_modules}",
    }
    final = {
        k: last[k]
        for k in ("step", "reward", "kl", "completions/mean_length", "rewards/summary/mean", "rewards/grounding/mean")
        if last.get(k) is not None
    }
    lines = [
        f"# {run.path.name}",
        "",
        f"A {'merged model' if merged else 'LoRA adapter'} for `{base or cfg.model.name}`, trained with GRPO "
        "(TRL) with GRPO Studio on "
        f"`{cfg.data.path}` ({'chat' if cfg.data.chat_format else 'plain'} prompts"
        + (f', instruction "{cfg.data.instruction}"' if cfg.data.instruction else "")
        + ").",
        *(
            [
                "",
                f"GRPO began from a supervised warm-up: {cfg.sft.steps} steps on the reference answers of "
                + " and ".join(f"`{d}`" for d in sources)
                + f" (learning rate {cfg.sft.learning_rate:g}, batch {cfg.sft.batch_size}).",
            ]
            if cfg.sft.steps
            else []
        ),
        "",
        "## Rewards",
        "",
        f"Optimised: {rewards}"
        + (f" (ideal length {cfg.reward.ideal_length} characters)" if "length" in cfg.reward.functions else "")
        + ".",
        f"Watched, not optimised: {', '.join(watched) or 'none'}.",
        "",
        "## Hyperparameters",
        "",
        *[f"- `{k}`: {v}" for k, v in hyper.items()],
        "",
        "## Results",
        "",
        *[f"- final `{k}`: {v:.4g}" if isinstance(v, float) else f"- final `{k}`: {v}" for k, v in final.items()],
    ]
    lines += _eval_lines(run)
    if plot:
        lines += ["", "![Reward during training](reward.png)"]
    lines += [
        "",
        "## Use it",
        "",
        "```python",
        *_usage(cfg, merged),
        "```",
        "",
        "The folder's `generation_config.json` holds these generation settings as the defaults.",
    ]
    if gguf:
        t, p = cfg.generation.temperature, cfg.generation.min_p
        lines += [
            "",
            f"### GGUF (`{gguf}`): llama.cpp, Ollama, LM Studio",
            "",
            "```bash",
            f"llama-cli -m {gguf} -cnv --temp {t} --min-p {p}",
            "```",
            "",
            "Ollama: a `Modelfile` beside the file, then `ollama create my-model -f Modelfile && ollama run my-model`:",
            "",
            "```",
            f"FROM ./{gguf}",
            f"PARAMETER temperature {t}",
            f"PARAMETER min_p {p}",
            "```",
        ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def _usage(cfg: Config, merged: bool) -> list[str]:
    """A snippet that runs as is once REPO_ID is filled in: pipeline for a merged model, PEFT for an adapter."""
    g = cfg.generation
    text = f"{cfg.data.instruction}\\n\\n<your text>" if cfg.data.instruction else "<your text>"
    settings = (
        f"max_new_tokens={g.max_new_tokens}, do_sample={g.do_sample}, temperature={g.temperature}, min_p={g.min_p}"
    )
    messages = f'messages = [{{"role": "user", "content": "{text}"}}]'
    if merged:
        return [
            "from transformers import pipeline",
            "",
            'generator = pipeline("text-generation", model="REPO_ID")',
            messages,
            f"print(generator(messages, {settings})[0]['generated_text'][-1]['content'])",
        ]
    return [
        "from peft import AutoPeftModelForCausalLM",
        "from transformers import AutoTokenizer",
        "",
        'model = AutoPeftModelForCausalLM.from_pretrained("REPO_ID")',
        'tokenizer = AutoTokenizer.from_pretrained("REPO_ID")',
        messages,
        'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", '
        "return_dict=True)",
        f"out = model.generate(**inputs, {settings})",
        "print(tokenizer.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True))",
    ]


def _eval_lines(run: Run) -> list[str]:
    import json

    path = run.path / "eval.json"
    if not path.is_file():
        return []
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError:
        return []
    out = ["", "Held-out evaluation (`python -m grpo_app eval`), base -> tuned:", ""]
    for name, result in report.get("sets", {}).items():
        b, t = result["base"], result["tuned"]
        out.append(
            f"- {name} ({result['prompts']}): distance from the ideal length {b['length_error']:.1f} -> "
            f"{t['length_error']:.1f} characters; answers that are summaries {b['summary_rate']:.0%} -> "
            f"{t['summary_rate']:.0%}"
        )
    return out


def push_folder(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload an exported folder to a Hub model repo (created if needed); the URL, or one sentence why not."""
    import os

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise ExportError(f"'{folder}' is not an exported folder (export the run first).")
    if not hub.is_hub_id(repo_id):
        raise ExportError(f"'{repo_id}' is not a repo id: use user/name (or org/name).")
    token = (token or "").strip() or os.environ.get("HF_TOKEN", "").strip() or None
    if token is None:
        raise ExportError(
            "No Hugging Face token: paste one with write access, or set HF_TOKEN. Nothing was "
            f"uploaded; the export in {folder} is kept."
        )
    if not hub.offline() and not hub.reachable():
        raise ExportError(
            f"Offline: the Hugging Face Hub cannot be reached (no internet?). Nothing was uploaded; "
            f"the export in {folder} is kept."
        )
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="Upload from GRPO Studio"
        )
    except OfflineModeIsEnabled:
        raise ExportError(
            f"Offline (HF_HUB_OFFLINE is set): nothing was uploaded; the export in {folder} is kept."
        ) from None
    except HfHubHTTPError as e:
        code = getattr(e.response, "status_code", None)
        why = (
            "the Hub refused the token (no write access to that repo, or an invalid token)"
            if code in (401, 403)
            else f"the Hub answered {code}"
        )
        raise ExportError(f"Push failed: {why}. Nothing was uploaded; the export in {folder} is kept.") from None
    except Exception as e:  # no network (httpx's connection errors are not OSErrors), bad arguments
        text = str(e).replace(token, "***")
        raise ExportError(
            f"Push failed: could not reach the Hugging Face Hub ({type(e).__name__}: "
            f"{text[:200]}). Nothing was uploaded; the export in {folder} is kept."
        ) from None
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}")
