"""What the browser tests share: the app launched as a user runs it, and ways to read and fill the page."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CANARY = "hf_CANARYbrowserToken0123456789"
# what the data line says for the default dataset (bundled-mixed: the training posts and documents)
MIXED_ROWS = "{} rows".format(
    sum(len((REPO / "assets" / d / "train.jsonl").read_text().splitlines()) for d in ("posts", "docs"))
)
REWARD_POINTS = (
    "() => { const d = document.querySelector('#plot-reward .js-plotly-plot');"
    " if (!d || !d.data) return 0; const t = d.data.find(t => t.name === 'reward (mean)');"
    " return t ? t.x.length : 0; }"
)
WARMUP_POINTS = (
    "() => { const d = document.querySelector('#plot-loss .js-plotly-plot');"
    " if (!d || !d.data) return 0; const t = d.data.find(t => t.name === 'warm-up loss');"
    " return t ? t.x.length : 0; }"
)
QUALITY_POINTS = (
    "() => { const d = document.querySelector('#plot-quality .js-plotly-plot');"
    " if (!d || !d.data) return {}; const out = {};"
    " for (const t of d.data) out[t.name] = t.x.length; return out; }"
)

REWARD_XS = (
    "() => { const d = document.querySelector('#plot-reward .js-plotly-plot');"
    " const t = d && d.data && d.data.find(t => t.name === 'reward (mean)');"
    " return t ? Array.from(t.x) : []; }"
)
WATCH_SIDES = (
    "() => { window.sides = []; const f = () => {"
    " const b = document.querySelector('#base-output textarea').value.length;"
    " const t = document.querySelector('#tuned-output textarea').value.length;"
    " const last = window.sides[window.sides.length - 1];"
    " if (!last || last[0] !== b || last[1] !== t) window.sides.push([b, t]);"
    " requestAnimationFrame(f); }; f(); }"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(runs: Path, python: str = sys.executable, port: int = 0, **extra_env: str) -> tuple[subprocess.Popen, str]:
    """`python app.py` as a user runs it, its output in <runs>/app.log."""
    port = port or free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRPO_STUDIO_RUNS": str(runs),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": str(REPO),
        **extra_env,
    }
    env = {k: v for k, v in env.items() if v is not None}
    log = open(runs / "app.log", "w")
    proc = subprocess.Popen([python, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, (runs / "app.log").read_text()
            time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}"


def wait(predicate, timeout=180, every=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def table_rows(page, elem_id) -> int:
    """Data rows of a Gradio 6 Dataframe (virtualised: read its grid's aria-rowcount, header included)."""
    return int(page.locator(f"#{elem_id} [role=grid]").get_attribute("aria-rowcount") or 1) - 1


def set_field(page, elem_id, value):
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    for _ in range(3):  # a field in an accordion still opening lost a fill once (kill -9 test, a CI run)
        box.fill(str(value))
        box.press("Tab")
        try:
            return wait(lambda: box.input_value() == str(value), timeout=10)  # held before anything reads it
        except AssertionError:
            continue
    raise AssertionError(f"#{elem_id} did not keep {value!r}")


def tiny_settings(page, tiny_model_dir, steps=400):
    set_field(page, "cfg-model-name", tiny_model_dir)
    set_field(page, "cfg-grpo-max_steps", steps)
    set_field(page, "cfg-grpo-per_device_train_batch_size", 4)
    set_field(page, "cfg-grpo-num_generations", 4)
    set_field(page, "cfg-grpo-max_completion_length", 8)
