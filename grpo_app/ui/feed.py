"""The live view drawn once for every open page, and the feed that brings each step to a page without a Gradio event.

A run's charts and samples are drawn and serialised once per change and shared by every page's refresh (`shared`).
The feed is the whole live view of the current run (status line, progress bar, charts, samples) as one JSON body,
built once per version of the run's state and served as is at `/studio/live` (ui/pulse.py). A page applies it
itself, through a frontend-only event whose outputs are those widgets: a Gradio event costs the server ~18 ms of
CPU whatever it carries, and twenty pages asked for one each step while training held both cores (#24).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import gradio as gr

from ..registry import JobRegistry, stage
from . import live
from .charts import FIGURES, all_figures
from .train_view import TrainView


def wire(component: gr.components.Component, value: Any) -> Any:
    """A value as Gradio sends it to the page for `component` (what its postprocess makes of it, as JSON)."""
    shown = value if isinstance(value, dict) else component.postprocess(value)
    return shown.model_dump() if hasattr(shown, "model_dump") else shown


class LiveFeed:
    """The live view's parts, drawn once per change for every page; the feed body, built once per state version."""

    def __init__(self, view: TrainView, registry: JobRegistry):
        self.view, self.registry = view, registry
        self._parts: dict[str, tuple[tuple, dict]] = {}  # by part: (what it shows, its serialised widgets)
        self._drawing = threading.Lock()
        self._body: tuple[str, bytes] = ("", b"")  # (pulse key, JSON)
        self._building = threading.Lock()
        self._ahead = threading.Lock()  # one draw ahead at a time: warm-up steps on a GPU land faster than a draw
        registry.on_step.append(self._draw_ahead)

    @property
    def outputs(self) -> list[gr.components.Component]:
        """The widgets the feed's frontend-only event writes, in the order `LOAD_JS` returns their values."""
        v = self.view
        return [v.status, v.progress, *v.parts["charts"], *v.parts["samples"]]

    # --- parts shared by every page ---
    def shared(self, key: tuple, draw) -> dict:
        """A part of the live view drawn and serialised once for every open page (one of each kind is kept)."""
        with self._drawing:  # twenty pages asking at once after a step: the first draws, the others wait for it
            if self._parts.get(key[0], ((),))[0] != key:
                self._parts[key[0]] = (key, draw())
            return self._parts[key[0]][1]

    def drawn(self, kind: str) -> tuple:
        """What the kept part of that kind shows (its key), or () when none is drawn."""
        return self._parts.get(kind, ((),))[0]

    def part(self, name: str, s, job_id: int | None, instruction: str = "") -> tuple[tuple, dict]:
        """The "charts" or "samples" part for a snapshot of job `job_id`: (what it shows, its serialised widgets)."""
        if name == "charts":
            key, draw = ("charts", job_id, s.charted), lambda: self._charts(s)
        else:
            key, draw = ("samples", job_id, self.samples_key(s)), lambda: self._samples(s, instruction)
        return key, self.shared(key, draw)

    def _draw_ahead(self, job) -> None:
        """As a step lands, draw its charts in the background: the pages' next refresh finds them ready (drawing
        takes 0.1-0.3 s on two busy cores, the p95 of a refresh when the first page to ask paid for it). While one
        draw is under way a new step starts none: the next page to ask draws the newest."""
        if not self._ahead.acquire(blocking=False):
            return

        def draw() -> None:
            try:
                if self.registry.current is job:
                    self.part("charts", self.registry.snapshot(), id(job))
            finally:
                self._ahead.release()

        threading.Thread(target=draw, name="draw-charts", daemon=True).start()

    def _charts(self, s) -> dict:
        v = self.view
        figures = zip(FIGURES, all_figures(s.metrics, s.warmup), strict=True)
        drawn = {v.plots[name]: v.plots[name].postprocess(fig) for name, fig in figures}
        return {**drawn, v.warning: live.warning_markdown(s.metrics)}

    @staticmethod
    def samples_key(s) -> tuple:
        """What the samples part shows, in brief: a run's version moves with every progress tick and log line,
        its completions and log less often (a page was sent the same table at nearly every tick)."""
        rows = hash(tuple((str(c.get("completion")), c.get("total")) for c in s.completions))
        return live.completions_caption(s), rows, len(s.log), s.log[-1] if s.log else "", s.error

    def _samples(self, s, instruction: str) -> dict:
        v = self.view
        table = v.completions.postprocess(live.completions_frame(s.completions, instruction)).model_dump()
        return {v.completions_caption: live.completions_caption(s), v.log: live.log_text(s), v.completions: table}

    # --- the feed ---
    def ready(self) -> bytes | None:
        """The body for the run's state as it is now, if it is built (cheap: no snapshot copied)."""
        key, body = self._body
        return body if key == self.registry.pulse().key else None

    def body(self) -> bytes:
        """The feed for the run's state as it is now: built by the first page to ask, shared by the others."""
        with self._building:
            body = self.ready()
            if body is None:
                key = self.registry.pulse().key  # before the snapshot: a newer state only rebuilds it sooner
                body = json.dumps(self._feed()).encode()
                self._body = (key, body)
            return body

    def _feed(self) -> dict:
        """The status line and progress bar, and the charts and samples under keys a page compares with the last it
        applied (an unchanged part is left alone: plotly redraws a figure it is given, even the same one). A run
        still being checked, or refused, sends its status line only: the last run's view stays."""
        v, job = self.view, self.registry.current
        s, job_id = self.registry.snapshot(), id(job) if job else None
        out: dict = {
            "stage": stage(job_id, s.active, s.run_dir),
            "head": [wire(v.status, live.status_markdown(s)), {"__type__": "update"}],
            "sizes": {name: len(v.parts[name]) for name in ("charts", "samples")},
            "keys": {},
        }
        if not s.run_dir:
            return out
        out["head"][1] = wire(v.progress, live.progress_html(s))
        instruction = job.cfg.data.instruction if job else ""
        for name in ("charts", "samples"):
            key, part = self.part(name, s, job_id, instruction)
            out[name] = [wire(c, part[c]) for c in v.parts[name]]
            out["keys"][name] = f"{hash(key) & 0xFFFFFFFFFFFF:x}"
        return out
