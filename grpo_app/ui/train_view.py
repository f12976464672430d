"""The Train tab's widgets by name: what `train_tab` builds and `train_handlers` reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from .forms import FORM_KEYS

INLINE = ("charts", "samples")  # the parts of the live view a refresh sends itself; the run's settings follow it


@dataclass
class TrainView:
    """Every widget a handler reads or writes, by name."""

    preset: gr.Radio
    start: gr.Button
    stop: gr.Button
    status: gr.Markdown
    progress: gr.HTML
    fields: dict[str, gr.components.Component]
    uploads: dict[str, gr.UploadButton]  # by the field each fills
    data_info: gr.Markdown
    data_preview: gr.Dataframe
    form_note: gr.Markdown
    past: gr.Dropdown
    yaml_view: gr.Code
    cli_view: gr.Code
    config_file: gr.File
    warning: gr.Markdown
    plots: dict[str, gr.Plot]
    completions_caption: gr.Markdown
    completions: gr.Dataframe
    log: gr.Textbox
    seen: gr.State
    visitor: gr.State
    buttons: dict[str, gr.components.Component] = field(default_factory=dict)
    # a marker for each part of the live view not in INLINE: the refresh sets it when that part has news, and its
    # change event sends the part
    pending: dict[str, gr.State] = field(default_factory=dict)
    # hidden: the run's stage (registry.Pulse) as the page's last refresh showed it, which the page's pulse compares
    stage: gr.HTML | None = None

    @property
    def form(self) -> list[gr.components.Component]:
        return [self.fields[k] for k in FORM_KEYS]

    @property
    def dashboard(self) -> list[gr.components.Component]:
        """What shows a run: status, progress, charts, warning, completions and log."""
        return [
            self.status,
            self.progress,
            *self.plots.values(),
            self.warning,
            self.completions_caption,
            self.completions,
            self.log,
        ]

    @property
    def parts(self) -> dict[str, list[gr.components.Component]]:
        """The live view beyond the status line and progress bar, in the parts that change together."""
        return {
            "charts": [*self.plots.values(), self.warning],
            "samples": [self.completions_caption, self.completions, self.log],
            "run": [*self.form, self.form_note, self.past],
        }
