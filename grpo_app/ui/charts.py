"""Plotly figures from metrics rows (as in metrics.jsonl): pure functions, no Gradio.

Each chart reads well with one point (markers) and with thousands (lines, plus a smoothed line for
the noisy reward). The x axis is always the optimizer step.
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from ..watch import QUALITY_KEYS, quality_series

FIGURES = ("reward", "loss", "length", "quality", "health")  # what all_figures returns, in order
COLORS = ["#6d28d9", "#0891b2", "#ea580c", "#16a34a", "#db2777", "#ca8a04"]
MARKERS_UNTIL = 60


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None and "step" in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def smooth(values: list[float], alpha: float = 0.9) -> list[float]:
    """Debiased exponential moving average, as TensorBoard draws it."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = alpha * avg + (1 - alpha) * v
        out.append(avg / (1 - alpha**i))
    return out


def _mode(n: int) -> str:
    return "lines+markers" if n <= MARKERS_UNTIL else "lines"


# What plotly_white changes on these 2-D line charts, and nothing else: the whole template is ~7 KB of JSON per
# figure (heatmaps, 3-D scenes, maps...), sent to every open page at every step and validated at every draw (#24).
_AXIS = {"gridcolor": "#EBF0F8", "linecolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "zerolinewidth": 2, "ticks": ""}
TEMPLATE = go.layout.Template(
    layout={
        "colorway": pio.templates["plotly_white"].layout.colorway,
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"color": "#2a3f5f"},
        "hoverlabel": {"align": "left"},
        "xaxis": {**_AXIS, "automargin": True},
        "yaxis": {**_AXIS, "automargin": True},
    }
)


def _layout(fig: go.Figure, title: str, empty: bool) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 14}},
        height=280,
        template=TEMPLATE,
        margin={"l": 50, "r": 20, "t": 40, "b": 35},
        legend={"orientation": "h", "y": -0.22, "font": {"size": 10}},
        hovermode="x unified",
        uirevision=title,
    )
    fig.update_xaxes(title_text=None, rangemode="tozero", tickformat="d")
    if empty:
        _note(fig, "waiting for the first step…")
    return fig


def _note(fig: go.Figure, text: str, panel: str = "paper") -> None:
    """A grey line of text in the middle of the chart (or of one panel: "x2 domain" for the second's)."""
    y = panel.replace("x", "y")
    fig.add_annotation(text=text, showarrow=False, xref=panel, yref=y, x=0.5, y=0.5, font={"color": "#888"})


def reward_figure(rows: list[dict]) -> go.Figure:
    """Mean reward with a ±std band, a smoothed trend, and each reward function's mean."""
    fig = go.Figure()
    x, y = series(rows, "reward")
    _, std = series(rows, "reward_std")
    if x and len(std) == len(y):
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=[a + b for a, b in zip(y, std, strict=True)]
                + [a - b for a, b in zip(y[::-1], std[::-1], strict=True)],
                fill="toself",
                fillcolor="rgba(109,40,217,0.12)",
                line={"width": 0},
                hoverinfo="skip",
                name="± std",
            )
        )
    fig.add_trace(go.Scatter(x=x, y=y, mode=_mode(len(x)), name="reward (mean)", line={"color": COLORS[0]}))
    if len(x) > 10:
        fig.add_trace(
            go.Scatter(
                x=x, y=smooth(y), mode="lines", name="trend", line={"color": COLORS[0], "width": 3, "dash": "dot"}
            )
        )
    names = sorted(
        {
            k
            for r in rows
            for k in r
            if k.startswith("rewards/") and k.endswith("/mean") and k.split("/")[1] not in QUALITY_KEYS
        }
    )  # those have their own chart, on their own scale
    if len(names) > 1:
        for i, key in enumerate(names):
            fx, fy = series(rows, key)
            fig.add_trace(
                go.Scatter(
                    x=fx,
                    y=fy,
                    mode=_mode(len(fx)),
                    name=key.split("/")[1],
                    line={"color": COLORS[(i + 1) % len(COLORS)], "width": 1.5},
                )
            )
    return _layout(fig, "Reward", not x)


