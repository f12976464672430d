"""LoRA GRPO training with TRL: `train(cfg, reporter)` runs one run from config to saved adapter.

It knows nothing of threads or UIs: a reporter receives status, metrics and completions, and a stop
event ends training at the next step boundary (TRL's `control.should_training_stop`), after which the
adapter is saved as for a finished run.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .callbacks import CompletionRecorder, LiveCallback, Reporter, is_main_process
from .checks import check_vllm, trackers, validate
from .config import Config, ConfigError
from .data import build_prompts
from .faults import (
    TrainingFault,
    disk_errno,
    failure_message,
    free_memory,
    save_adapter,
)
from .heldout import HeldoutCallback, best_step, heldout_prompts
from .memory import check_fits, peak_rss_gb, return_freed_memory
from .models import HostSettings, host_settings, load_model, locate_model, pin_default
from .rewards import build_rewards
from .runs import (
    Run,
    drop_incomplete_checkpoints,
    end_message,
    keep_steps_up_to,
    last_checkpoint,
    new_run_dir,
    read_jsonl,
    read_status,
    steps_text,
    write_status,
)
from .sft_warmup import check_answers, read_extra, warm_up_run


@dataclass
class RunResult:
    run_dir: Path
    status: str  # finished | stopped | failed
    message: str = ""
    error: str = ""  # traceback when failed
    metrics: list[dict] = field(default_factory=list)
    elapsed: float = 0.0  # seconds the run took, earlier sessions of a resumed run included


def grpo_args(cfg: Config, host: HostSettings, output_dir: Path):
    """TRL's GRPOConfig from our config, with what the host forces."""
    from trl import GRPOConfig

    g = cfg.grpo
    kwargs = dict(
        output_dir=str(output_dir),
        learning_rate=g.learning_rate,
        per_device_train_batch_size=g.per_device_train_batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        beta=g.beta,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        num_train_epochs=g.num_train_epochs,
        max_steps=g.max_steps,
        optim=host.optim,
        bf16=host.bf16_autocast,
        gradient_checkpointing=g.gradient_checkpointing,
        lr_scheduler_type=g.lr_scheduler_type,
        warmup_steps=g.warmup_steps,
        logging_steps=g.logging_steps,
        seed=g.seed,
        save_strategy="steps" if g.save_steps > 0 else "no",
        save_steps=g.save_steps or 500,
        save_total_limit=g.save_total_limit or None,
        report_to=trackers(cfg.run.report_to) or "none",
        project="grpo-studio",
        run_name=output_dir.parent.name,
        use_cpu=host.device == "cpu",
        reward_weights=None,
        use_vllm=g.use_vllm,
        vllm_mode=g.vllm_mode,
        vllm_server_base_url=g.vllm_server_base_url or None,
        vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
    )
    if "wandb" in trackers(cfg.run.report_to) and not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")  # the recipe logged to wandb; no key, no network needed
        os.environ.setdefault("WANDB_DIR", str(output_dir.parent))
    kwargs.update(g.extra)
    return GRPOConfig(**kwargs)


def _resolve_into(cfg: Config, host: HostSettings) -> None:
    """Write the host's choices into the config so config.yaml says how the run was made."""
    cfg.model.device, cfg.model.dtype = host.device, host.dtype
    cfg.model.attn_implementation, cfg.grpo.optim = host.attn_implementation, host.optim
    cfg.grpo.bf16 = host.bf16_autocast
    cfg.model.name = pin_default(cfg.model.name)


