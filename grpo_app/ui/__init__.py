"""The Gradio app: `create_ui()` builds the page and the process's one JobRegistry (never at import time)."""

from __future__ import annotations

import os
import re
import uuid

import gradio as gr

from ..access import Policy, runs_are_lost_on_restart
from ..data import ASSETS
from ..registry import JobRegistry

# Gradio's queue summarises the last 10,000 events with pandas after every event (GRADIO_ANALYTICS_CACHE_FREQUENCY=1):
# with twenty pages refreshing, that grew to the server's largest cost (bench/bench_load.py). Read when the queue
# starts; an operator's own setting wins.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

CSS = (ASSETS / "style.css").read_text() if (ASSETS / "style.css").is_file() else ""
THEME = gr.themes.Soft(primary_hue="violet", secondary_hue="cyan")

HEADER = """# GRPO Studio
Fine-tune a small chat model with **LoRA + GRPO** and watch, live, whether it is learning.
Press **Start training** with the defaults: on a laptop CPU the first reward point arrives in under a minute."""


PUBLIC_NOTE = (
    "*Public app: one training run at a time for everyone; the visitor who starts it can stop it, everyone "
    "else watches it live (the Compare tab works meanwhile). Datasets are the bundled ones, Hub ids or "
    "your uploads; models are 'default' or Hub ids. Limits: {caps}.*"
)
LOST_NOTE = (
    "⚠️ *This Space has no persistent storage: runs vanish when it restarts. Enable persistent storage "
    "(mounted at /data), or export and push your adapter before you leave.*"
)


def identify(browser_id: str, profile: gr.OAuthProfile | None) -> tuple[str, str]:
    """(browser id, identity): a run started here may be stopped from any page sharing one of the identity's ids,
    so from this browser, or from any browser signed in to the same Hugging Face account. The login comes from
    Gradio's OAuth session on the server, never from what the browser stores."""
    if not re.fullmatch(r"[0-9a-f]{32}", browser_id or ""):  # ours, or a new one: a stored "hf:alice" is not a login
        browser_id = uuid.uuid4().hex
    return browser_id, f"{browser_id} hf:{profile.username}" if profile else browser_id


def create_ui(runs_root: str = "runs", policy: Policy | None = None) -> gr.Blocks:
    """The page; `policy` (default: from the environment) says what a visitor may do."""
    from . import pulse
    from .api import create_api
    from .compare_tab import create_compare_tab
    from .train_tab import create_train_tab

    policy = policy or Policy.from_env(runs_root)
    registry = JobRegistry(processes=True)  # each run in its own process: a crash never takes the page down
    with gr.Blocks(title="GRPO Studio") as demo:
        gr.Markdown(HEADER, elem_id="header")
        if policy.public:
            gr.Markdown(PUBLIC_NOTE.format(caps=policy.caps()), elem_id="public-note")
        if runs_are_lost_on_restart(runs_root):
            gr.Markdown(LOST_NOTE, elem_id="storage-note")
        browser_id = gr.BrowserState("", storage_key="grpo-studio-visitor")  # this browser's id, across reloads
        visitor = gr.State("")  # who this page is, kept on the server: the browser id, plus the HF login if any
        if policy.public and os.environ.get("OAUTH_CLIENT_ID"):  # the Space enables OAuth (hf_oauth: true)
            gr.LoginButton(value="Sign in with Hugging Face to own your run across browsers", size="sm")
        with gr.Tabs():
            with gr.Tab("Train", id="train"):
                train = create_train_tab(registry, runs_root, policy, visitor)
            with gr.Tab("Compare", id="compare"):
                compare = create_compare_tab(registry, runs_root, policy)
        for fn, inputs, outputs in train.on_load:
            demo.load(fn, inputs, outputs)
        demo.load(None, js=pulse.LOAD_JS)  # the live view's heartbeat, in the browser (ui/pulse.py)
        demo.load(identify, browser_id, [browser_id, visitor])
        if compare.get("on_load"):
            demo.load(*compare["on_load"])
        for i, event in enumerate(demo.fns.values()):  # the page's own events are not the API: only it calls them
            event.api_visibility, event.api_name = "private", f"page_{i}"
        create_api(registry, runs_root, policy, train)
    demo.registry, demo.policy = registry, policy  # for app.py, tests and embedding apps
    demo.train, demo.compare = train, compare  # the tabs' handlers, which tests call as Gradio does
    return demo
