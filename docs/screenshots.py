"""Retake the README's screenshots from a real finished run, in headless Chromium (`make screenshots RUN=<folder>`).

The run folder is copied into a scratch runs root, the app is started on it as a user starts it, the run is
opened from "Past runs" (Train tab) and compared with the base model on the course's cat document and a batch of
held-out posts (Compare tab). Needs Debian's chromium and Playwright (both installed by `make test`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _launch(runs: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    env |= {"GRPO_STUDIO_RUNS": str(runs), "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=open(runs / "app.log", "w"))
    for _ in range(360):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the app did not start: see {runs / 'app.log'}")


def _open(page, name: str) -> None:
    """Open a run from 'Past runs' and wait for its charts."""
    page.locator("#past-run input").click()
    page.get_by_role("option", name=name).first.click()
    page.click("#open-run-btn")
    page.locator("#train-status").get_by_text(name).wait_for(timeout=60_000)
    page.locator("#plot-reward .js-plotly-plot").wait_for(timeout=60_000)
    time.sleep(3)  # the charts' own transition


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder (config.yaml, metrics.jsonl, adapter/)")
    parser.add_argument("--other", type=Path, help="a second run: 'Compare runs' overlays both")
    parser.add_argument("--scored", type=Path, help="a run trained with run.eval_steps: held-out chart, inspector")
    parser.add_argument("--out", type=Path, default=REPO / "assets")
    parser.add_argument("--batch", type=int, default=8, help="held-out posts in the batch comparison")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    runs = Path(tempfile.mkdtemp(prefix="shots-")) / "runs"
    runs.mkdir(parents=True)
    for run in filter(None, (args.run, args.other, args.scored)):
        shutil.copytree(run, runs / run.name, ignore=shutil.ignore_patterns("checkpoints", "merged", "export"))
    proc, url = _launch(runs)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.goto(url)
            page.get_by_text("Past runs").click()
            _open(page, args.run.name)
            page.evaluate("window.scrollTo(0, 0)")
            time.sleep(1)
            page.screenshot(path=str(args.out / "screenshot-train.png"), full_page=False)
            if args.scored:
                _open(page, args.scored.name)
                page.locator("#plot-quality").screenshot(path=str(args.out / "screenshot-heldout.png"))
                page.get_by_text("Group inspector").click()
                page.click("#inspect-btn")
                page.locator("#inspect-note").get_by_text("Step").wait_for(timeout=60_000)
                time.sleep(1)
                page.locator("#inspect-note").locator("..").locator("..").screenshot(
                    path=str(args.out / "screenshot-inspector.png")
                )
            if args.other:
                page.get_by_text("Compare runs").click()
                for name in (args.run.name, args.other.name):
                    page.locator("#compare-runs-pick input").click()
                    page.get_by_role("option", name=name).first.click()
                page.click("#compare-runs-btn")
                page.locator("#compare-runs-plot .js-plotly-plot").wait_for(timeout=60_000)
                time.sleep(2)
                page.locator("#compare-runs").screenshot(path=str(args.out / "screenshot-runs.png"))
            page.get_by_role("tab", name="Compare").click()
            page.locator("#adapter-choice input").click()
            page.get_by_role("option", name=args.run.name).first.click()  # the main run, not the newest
            page.click("#generate-btn")
            page.locator("#tuned-stats").get_by_text("tok/s").wait_for(timeout=600_000)
            page.locator("#base-stats").get_by_text("tok/s").wait_for(timeout=600_000)
            box = page.locator("#batch-n input")
            box.fill(str(args.batch))
            box.press("Enter")
            page.click("#batch-btn")
            page.locator("#batch-summary").get_by_text("answers that are summaries").wait_for(timeout=1_200_000)
            page.locator("#batch-quality .js-plotly-plot").wait_for(timeout=60_000)
            time.sleep(3)
            page.screenshot(path=str(args.out / "screenshot-compare.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"wrote {args.out / 'screenshot-train.png'} and {args.out / 'screenshot-compare.png'}")


if __name__ == "__main__":
    main()