def train(
    cfg: Config, reporter: Reporter | None = None, stop: threading.Event | None = None, resume: bool = False
) -> RunResult:
    """Run one training from config to saved adapter.

    Everything that can be checked (settings, model id, tokenizer, prompts, rewards) is checked before a run folder
    exists, and raises ConfigError with one sentence. Once the folder exists it never raises for a failed run (see
    RunResult), except KeyboardInterrupt, after saving. `resume`: continue the run in `cfg.run.dir` from its last
    checkpoint (optimizer, schedule, RNG and step counter as they were); rows its logs hold past that checkpoint
    are dropped, since those steps run again."""
    reporter, stop = reporter or Reporter(), stop or threading.Event()
    began = time.time()
    validate(cfg)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not cfg.run.dir:
        raise ConfigError(
            "Several processes are training together: set run.dir so they share one run folder, "
            "e.g. --set run.dir=runs/recipe-8gpu."
        )
    checkpoint = resume_point(Path(cfg.run.dir)) if resume else None
    build_rewards(
        cfg.reward, cfg.grpo.max_completion_length
    )  # a custom reward that does not load is one sentence, before anything else
    host = host_settings(cfg)
    check_vllm(cfg.grpo, host.device)
    reporter.on_status("loading", f"Checking model {cfg.model.name} and the prompts…")
    located = locate_model(cfg)
    check_fits(cfg, located[0], host.device, host.dtype)
    dataset, report = build_prompts(cfg.data, located[1], cfg.grpo.max_prompt_length)
    warm = checkpoint is None  # a resumed run's checkpoint holds the warmed-up weights
    extra = read_extra(cfg, located[1], warm)  # the warm-up's own examples, read now so a bad file stops nothing
    check_answers(cfg, list(dataset.column_names), extra, warm)  # no answers to learn from: one sentence, now
    _resolve_into(cfg, host)
    if stop.is_set():  # Stop pressed while the model and prompts were checked: nothing to save
        return RunResult(Path(cfg.run.dir), "stopped", "Stopped before the run started; nothing was saved.")
    run_dir = _open_run_dir(cfg, resume)
    cfg.run.dir = str(run_dir)
    reporter.on_run_dir(str(run_dir))
    elapsed_before = _rewind(run_dir, checkpoint, reporter) if checkpoint is not None and is_main_process() else 0.0
    clock = began - elapsed_before
    trainer = None
    try:
        if is_main_process():
            cfg.save(run_dir / "config.yaml")
        _status(run_dir, "running", reporter=reporter)
        reporter.on_status("loading", f"Loading model {cfg.model.name}…")
        model, tokenizer, _ = load_model(cfg, host, located)
        cfg.model.attn_implementation = host.attn_implementation  # eager, where the family refused sdpa
        for note in host.notes:
            reporter.on_log(note)
        reporter.on_log(
            f"Host: {host.device}, weights {host.dtype}, attention {host.attn_implementation}, "
            f"optimizer {host.optim}, bf16 autocast {host.bf16_autocast}."
        )
        reporter.on_log(f"Data: {report.summary()}.")
        if cfg.sft.extra_data and not cfg.sft.steps:
            reporter.on_log("sft.extra_data is set but sft.steps is 0: there is no warm-up to learn from it.")
        if cfg.sft.steps and warm:
            peft = _peft_model(cfg, model, reporter)
            model = warm_up_run(cfg, peft, tokenizer, dataset, run_dir, reporter, stop, extra)
        trainer = _build_trainer(cfg, host, model, tokenizer, dataset, run_dir, reporter, stop, clock)
        del model
        if is_main_process():
            cfg.save(run_dir / "config.yaml")  # with what the trainer settled on
        if stop.is_set():
            raise _Stopped
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        status = "stopped" if stop.is_set() else "finished"
    except _Stopped:
        status = "stopped"
    except KeyboardInterrupt:  # a second Ctrl-C: save what there is, then let it end the process
        _save_adapter(trainer, run_dir, reporter)
        step = trainer.state.global_step if trainer else 0
        _status(
            run_dir,
            "stopped",
            f"Interrupted after {steps_text(step)}; resume it from its last checkpoint.",
            steps=step,
            elapsed=round(time.time() - clock, 2),
            reporter=reporter,
        )
        raise
    except Exception as e:
        message = failure_message(e, cfg)
        if not isinstance(e, TrainingFault) or e.keep_adapter:
            _save_adapter(trainer, run_dir, reporter)
        step = trainer.state.global_step if trainer else 0
        trace = traceback.format_exc()
        if disk_errno(e):
            drop_incomplete_checkpoints(run_dir)  # what a full disk cut short, so status.json fits
        elapsed = round(time.time() - clock, 2)
        _status(run_dir, "failed", message, traceback=trace, steps=step, elapsed=elapsed, reporter=reporter)
        reporter.on_status("failed", message)
        trainer = None
        free_memory()
        return RunResult(run_dir, "failed", message, trace, elapsed=elapsed)
    _save_adapter(trainer, run_dir, reporter)
    if (run_dir / "checkpoints").is_dir() and not any((run_dir / "checkpoints").iterdir()):
        (run_dir / "checkpoints").rmdir()  # TRL's output_dir, empty when checkpoints are off
    step = trainer.state.global_step if trainer else 0
    message = end_message(status, step, run_dir)
    guard = next((c.guard_message for c in _callbacks(trainer) if getattr(c, "guard_message", "")), "")
    if guard:  # the dashboard says why the run ended early
        message = f"{guard} The last adapter is in {run_dir / 'adapter'}."
    elapsed = round(time.time() - clock, 2)
    _status(
        run_dir,
        status,
        message,
        steps=step,
        elapsed=elapsed,
        reporter=reporter,
        processes=int(os.environ.get("WORLD_SIZE", "1")),
        peak_memory_gb=peak_rss_gb(),  # of the process that trained (the app's own, for a thread-run job)
        **({"best_step": best} if (best := best_step(run_dir)) is not None else {}),
    )
    reporter.on_status(status, message)
    return RunResult(
        run_dir, status, message, metrics=list(trainer.state.log_history) if trainer else [], elapsed=elapsed
    )