def loss_figure(rows: list[dict], warmup: list[dict] | tuple = ()) -> go.Figure:
    """Loss, and the KL to the reference (the base model, or the adapter the run started from) on its own axis when
    it is logged (beta > 0). A run with a warm-up shows
    its loss (the reference answers' NLL, on another scale than GRPO's loss) in a panel of its own on the left:
    the minutes before GRPO's first step are not a blank chart."""
    wx, wy = series(list(warmup), "loss")
    panels = [{}, {"secondary_y": True}] if wx else [{"secondary_y": True}]
    fig = make_subplots(cols=len(panels), specs=[panels], column_widths=[0.3, 0.7] if wx else None)
    main = {"row": 1, "col": len(panels)}
    if wx:
        fig.add_trace(
            go.Scatter(x=wx, y=wy, mode=_mode(len(wx)), name="warm-up loss", line={"color": COLORS[4]}), row=1, col=1
        )
    x, y = series(rows, "loss")
    hidden = False if wx and not x else None  # during the warm-up, an empty panel and no "loss" in the legend
    line = go.Scatter(x=x, y=y, mode=_mode(len(x)), name="loss", line={"color": COLORS[1]}, showlegend=hidden)
    fig.add_trace(line, **main)
    kx, ky = series(rows, "kl")
    if kx:
        fig.add_trace(
            go.Scatter(x=kx, y=ky, mode=_mode(len(kx)), name="KL", line={"color": COLORS[2]}), secondary_y=True, **main
        )
    title = "Loss and KL (rising is expected)" if kx else "Loss"  # the policy moves away from its reference
    title = f"Warm-up, then {title[0].lower()}{title[1:]}" if wx else title
    fig = _layout(fig, title, not x and not wx)
    if wx:
        if len(wx) <= 12:
            fig.update_xaxes(dtick=1, row=1, col=1)
        if not x:
            fig.update_xaxes(visible=False, row=1, col=2)
            fig.update_yaxes(visible=False, row=1, col=2)
            _note(fig, "no GRPO step yet", "x2 domain")
    return fig


def length_figure(rows: list[dict]) -> go.Figure:
    """Completion length in tokens (mean, min–max band) and the share clipped at max_completion_length."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x, mean = series(rows, "completions/mean_length")
    _, lo = series(rows, "completions/min_length")
    _, hi = series(rows, "completions/max_length")
    if x and len(lo) == len(hi) == len(x):
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=hi + lo[::-1],
                fill="toself",
                fillcolor="rgba(8,145,178,0.12)",
                line={"width": 0},
                hoverinfo="skip",
                name="min–max",
            )
        )
    fig.add_trace(go.Scatter(x=x, y=mean, mode=_mode(len(x)), name="mean length", line={"color": COLORS[1]}))
    cx, cy = series(rows, "completions/clipped_ratio")
    fig.add_trace(
        go.Scatter(x=cx, y=cy, mode=_mode(len(cx)), name="clipped ratio", line={"color": COLORS[2], "dash": "dash"}),
        secondary_y=True,
    )
    fig.update_yaxes(range=[0, 1.05], secondary_y=True)
    return _layout(fig, "Completion length (tokens)", not x)


def quality_figure(rows: list[dict]) -> go.Figure:
    """The watched quality metrics (0..1, higher is better) with the reward's trend on its own axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    watched = quality_series(rows)
    for i, (name, points) in enumerate(watched.items()):
        label = QUALITY_KEYS[name][0]
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode=_mode(len(points)),
                name=label,
                line={"color": COLORS[(i + 3) % len(COLORS)]},
            )
        )
    x, y = series(rows, "reward")
    if watched and x:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=smooth(y, 0.7),
                mode="lines",
                name="reward (trend)",
                opacity=0.6,
                line={"color": COLORS[0], "dash": "dot"},
            ),
            secondary_y=True,
        )
    hx, hy = series(rows, "heldout/summary_rate")
    if hx:  # the same check on texts the run never trains on (run.eval_steps): the number that says it learns
        fig.add_trace(
            go.Scatter(
                x=hx,
                y=hy,
                mode="lines+markers",
                name="held-out summaries (unseen texts)",
                line={"color": "#111827", "width": 2.5},
                marker={"size": 8, "symbol": "diamond"},
            )
        )
    sx, sy = series(rows, "heldout/score")
    if sx and not hx:  # a task template: its weighted rewards on unseen prompts, on the reward's axis
        fig.add_trace(
            go.Scatter(x=sx, y=sy, mode="lines+markers", name="held-out score (unseen prompts)", marker={"size": 8}),
            secondary_y=True,
        )
    watched = watched or bool(hx or sx)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", secondary_y=False)
    fig = _layout(fig, "Quality (share of completions)", not watched)
    if not watched and x:
        fig.layout.annotations[0].text = "no quality metric watched (reward.monitor)"
    return fig


