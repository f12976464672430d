"""The live view's heartbeat: what an open page asks every 1.5 s, and the refresh it sets off only when needed.

A refresh of the live view is a Gradio event (the queue, a session, the page's States): a few milliseconds of the
server's CPU each, which twenty open pages asked for every 1.5 s while a run shared the same two cores. Now each page
asks `GET /studio/pulse` instead, a plain route that reads a version number under a lock, and runs the refresh
(`TrainHandlers.tick`, behind a hidden button) only when the key it answers has changed. Between refreshes it moves
the progress bar's elapsed clock itself. Where the route is missing (the Blocks launched by someone else's code),
the page refreshes on every tick, as it did before.
"""

from __future__ import annotations

from ..registry import JobRegistry
from .live import clock

ROUTE = "/studio/pulse"
BUTTON_ID = "gs-refresh"

# Installed once per page by a frontend-only load event: every TICK seconds, ask the pulse; refresh when it moved.
# `fetch` is relative to the page, so the route follows a root path or a Space.
TICK = 1.5
LOAD_JS = f"""
() => {{
  if (window.gsPulse) return;
  const seen = (window.gsPulse = {{ key: null }});
  const refresh = () => document.getElementById("{BUTTON_ID}")?.click();
  const beat = () =>
    fetch("{ROUTE.lstrip("/")}", {{ cache: "no-store" }})
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((p) => {{
        if (p.key !== seen.key) {{
          seen.key = p.key;
          refresh();
        }} else if (p.active) {{
          const el = document.querySelector("#train-progress .gs-elapsed");
          if (el) el.textContent = p.elapsed;
        }}
      }})
      .catch(() => refresh());
  setInterval(beat, {TICK * 1000:g});
}}
"""


def pulse(registry: JobRegistry) -> dict:
    """The route's answer: the key a page compares with the last it saw, and the run's clock as the bar shows it."""
    key, active, elapsed = registry.pulse()
    return {"key": key, "active": active, "elapsed": clock(elapsed)}


def add_pulse_route(app, registry: JobRegistry) -> None:
    """Serve `pulse` on the launched FastAPI app, outside Gradio's queue: on the event loop (no worker thread to
    hand it to) and as a ready response (nothing for FastAPI to validate or encode)."""
    from fastapi.responses import JSONResponse

    async def answer() -> JSONResponse:
        return JSONResponse(pulse(registry))

    app.add_api_route(ROUTE, answer, methods=["GET"], include_in_schema=False)
