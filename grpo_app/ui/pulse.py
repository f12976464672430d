"""The live view's heartbeat: what an open page asks every 1.5 s, and the refresh it sets off only when needed.

A refresh of the live view is a Gradio event (the queue, a session, the page's States): ~18 ms of the server's CPU
each, which twenty open pages asked for every 1.5 s while a run shared the same two cores. Now each page asks
`GET /studio/pulse` instead, a plain route that reads a version number under a lock (~0.3 ms), and runs the refresh
(`TrainHandlers.tick`, behind a hidden button) only when the key it answers has changed, at most about once a step
(see LOAD_JS). Between refreshes it moves the progress bar's elapsed clock itself. Where the route is missing (the
Blocks launched by someone else's code), the page refreshes on every beat, as it did before.
"""

from __future__ import annotations

from ..registry import JobRegistry
from .live import clock

ROUTE = "/studio/pulse"
BUTTON_ID = "gs-refresh"

# Installed once per page by a frontend-only load event: every TICK seconds, ask the pulse. A new moment (a step's
# metrics, a new status, another run) refreshes at once; other news (a step's samples as they arrive, log lines)
# waits until SETTLE seconds after the last refresh, so a short step costs each page one refresh, not two, and a
# long one still shows its samples before it ends. `fetch` is relative to the page: it follows a root path.
TICK, SETTLE = 1.5, 10.0
LOAD_JS = f"""
() => {{
  if (window.gsPulse) return;
  const seen = (window.gsPulse = {{ key: null, moment: null, at: 0 }});
  const refresh = () => document.getElementById("{BUTTON_ID}")?.click();
  const beat = () =>
    fetch("{ROUTE.lstrip("/")}", {{ cache: "no-store" }})
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((p) => {{
        const now = Date.now();
        if (p.key !== seen.key && (p.moment !== seen.moment || now - seen.at >= {SETTLE * 1000:g})) {{
          Object.assign(seen, {{ key: p.key, moment: p.moment, at: now }});
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
    key, moment, active, elapsed = registry.pulse()
    return {"key": key, "moment": moment, "active": active, "elapsed": clock(elapsed)}


def add_pulse_route(app, registry: JobRegistry) -> None:
    """Serve `pulse` on the launched FastAPI app, outside Gradio's queue: on the event loop (no worker thread to
    hand it to) and as a ready response (nothing for FastAPI to validate or encode)."""
    from fastapi.responses import JSONResponse

    async def answer() -> JSONResponse:
        return JSONResponse(pulse(registry))

    app.add_api_route(ROUTE, answer, methods=["GET"], include_in_schema=False)
