"""Text and tables for the live view, from a job snapshot: pure functions, no Gradio."""

from __future__ import annotations

import os

import pandas as pd

from ..jobs import JobSnapshot
from ..models import slow_host_note
from ..prompts import without_instruction
from ..quality import assess
from ..runs import Run, read_status
from ..watch import hacking_warning

ICONS = {
    "idle": "⚪",
    "starting": "⏳",
    "loading": "⏳",
    "training": "🟢",
    "stopping": "🟠",
    "finished": "✅",
    "stopped": "⏹️",
    "failed": "❌",
    "interrupted": "⚠️",
    "running": "🟢",
}


FAIL_STYLE = "background-color: #fee2e2"


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def status_markdown(s: JobSnapshot) -> str:
    if s.status == "failed" and not s.run_dir:  # refused by its checks: nothing ran, nothing was saved
        return f"**❌ Not started** — {s.message}"
    text = f"**{ICONS.get(s.status, '')} {s.status.capitalize()}** — {s.message}"
    if s.status == "idle" and slow_host_note():
        text += f"  \n{slow_host_note()}"
    if s.run_dir and s.status not in ("idle",):
        text += f"  \nRun folder: `{s.run_dir}`"
    return text


def progress_html(s: JobSnapshot) -> str:
    """A progress bar with step/total, elapsed, ETA and completion tokens per second."""
    pct = 100 * s.step / s.total if s.total else 0
    tps = next((m["completion_tokens_per_s"] for m in reversed(s.metrics) if m.get("completion_tokens_per_s")), None)
    reward = next((m["reward"] for m in reversed(s.metrics) if m.get("reward") is not None), None)
    stats = [
        f"step <b>{s.step}/{s.total or '?'}</b>",
        f'elapsed <span class="gs-elapsed">{clock(s.elapsed if s.status != "idle" else 0)}</span>',
        f"ETA {clock(s.eta) if s.active else '–'}",
        f"{tps:.1f} completion tokens/s" if tps else "– tokens/s",
        f"reward {reward:.2f}" if reward is not None else "",
    ]
    return (
        f'<div class="gs-progress" data-step="{s.step}" data-status="{s.status}">'
        f'<div class="gs-bar"><div class="gs-fill" style="width:{pct:.1f}%"></div></div>'
        f'<div class="gs-stats">{" · ".join(x for x in stats if x)}</div></div>'
    )


def busy_hint() -> str:
    """On a Space: where to train one's own run while this one is busy (the Space's Duplicate link)."""
    space = os.environ.get("SPACE_ID")
    if not space:
        return ""
    return (
        f"Watch this run live, or [duplicate the Space](https://huggingface.co/spaces/{space}?duplicate=true) "
        "to train your own."
    )


def shorten(text: str, n: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def warning_markdown(metrics: list[dict]) -> str:
    text = hacking_warning(metrics)
    return f"⚠️ **{text}**" if text else ""


def completions_frame(rows: list[dict], instruction: str = ""):
    """The latest sampled group, best first: prompt (without the instruction), completion, length, rewards,
    and whether each completion is a summary (failing rows are tinted, with the reason)."""
    if not rows:
        return pd.DataFrame({"prompt": [], "completion": [], "chars": [], "summary?": [], "total": []})
    names = list(rows[0].get("rewards", {}))
    data = []
    for r in rows:
        prompt = without_instruction(r["prompt"], instruction)
        check = assess(r["prompt"], r["completion"])
        item = {
            "prompt": shorten(prompt, 70),
            "completion": r["completion"],
            "chars": len(r["completion"]),
            "summary?": "✓" if check.summary else f"✗ {check.reason}",
            "total": round(r.get("total", 0.0), 2),
        }
        for name in names:  # each reward after the total, which stays in view on a narrow table
            value = r["rewards"].get(name)
            item[name] = round(value, 2) if value is not None else None
        data.append(item)
    frame = pd.DataFrame(data).sort_values("total", ascending=False, kind="stable")
    failing = frame["summary?"].str.startswith("✗")
    return frame.style.apply(lambda row: [FAIL_STYLE if failing[row.name] else ""] * len(row), axis=1)


def groups_frame(groups: list[dict]):
    """One row per completion, group by group, best first within each: total, advantage, tokens, cut off, each
    reward. A group whose completions all scored alike (no advantage anywhere) is tinted."""
    data = []
    for i, g in enumerate(groups, 1):
        for r in sorted(g["rows"], key=lambda r: -r.get("total", 0.0)):
            item = {
                "group": i,
                "completion": r["completion"],
                "total": round(r.get("total", 0.0), 2),
                "advantage": r.get("advantage"),
                "tokens": r.get("tokens"),
                "cut off": "✂" if r.get("truncated") else "",
            }
            item |= {k: round(v, 2) if v is not None else None for k, v in r.get("rewards", {}).items()}
            data.append(item)
    if not data:
        return pd.DataFrame({"group": [], "completion": [], "total": [], "advantage": []})
    frame = pd.DataFrame(data)
    idle = {i for i, g in enumerate(groups, 1) if not g["learned"]}
    return frame.style.apply(lambda row: [FAIL_STYLE if row["group"] in idle else ""] * len(row), axis=1)


def log_text(s: JobSnapshot, lines: int = 40) -> str:
    text = "\n".join(s.log[-lines:])
    if s.error:
        text += "\n\n" + s.error
    return text


def completions_caption(s: JobSnapshot) -> str:
    if not s.completions:
        return "Completions appear here after the first step."
    n, prompts = len(s.completions), len({r["prompt"] for r in s.completions})
    when = f"Step {s.completions_step}" + (" (in progress)" if s.completions_step > s.step else "")
    return f"**{when}**: {plural(n, 'completion')} sampled for {plural(prompts, 'prompt')}, best first."


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def run_snapshot(run: Run) -> JobSnapshot:
    """A saved run as the live view shows a job: its metrics, its last sampled group, its final status."""
    status = read_status(run.path)
    metrics, completions = run.metrics(), run.completions()
    last = max((c.get("step", 0) for c in completions), default=0)
    step = metrics[-1].get("step", 0) if metrics else 0
    try:
        planned = run.config().grpo.max_steps
    except Exception:
        planned = -1
    state = status.get("status", "unknown")  # `interrupted` when the process that ran it is gone
    return JobSnapshot(
        status=state,
        message=status.get("message") or f"Saved run, {step} steps.",
        step=step,
        total=planned if planned > 0 else step,
        run_dir=str(run.path),
        error=status.get("traceback", ""),
        metrics=metrics,
        warmup=run.warmup(),
        completions=[c for c in completions if c.get("step") == last],
        completions_step=last,
        elapsed=status.get("elapsed") or (metrics[-1].get("elapsed", 0.0) if metrics else 0.0),
    )