def _callbacks(trainer) -> list:
    return list(trainer.callback_handler.callbacks) if trainer is not None else []


def _open_run_dir(cfg: Config, resume: bool) -> Path:
    """The run folder: the resumed one, or a new one (a disk that refuses it is one sentence)."""
    if resume:
        return Path(cfg.run.dir)
    if not is_main_process():  # rank 0 checks and creates it; the others share it (run.dir is required)
        return Path(cfg.run.dir)
    try:
        return new_run_dir(cfg)
    except OSError as e:
        raise ConfigError(
            f"Cannot create the run folder under '{cfg.run.dir or cfg.run.root}': {e.strerror or e}."
        ) from None


def _rewind(run_dir: Path, checkpoint: Path, reporter: Reporter) -> float:
    """Drop log rows past the checkpoint a resume starts from and hand the rest to the reporter; the run's clock
    goes on from the last kept step."""
    step = int(checkpoint.name.rpartition("-")[2])
    dropped = keep_steps_up_to(run_dir / "metrics.jsonl", step)
    keep_steps_up_to(run_dir / "completions.jsonl", step)
    reporter.on_log(
        f"Resuming from {checkpoint.name}" + (f"; {dropped} logged steps after it run again." if dropped else ".")
    )
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    elapsed = metrics[-1].get("elapsed", 0.0) if metrics else 0.0
    reporter.on_history(metrics, read_jsonl(run_dir / "completions.jsonl"), elapsed, Run(run_dir).warmup())
    return elapsed


def resume_point(run_dir: Path) -> Path:
    """The checkpoint a resume continues from, or a sentence saying why there is none."""
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"'{run_dir}' is not a run folder (it has no config.yaml).")
    status = read_status(run_dir).get("status")
    if status == "finished":
        raise ConfigError(f"The run in '{run_dir}' has finished; start a new run (or continue from its adapter).")
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError(
            f"The run in '{run_dir}' has no checkpoint to resume from yet (one is saved every grpo.save_steps steps)."
        )
    return checkpoint


def _status(run_dir: Path, status: str, message: str = "", reporter: Reporter | None = None, **extra) -> None:
    """status.json, written atomically; a disk that refuses it is reported, not raised (the run's end matters)."""
    if not is_main_process():
        return
    try:
        write_status(run_dir, status, message, **extra)
    except OSError as e:
        if status == "running":
            raise
        if reporter:
            reporter.on_log(f"Could not write {run_dir / 'status.json'}: {e.strerror or e}.")


class _Stopped(Exception):
    pass