def health_figure(rows: list[dict]) -> go.Figure:
    """Entropy, learning rate, frac_reward_zero_std (groups that taught nothing) and the training process's
    memory, side by side: a run creeping towards the machine's limit shows before the OOM killer acts."""
    keys = [
        ("entropy", "entropy"),
        ("learning_rate", "learning rate"),
        ("frac_reward_zero_std", "groups with zero spread"),
        ("memory_gb", "memory (GB)"),
    ]
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[t for _, t in keys], horizontal_spacing=0.07)
    empty = True
    for col, (key, title) in enumerate(keys, 1):
        x, y = series(rows, key)
        empty &= not x
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode=_mode(len(x)),
                name=title,
                showlegend=False,
                line={"color": COLORS[(col + 2) % len(COLORS)]},
            ),
            row=1,
            col=col,
        )
    fig.update_annotations(font_size=11)
    fig = _layout(fig, "", empty)
    fig.update_layout(margin={"t": 30}, height=230)
    fig.update_yaxes(exponentformat="e", row=1, col=2)
    return fig


def all_figures(rows: list[dict], warmup: list[dict] | tuple = ()) -> list[go.Figure]:
    """The Train tab's charts, in the order of FIGURES (`warmup`: the warm-up's steps, drawn in the loss chart)."""
    figures = [reward_figure(rows), loss_figure(rows, warmup)]
    figures += [length_figure(rows), quality_figure(rows), health_figure(rows)]
    last = max((r.get("step", 0) for r in rows), default=0)
    if last <= 12:  # a short run: one tick per step, never "0 1 1 2 2"
        for fig in figures:
            panel = {"col": 2, "row": 1} if "xaxis2" in fig.layout and fig is figures[1] else {}  # warm-up: own ticks
            fig.update_xaxes(dtick=1, **panel)
    return figures


def quality_bars_figure(summary: dict) -> go.Figure:
    """Base vs tuned on the batch's quality figures (all shares, 0..1)."""
    keys = [
        ("summary_rate", "summaries ↑"),
        ("copy_rate", "copies ↓"),
        ("coverage", "coverage ↑"),
        ("grounding", "grounding ↑"),
        ("repetition", "repetition ↓"),
        ("degenerate_rate", "degenerate ↓"),
    ]
    if "rougeL" in summary["base"]:
        keys.append(("rougeL", "ROUGE-L ↑"))
    fig = go.Figure()
    for i, side in enumerate(("base", "tuned")):
        values = [summary[side].get(k, 0.0) for k, _ in keys]
        fig.add_trace(
            go.Bar(
                x=[label for _, label in keys],
                y=values,
                name=side,
                marker_color=COLORS[i * 2],
                text=[f"{v:.0%}" if k != "rougeL" else f"{v:.2f}" for v, (k, _) in zip(values, keys, strict=True)],
                textposition="outside",
            )
        )
    fig.update_layout(barmode="group")
    fig = _layout(fig, "Quality: base vs tuned", False)
    fig.update_yaxes(range=[0, 1.15], tickformat=".0%")
    fig.update_layout(hovermode="closest")
    return fig


def comparison_figure(df, ideal: int | None = None) -> go.Figure:
    """Base vs tuned completion lengths (characters) over the same prompts, with the ideal marked."""
    fig = go.Figure()
    for i, side in enumerate(("base", "tuned")):
        fig.add_trace(
            go.Histogram(x=df[f"{side}_chars"], name=side, opacity=0.6, nbinsx=30, marker_color=COLORS[i * 2])
        )
    if ideal:
        fig.add_vline(x=ideal, line_dash="dash", line_color="#16a34a", annotation_text=f"ideal {ideal}")
    fig.update_layout(barmode="overlay")
    fig = _layout(fig, "Completion length (characters): base vs tuned", df.empty)
    fig.update_xaxes(title_text="characters", rangemode="tozero")
    fig.update_yaxes(title_text="prompts")
    return fig


OVERLAY = (
    ("reward", "reward (mean)"),
    ("rewards/summary/mean", "summaries (sampled)"),
    ("heldout/score", "held-out score"),
    ("kl", "KL"),
    ("completions/mean_length", "length (tokens)"),
    ("loss", "loss"),
)


def overlay_figure(runs: dict[str, list[dict]]) -> go.Figure:
    """Several runs' metrics on the same axes, one colour per run, aligned by step."""
    keys = [(k, t) for k, t in OVERLAY if any(r.get(k) is not None for rows in runs.values() for r in rows)]
    cols = 3
    nrows = max(1, -(-len(keys) // cols))
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[t for _, t in keys], horizontal_spacing=0.07)
    for i, (name, rows) in enumerate(runs.items()):
        color = COLORS[i % len(COLORS)]
        for j, (key, _) in enumerate(keys):
            x, y = series(rows, key)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode=_mode(len(x)),
                    name=name,
                    legendgroup=name,
                    showlegend=j == 0,
                    line={"color": color},
                ),
                row=j // cols + 1,
                col=j % cols + 1,
            )
    fig.update_annotations(font_size=11)
    fig = _layout(fig, "", not keys)
    fig.update_layout(height=260 * nrows, margin={"t": 30}, legend={"orientation": "h", "y": -0.08})
    return fig
