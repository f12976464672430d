"""The live view's heartbeat: what an open page asks every 1.5 s, and how it then brings its view up to date.

A refresh of the live view through Gradio is an event (the queue, a session, the page's States): ~18 ms of the
server's CPU each, whatever it carries, and twenty pages asked for one each step while a run held both cores (#24).
Now each page asks `GET /studio/pulse`, a plain route that reads a few fields under a lock (~0.3 ms), and then:
- when the run's stage moved (another run, its folder known or renamed, its end: registry.Pulse), the Gradio refresh
  (`TrainHandlers.tick`, behind a hidden button), which also brings the run's settings and the list of runs;
- when only the run moved within its stage (a step, its samples, the status line), the feed: `GET /studio/live`,
  one JSON body built once per version of the run's state for every page (ui/feed.py), which the page applies
  itself through a frontend-only event, with no Gradio event at all;
- otherwise it moves the progress bar's elapsed clock itself.
Where the routes are missing (the Blocks launched by someone else's code), the page refreshes through Gradio on every
beat, as it did before.
"""

from __future__ import annotations

from ..registry import JobRegistry
from .feed import LiveFeed
from .live import clock

ROUTE, FEED_ROUTE = "/studio/pulse", "/studio/live"
BUTTON_ID, FEED_ID, STAGE_ID = "gs-refresh", "gs-feed", "gs-stage"

# Installed once per page by a frontend-only load event: every TICK seconds, ask the pulse. A new moment (a step's
# metrics, a new status, another run) brings the view at once; other news (a step's samples as they arrive, log lines)
# waits until SETTLE seconds after the last, so a short step costs each page one feed, not two, and a long one still
# shows its samples before it ends. A new stage is asked for again after RETRY seconds if the page still does not
# show it (its refresh failed, or an older refresh landed after it). A feed applies only if no feed or refresh
# started after it and the run is still at the stage the page shows. `fetch` is relative to the page: it follows a
# root path.
TICK, SETTLE, RETRY = 1.5, 10.0, 3.0
LOAD_JS = f"""
() => {{
  if (window.gsPulse) return;
  const seen = (window.gsPulse = {{ key: null, moment: null, at: 0, asked: null, parts: {{}}, n: 0 }});
  const click = (id) => document.getElementById(id)?.click();
  const shown = () => document.getElementById("{STAGE_ID}")?.textContent.trim();
  const refresh = () => {{
    seen.n++;  // a feed still on its way is older than this refresh: it is dropped
    click("{BUTTON_ID}");
  }};
  const fill = (n) => Array.from({{ length: n }}, () => ({{ __type__: "update" }}));
  window.gsFeed = async (total) => {{
    const n = ++seen.n;
    try {{
      const r = await fetch("{FEED_ROUTE.lstrip("/")}", {{ cache: "no-store" }});
      if (!r.ok) throw r.status;
      const p = await r.json();
      // a newer feed or refresh started meanwhile, or the run changed stage (its refresh brings the view)
      if (n !== seen.n || p.stage !== shown()) return fill(total);
      const part = (name) => {{
        if (!p[name] || p.keys[name] === seen.parts[name]) return fill(p.sizes[name]);
        seen.parts[name] = p.keys[name];
        return p[name];
      }};
      return [...p.head, ...part("charts"), ...part("samples")];
    }} catch (e) {{
      refresh();
      return fill(total);
    }}
  }};
  const beat = () =>
    fetch("{ROUTE.lstrip("/")}", {{ cache: "no-store" }})
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((p) => {{
        const now = Date.now(), since = now - seen.at;
        if (p.stage !== shown()) {{
          if (p.stage !== seen.asked || since >= {RETRY * 1000:g}) {{
            Object.assign(seen, {{ key: p.key, moment: p.moment, at: now, asked: p.stage }});
            refresh();
          }}
        }} else if (p.key !== seen.key && (p.moment !== seen.moment || since >= {SETTLE * 1000:g})) {{
          Object.assign(seen, {{ key: p.key, moment: p.moment, at: now }});
          click("{FEED_ID}");
        }} else if (p.active) {{
          const el = document.querySelector("#train-progress .gs-elapsed");
          if (el) el.textContent = p.elapsed;
        }}
      }})
      .catch(refresh);
  setInterval(beat, {TICK * 1000:g});
}}
"""


def feed_js(total: int) -> str:
    """The feed button's frontend-only event: the values of its `total` outputs, from the feed (LOAD_JS)."""
    keep = f"Array.from({{ length: {total} }}, () => ({{ __type__: 'update' }}))"
    return f"() => (window.gsFeed ? window.gsFeed({total}) : {keep})"


def pulse(registry: JobRegistry) -> dict:
    """The route's answer: the keys a page compares with the last it saw, and the run's clock as the bar shows it."""
    p = registry.pulse()
    return {"key": p.key, "moment": p.moment, "stage": p.stage, "active": p.active, "elapsed": clock(p.elapsed)}


def add_live_routes(app, registry: JobRegistry, feed: LiveFeed) -> None:
    """Serve the pulse and the feed on the launched FastAPI app, outside Gradio's queue: on the event loop (no worker
    thread to hand them to) and as ready responses (nothing for FastAPI to validate or encode). Building the feed
    (drawing a step's charts, 0.1-0.3 s) goes to a thread, once per version for every page."""
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, Response

    async def answer() -> JSONResponse:
        return JSONResponse(pulse(registry))

    async def live_view() -> Response:
        body = feed.ready() or await run_in_threadpool(feed.body)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    app.add_api_route(ROUTE, answer, methods=["GET"], include_in_schema=False)
    app.add_api_route(FEED_ROUTE, live_view, methods=["GET"], include_in_schema=False)