def _build_trainer(cfg, host, model, tokenizer, dataset, run_dir, reporter, stop, clock):
    from peft import PeftModel

    from .fast import FastGRPOTrainer
    from .inference.kernels import plain_attention, use_grouped_attention

    if (
        cfg.grpo.gradient_checkpointing
        and _lever(cfg.speed.skip_checkpointing, host)
        and (sum(p.numel() for p in model.parameters()) < 1_000_000_000)
    ):
        cfg.grpo.gradient_checkpointing = False
        reporter.on_log(
            "Gradient checkpointing off: a small model on this host has the memory (speed.skip_checkpointing)."
        )
    if _lever(cfg.speed.grouped_attention, host):
        if plain_attention(model.config):
            use_grouped_attention(model)
        else:
            reporter.on_log("speed.grouped_attention steps aside: the model has sliding-window or linear attention.")
    funcs, weights = build_rewards(cfg.reward, cfg.grpo.max_completion_length)
    g = cfg.grpo
    recorder = CompletionRecorder(
        funcs, weights, run_dir, reporter, g.num_generations, g.scale_rewards, g.max_completion_length
    )
    args = grpo_args(cfg, host, run_dir / "checkpoints")
    args.reward_weights = weights
    lora = None  # TRL makes the LoRA model from it; a warm-up or run.resume_from made it already
    if not isinstance(model, PeftModel):
        if cfg.run.resume_from:
            model = _peft_model(cfg, model, reporter)
        else:
            lora = _lora_config(cfg)
    trim_memory = _lever(cfg.speed.return_memory, host) and return_freed_memory()
    callback = LiveCallback(
        run_dir, reporter, stop, cfg.grpo.save_steps, args.generation_batch_size, clock, trim_memory
    )
    callbacks: list = [callback]
    if cfg.run.eval_steps:
        pset = heldout_prompts(cfg)
        if pset is None or not pset.prompts:
            reporter.on_log("run.eval_steps: no held-out prompts (set run.eval_prompts); held-out scoring is off.")
        else:
            callbacks.append(HeldoutCallback(cfg, run_dir, reporter, pset, (funcs, weights), callback.extra))
            reporter.on_log(f"Held-out score every {cfg.run.eval_steps} steps on {len(pset.prompts)} prompts.")
    if cfg.speed.threads > 0:
        torch.set_num_threads(cfg.speed.threads)
    trainer = FastGRPOTrainer(
        model=model,
        reward_funcs=recorder.wrapped(),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=callbacks,
        logits_head=_lever(cfg.speed.logits_head, host),
        merged_generation=_lever(cfg.speed.merged_generation, host),
        shared_prefix=_lever(cfg.speed.shared_prefix, host),
        fast_decode=_lever(cfg.speed.fast_decode, host),
    )
    for extra in callbacks[1:]:
        extra.trainer = trainer
    for line in trainer.set_aside:
        reporter.on_log(line + ("" if line.endswith(".") else "."))
    return trainer


def _peft_model(cfg: Config, model, reporter: Reporter):
    """The LoRA model to train: the adapter run.resume_from names, else a new one from cfg.lora."""
    from peft import PeftModel, get_peft_model

    if cfg.run.resume_from:
        reporter.on_log(f"Continuing from adapter {cfg.run.resume_from}.")
        return PeftModel.from_pretrained(model, cfg.run.resume_from, is_trainable=True)
    return get_peft_model(model, _lora_config(cfg))


def _lora_config(cfg: Config):
    from peft import LoraConfig

    targets = cfg.lora.target_modules
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.lora_alpha,
        lora_dropout=cfg.lora.lora_dropout,
        task_type="CAUSAL_LM",
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()],
    )


def _lever(value: str, host: HostSettings) -> bool:
    return value == "on" or (value == "auto" and host.device == "cpu")


def _save_adapter(trainer, run_dir: Path, reporter: Reporter) -> None:
    if trainer is None or trainer.state.global_step == 0 or not is_main_process():
        return
    try:
        save_adapter(trainer.model, trainer.processing_class, run_dir / "adapter")
    except OSError as e:
        reporter.on_log(f"Could not save the adapter: {e.strerror or e}; the one saved before is kept.")
