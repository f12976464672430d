"""What the Train tab's widgets do: each handler reads the widgets it is given (a dict keyed by component, as
Gradio passes a set of inputs), calls the engine (forms, JobRegistry, runs) and returns a dict keyed by component:
only what changes is sent. Tests call these methods directly, with the same dicts.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ..access import Policy
from ..checks import validate
from ..config import Config, ConfigError, preset
from ..data import preview
from ..files import keep_upload
from ..groups import step_groups
from ..groups import summary as group_summary
from ..jobs import JobBusy, NotYourRun
from ..registry import JobRegistry, stage
from ..rewards import columns_used
from ..run_compare import differing_settings, load_runs, runs_frame
from ..runs import Run, list_runs
from ..settings import DataConfig
from . import charts, live, manage
from .charts import FIGURES, all_figures
from .feed import LiveFeed
from .forms import (
    FORM_KEYS,
    REWARD_TABLE,
    apply_reward_rows,
    cli_command,
    cluster_commands,
    config_to_values,
    form_to_config,
    reward_rows,
)
from .train_view import INLINE, TrainView

FORM_NOTE = "🔒 *The form shows the settings of the run in progress; change them for the next run once it ends.*"


class TrainHandlers:
    def __init__(self, view: TrainView, registry: JobRegistry, runs_root: str, policy: Policy):
        self.view, self.registry, self.runs_root, self.policy = view, registry, runs_root, policy
        self.on_load: list[tuple] = []  # (fn, inputs, outputs) to run when a page loads
        self.manage: dict = {}  # the Past runs panel's handlers (rename, delete, export, push)
        # the live run's parts drawn once for every page's refresh, and the feed (bench/bench_load.py: drawn per
        # page, the charts were half the server's time)
        self.feed = LiveFeed(view, registry)

    # --- reading and writing the form ---
    def form_values(self, data: dict) -> dict[str, Any]:
        """The form's values by config key, from a handler's input dict."""
        return {key: data[c] for key, c in self.view.fields.items() if c in data}

    def form_update(self, cfg: Config) -> dict:
        return {self.view.fields[k]: v for k, v in config_to_values(cfg, FORM_KEYS).items()}

    def config_from(self, data: dict) -> Config:
        return form_to_config(self.form_values(data))

    def past_choices(self) -> dict:
        return {"choices": [(r.label, str(r.path)) for r in list_runs(self.runs_root)]}

    # --- settings ---
    def list_past(self):
        """The Past runs list, and the same runs offered for comparison."""
        return gr.update(**self.past_choices())

    def compare_runs(self, data: dict) -> dict:
        """The chosen runs overlaid step by step, with the settings that differ and how each ended."""
        b = self.view.buttons
        try:
            runs = load_runs([self.policy.run_folder(p) for p in data.get(b["compare_pick"]) or []])
        except ConfigError as e:
            return {b["compare_note"]: f"❌ {e}"}
        if len(runs) < 2:
            return {b["compare_note"]: "Pick two runs or more to compare."}
        differ = differing_settings(runs)
        listed = ", ".join(f"`{k}`" for k in differ) or "none (the same settings: another seed?)"
        note = f"**{len(runs)} runs** · settings that differ: {listed}"
        return {
            b["compare_note"]: note,
            b["compare_plot"]: charts.overlay_figure({r.path.name: r.metrics() for r in runs}),
            b["compare_table"]: runs_frame(runs),
        }

    def load_preset(self, data: dict) -> dict:
        return self.form_update(preset(data[self.view.preset]))

    def show_data(self, data: dict) -> dict:
        f = self.view.fields
        path, split, column = (data.get(f[k]) for k in ("data.path", "data.split", "data.prompt_column"))
        try:
            self.policy.check_dataset(path or "bundled")
            columns, detected, rows, count = preview(
                DataConfig(path=path or "bundled", split=split or "train", prompt_column=column or "auto")
            )
        except ConfigError as e:  # nothing of the last preview stays beside the refusal
            return {
                self.view.data_info: f"❌ {e}",
                self.view.data_preview: pd.DataFrame(),
                f["data.prompt_column"]: gr.update(choices=["auto"], value="auto"),
            }
        info = f"**{count} rows** · prompt column **{detected}** · columns: {', '.join(columns)}"
        info += self._columns_note([c for c in columns if c != detected], data)
        frame = pd.DataFrame([{c: live.shorten(r[c], 200) for c in columns} for r in rows])
        return {
            self.view.data_info: info,
            self.view.data_preview: frame,
            f["data.prompt_column"]: gr.update(choices=["auto", *columns], value=column or "auto"),
        }

    def _columns_note(self, others: list[str], data: dict) -> str:
        """Which of the other columns reach which reward (TRL passes each by name)."""
        if not others:
            return ""
        cfg = Config()
        try:
            apply_reward_rows(cfg, data.get(self.view.fields[REWARD_TABLE]))
        except ConfigError:
            return ""
        if [f for f in cfg.reward.functions + cfg.reward.monitor if ":" in f] and not self.policy.custom_rewards:
            used = {}
        else:
            used = columns_used(cfg.reward, others)
        readers = {c: [name for name, cols in used.items() if c in cols] for c in others}
        parts = [f"{c} → {', '.join(r)}" if r else f"{c} (no reward reads it)" for c, r in readers.items()]
        return "  \n*Passed to every reward by name:* " + " · ".join(parts)

    def upload_into(self, key: str):
        """The handler of the upload button of field `key` (data.path, sft.extra_data): the file is kept under
        <runs>/uploads by its own name, and the field names it."""
        button = self.view.uploads[key]

        def kept(data: dict) -> dict:
            return {self.view.fields[key]: str(keep_upload(Path(data[button]), Path(self.runs_root) / "uploads"))}

        return kept

    def show_config(self, data: dict) -> dict:
        v = self.view
        try:
            cfg = self.config_from(data)
        except ConfigError as e:
            return {v.yaml_view: f"# {e}", v.cli_view: ""}
        return {v.yaml_view: cfg.to_yaml(), v.cli_view: f"{cli_command(cfg)}\n\n{cluster_commands()}"}

    def download_config(self, data: dict) -> dict:
        try:
            path = manage.config_file(self.config_from(data))
        except ConfigError as e:
            gr.Warning(str(e))
            return {self.view.config_file: gr.update(visible=False)}
        return {self.view.config_file: gr.update(value=path, visible=True)}

    def upload_config(self, data: dict) -> dict:
        upload = self.view.buttons["config_upload"]
        try:
            cfg = manage.read_config_file(data[upload])
        except ConfigError as e:
            return {self.view.status: f"❌ {e}"}
        return {**self.form_update(cfg), self.view.status: "Settings loaded from the YAML file."}

    # --- runs ---
    def _launch(self, cfg: Config, visitor: str, resume: bool = False) -> str:
        """Start under the operator's policy: caps applied, the visitor recorded as the owner on a public app."""
        self.policy.check_config(cfg)
        note = self.policy.apply_caps(cfg)
        owner = (visitor or "anonymous") if self.policy.owned_runs else ""
        try:
            self.registry.start(cfg, resume=resume, owner=owner, max_seconds=self.policy.max_minutes * 60)
        except JobBusy as e:
            raise JobBusy(f"{e} {live.busy_hint()}".strip()) from None
        return note

    def start_run(self, data: dict) -> dict:
        try:
            cfg = self.config_from(data)
            cfg.run.root, cfg.run.dir = self.runs_root, ""
            note = self._launch(cfg, data.get(self.view.visitor, ""))
        except ConfigError as e:
            gr.Warning(str(e))
            return {self.view.status: f"**❌ Not started** — {e}"}
        if note:
            gr.Info(note)  # the status line moves on at the next refresh; the cap deserves to be seen
        return {self.view.status: f"**⏳ Starting…** {note}"}

    def test_rewards(self, data: dict) -> dict:
        """The reward test bench on the form's settings: a few sampled groups beside lazy probes, one table; the
        report is kept under <runs>/reward-bench/."""
        from ..reward_bench import report_markdown, run_bench

        out = self.view.buttons["bench_out"]
        try:
            cfg = self.config_from(data)
            self.policy.check_config(cfg)
            validate(cfg)
            report = run_bench(cfg, n_prompts=4)
        except ConfigError as e:
            return {out: f"❌ {e}"}
        path = report.save(Path(self.runs_root) / "reward-bench" / f"{time.strftime('%Y%m%d-%H%M%S')}.json")
        return {out: f"{report_markdown(report)}\n\nSaved: `{path}`"}

    def save_reward(self, data: dict) -> dict:
        """The reward editor's Save: checked in its own process, then a row of the rewards table (weight 1)."""
        from ..data import build_prompts
        from ..reward_editor import sample_for, save_reward

        b, f = self.view.buttons, self.view.fields
        try:
            if not self.policy.custom_rewards:
                raise ConfigError(
                    "Custom reward code is off on this app (GRPO_STUDIO_ALLOW_CUSTOM_REWARDS=1 allows it)."
                )
            cfg = self.config_from(data)
            self.policy.check_dataset(cfg.data.path)
            ds, _ = build_prompts(replace(cfg.data, max_samples=1))
            columns = {c: list(ds[c]) for c in ds.column_names if c != "prompt"}
            sample = sample_for(ds[0]["prompt"], columns)
            spec = save_reward(data[b["reward_code"]], data[b["reward_name"]], Path(self.runs_root) / "rewards", sample)
        except ConfigError as e:
            return {b["reward_result"]: f"❌ {e}"}
        rows = [r for r in reward_rows(cfg) if r[0] != spec] + [[spec, 1.0, False]]
        note = f"✅ Saved and checked: `{spec}` is in the rewards table with weight 1."
        return {b["reward_result"]: note, f[REWARD_TABLE]: rows}

    def inspect_groups(self, data: dict) -> dict:
        """A step's groups (the running run's, else the run picked under Past runs): each completion with its
        rewards, total, advantage and whether it was cut off; groups that scored all alike are tinted."""
        b = self.view.buttons
        current = self.registry.snapshot().run_dir
        try:
            folder = current or self.policy.run_folder(data.get(self.view.past))
        except ConfigError as e:
            return {b["inspect_note"]: f"❌ {e}", b["inspect_table"]: pd.DataFrame()}
        rows = Run(folder).completions()
        wanted = int(data.get(b["inspect_step"]) or 0) or max((r["step"] for r in rows), default=0)
        groups = step_groups([r for r in rows if r["step"] == wanted])
        note = f"**Step {wanted}** of `{Path(folder).name}`: {group_summary(groups)}"
        return {b["inspect_note"]: note, b["inspect_table"]: live.groups_frame(groups)}

    def resume_run(self, data: dict) -> dict:
        """The selected run goes on from its last checkpoint, with its own config and the same logs."""
        try:
            cfg = Run(self.policy.run_folder(data[self.view.past])).config()
            note = self._launch(cfg, data.get(self.view.visitor, ""), resume=True)
        except ConfigError as e:
            gr.Warning(str(e))
            return {self.view.status: f"**❌ Not resumed** — {e}"}
        return {self.view.status: f"**⏳ Resuming…** {note}"}

    def stop_run(self, data: dict) -> dict:
        try:
            if not self.registry.stop(data.get(self.view.visitor) or "anonymous"):
                gr.Info("Nothing is running: there is no run to stop.")
                return {self.view.status: gr.skip()}
        except NotYourRun as e:
            gr.Warning(str(e))
            return {self.view.status: f"**🔒 {e}** {live.busy_hint()}"}
        return {self.view.status: live.status_markdown(self.registry.snapshot())}

    def continue_from(self, data: dict) -> dict:
        path = data[self.view.past]
        try:
            run = Run(self.policy.run_folder(path))
        except ConfigError as e:
            gr.Warning(str(e))
            return {self.view.fields["run.resume_from"]: gr.skip()}
        if not run.has_adapter():
            gr.Warning("That run has no saved adapter.")
            return {self.view.fields["run.resume_from"]: gr.skip()}
        return {self.view.fields["run.resume_from"]: str(run.adapter_dir)}

    # --- the live view ---
    def charts(self, metrics: list[dict], warmup: list[dict]) -> dict:
        figures = all_figures(metrics, warmup)
        return {self.view.plots[name]: fig for name, fig in zip(FIGURES, figures, strict=True)}

    def dashboard(self, s, instruction: str = "") -> dict:
        """Status, progress, charts, warning, completions and log for a snapshot (of a job or a saved run)."""
        v = self.view
        return {
            v.status: live.status_markdown(s),
            v.progress: live.progress_html(s),
            **self.charts(s.metrics, s.warmup),
            v.warning: live.warning_markdown(s.metrics),
            v.completions_caption: live.completions_caption(s),
            v.completions: live.completions_frame(s.completions, instruction),
            v.log: live.log_text(s),
        }

    def refresh(self, data: dict) -> dict:
        """What changed since this page's last refresh. A run that has not passed its checks yet (no run folder)
        changes only the status line: a refused start never replaces the last run's charts."""
        return self._changes(data)[0]

    def _changes(self, data: dict, parts: set[str] | None = None) -> tuple[dict, set[str], Any, str]:
        """`refresh`, drawing only the named parts of the view (all when None); which parts have news; the snapshot
        it read; and the run's stage as the pulse tells it (registry.Pulse)."""
        v = self.view
        job_id, version, drawn, *shown = data[v.seen]  # shown: the samples this page has (see `samples_key`)
        job = self.registry.current
        s = self.registry.snapshot()
        current = id(job) if job else None
        now = stage(current, s.active, s.run_dir)
        changed = (current, s.version) != (job_id, version)
        if not changed and not s.active:
            return {v.seen: data[v.seen]}, set(), s, now  # nothing to send (a dict keyed by a component, never empty)
        samples = self.feed.samples_key(s)
        out: dict = {v.status: live.status_markdown(s), v.seen: (current, s.version, s.charted, samples)}
        if not s.run_dir:  # still checking, or refused: the dashboard keeps what it shows
            if s.active:  # not shown yet: once its folder exists, the next refresh draws it (and its settings)
                out[v.seen] = (job_id, s.version, drawn)
            return out, set(), s, now
        out[v.progress] = live.progress_html(s)
        news = set()
        if current != job_id or s.charted != drawn:
            news.add("charts")
        if current != job_id or (changed and shown != [samples]):
            news.add("samples")
        new_run = current != job_id and job is not None and s.active  # a run this page has not shown: its settings
        if current != job_id or (changed and not s.active):  # a new run, or one that ended
            news.add("run")
        wanted = news if parts is None else news & parts
        if "charts" in wanted:
            out.update(self.feed.part("charts", s, current)[1])
        if "samples" in wanted:
            out.update(self.feed.part("samples", s, current, job.cfg.data.instruction if job else "")[1])
        if "run" in wanted:
            if new_run:
                out.update({**self.form_update(job.cfg), v.form_note: FORM_NOTE})
            elif changed and not s.active:
                out[v.form_note] = ""
            if current != job_id or (changed and not s.active):  # a new run folder, or a run that ended
                out[v.past] = gr.update(**self.past_choices())
        return out, news, s, now

    def tick(self, data: dict) -> dict:
        """A page's refresh, run when its pulse says the run's stage moved (ui/pulse.py): the status line and progress
        bar, the charts and samples when they have news, the stage it showed, and for the run's settings a marker
        whose change event sends them (`deliver`). Steps between stages reach the page through the feed.

        Gradio builds a new component for every output a reply leaves out (`gr.skip()` included): with the form's
        forty-odd fields among its outputs, a refresh cost ~35 ms of server CPU with nothing to send
        (bench/bench_load.py). The form stays behind its marker; the rest comes in this one event."""
        v = self.view
        since = data[v.seen]
        out, news, s, now = self._changes(data, set(INLINE))
        # an unchanged State is skipped (Gradio rebuilds a State's config each time one is written)
        reply = {v.seen: gr.skip() if out[v.seen] == since else out[v.seen], v.stage: now}
        reply[v.status] = out.get(v.status, live.status_markdown(s))
        if v.progress in out or s.run_dir:  # a refused start leaves the last run's progress bar as it was
            reply[v.progress] = out.get(v.progress, live.progress_html(s))
        for name in news:
            if name in INLINE:
                reply.update({c: out[c] for c in v.parts[name] if c in out})
            else:
                reply[v.pending[name]] = (since, out[v.seen])
        return reply

    def deliver(self, name: str):
        """The handler that sends one part of the view: what changed since the tick that flagged it."""
        v = self.view

        def send(data: dict) -> dict:
            since, _ = data[v.pending[name]]
            out, *_ = self._changes({v.seen: since}, {name})
            part = {c: out[c] for c in v.parts[name] if c in out}
            # nothing left to send (a new run started since the tick and is still being checked): Gradio refuses an
            # empty dict, so one skipped output stands for all
            return part or {v.parts[name][0]: gr.skip()}

        send.__name__ = f"deliver_{name}"
        return send

    def open_run(self, data: dict) -> dict:
        v = self.view
        try:
            run = Run(self.policy.run_folder(data[v.past]))
        except ConfigError as e:
            gr.Warning(str(e))
            return {v.status: gr.skip()}
        out: dict = {v.form_note: ""}
        try:
            cfg = run.config()
            out.update(self.form_update(cfg))
            instruction = cfg.data.instruction
        except ConfigError:  # an unreadable config.yaml: still show the charts
            instruction = ""
        return {**out, **self.dashboard(live.run_snapshot(run), instruction)}
