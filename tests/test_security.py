"""Public mode: a visitor reads no server file, loads no server folder, runs no custom code, and the server itself
serves only run folders and assets. Locally the app listens on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import gradio as gr
import pytest

from grpo_app.access import Policy, upload_folder
from grpo_app.config import Config, ConfigError
from grpo_app.training import train
from grpo_app.ui import create_ui
from grpo_app.ui.forms import FORM_KEYS, config_to_values

REPO = Path(__file__).resolve().parent.parent
SERVER_PATHS = [
    "/etc/passwd",
    "assets/posts/train.jsonl",
    "runs/some-run/completions.jsonl",
    "../secrets.jsonl",
    "~/.ssh/id_rsa",
    str(REPO / "app.py"),
    "C:\\data\\x.csv",
]


@pytest.fixture
def public(tmp_path) -> Policy:
    (tmp_path / "runs").mkdir()
    return Policy(public=True, custom_rewards=False, manage_runs=False, runs_root=tmp_path / "runs", max_upload_mb=1)


@pytest.mark.parametrize("path", SERVER_PATHS)
def test_public_mode_refuses_server_paths(public, path):
    with pytest.raises(ConfigError, match="server paths are not read"):
        public.check_dataset(path)
    with pytest.raises(ConfigError, match="server folders are not loaded"):
        public.check_model(path)
    with pytest.raises(ConfigError, match="other server folders are not loaded"):
        public.check_adapter(path)


def test_public_mode_accepts_bundled_data_hub_ids_uploads_and_own_runs(public, tmp_path):
    for ok in ("bundled", "bundled-documents", "bundled-mixed", "mlabonne/smoltldr"):
        public.check_dataset(ok)
    for ok in ("default", "HuggingFaceTB/SmolLM-135M-Instruct"):
        public.check_model(ok)
    public.check_adapter(str(public.runs_root / "a-run" / "adapter"))
    public.check_adapter("someone/their-adapter")
    folder = upload_folder() / "test-upload"
    folder.mkdir(parents=True, exist_ok=True)
    small, big = folder / "posts.jsonl", folder / "big.jsonl"
    small.write_text('{"prompt": "a post"}\n')
    big.write_bytes(b"x" * (2 * 2**20))
    public.check_dataset(str(small))
    with pytest.raises(ConfigError, match="over this app's 1 MB limit"):
        public.check_dataset(str(big))
    big.unlink()


def test_public_mode_refuses_custom_reward_code_and_run_management(public):
    cfg = Config()
    cfg.reward.functions = ["length", "/srv/evil.py:reward"]
    with pytest.raises(ConfigError, match="Custom reward code .* is off"):
        public.check_config(cfg)
    with pytest.raises(ConfigError, match="off on this public app"):
        public.check_manage()
    with pytest.raises(ConfigError, match="leave Folder empty"):
        public.check_export_folder("/tmp/elsewhere")
    with pytest.raises(ConfigError, match="not a run of this app"):
        public.run_folder(str(public.runs_root / ".." / "runs-elsewhere"))


def test_policy_from_the_environment(monkeypatch, tmp_path):
    for name in ("SPACE_ID", "GRPO_STUDIO_PUBLIC", "GRPO_STUDIO_ALLOW_CUSTOM_REWARDS", "GRADIO_SERVER_NAME"):
        monkeypatch.delenv(name, raising=False)
    local = Policy.from_env(tmp_path)
    assert not local.public and local.custom_rewards and local.manage_runs and local.host == "127.0.0.1"
    monkeypatch.setenv("SPACE_ID", "me/grpo-studio")
    space = Policy.from_env(tmp_path)
    assert space.public and not space.custom_rewards and not space.manage_runs and space.host == "0.0.0.0"
    monkeypatch.delenv("SPACE_ID")
    monkeypatch.setenv("GRPO_STUDIO_PUBLIC", "1")
    monkeypatch.setenv("GRPO_STUDIO_ALLOW_CUSTOM_REWARDS", "1")
    opened = Policy.from_env(tmp_path)
    assert opened.public and opened.custom_rewards and opened.host == "127.0.0.1"
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert Policy.from_env(tmp_path).host == "0.0.0.0"


def _stop(demo):
    """The Stop button's handler: what the visitor sees in the status line ("" when it changes nothing)."""
    tab = demo.train

    def stop(visitor):
        return tab.stop_run({tab.view.visitor: visitor}).get(tab.view.status, "")

    return stop


def test_public_app_handlers_refuse_what_the_policy_refuses(public, tiny_cfg):
    tiny_cfg.run.dir = str(public.runs_root / "a-run")
    assert train(tiny_cfg).status == "finished"
    demo = create_ui(str(public.runs_root), public)
    tab, v = demo.train, demo.train.view
    form = config_to_values(Config())
    for field, value, words in [
        ("data.path", "/etc/passwd", "server paths are not read"),
        ("model.name", str(tiny_cfg.model.name), "server folders are not loaded"),
        ("run.resume_from", "/etc", "other server folders are not loaded"),
    ]:
        data = {v.visitor: "visitor-1", **{v.fields[k]: value if k == field else form[k] for k in FORM_KEYS}}
        status = tab.start_run(data)[v.status]
        assert "Not started" in status and words in status, status
    assert demo.registry.current is None
    f = v.fields
    info = tab.show_data({f["data.path"]: "/etc/passwd", f["data.split"]: "train", f["data.prompt_column"]: "auto"})[
        v.data_info
    ]
    assert info.startswith("❌") and "server paths are not read" in info
    note = tab.manage["ask"](tiny_cfg.run.dir)[2]
    assert "off on this public app" in note
    assert "off on this public app" in tab.manage["delete"](tiny_cfg.run.dir)[1]
    assert (Path(tiny_cfg.run.dir) / "config.yaml").is_file()
    assert "leave Folder empty" in tab.manage["export"](tiny_cfg.run.dir, False, "/tmp/out")
    assert "not a run of this app" in tab.manage["export"](str(REPO), False, "")
    outputs = list(demo.compare["generate"]("", "/etc", "", False, "text", 8, 0.5, 0.1, 1.0, 0, False))
    assert "other server folders are not loaded" in outputs[-1][3]
    upload = public.runs_root / "uploads" / "posts.jsonl"  # an upload the page kept under the runs folder
    upload.parent.mkdir(exist_ok=True)
    upload.write_text('{"prompt": "My cat sleeps all day."}\n')
    public.check_dataset(str(upload))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def public_app(tmp_path_factory):
    """app.py as a Space runs it (public mode), with one finished run in its runs folder."""
    root = tmp_path_factory.mktemp("public")
    runs = root / "runs"
    (runs / "a-run").mkdir(parents=True)
    (runs / "a-run" / "config.yaml").write_text(Config().to_yaml())
    port = _free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRPO_STUDIO_RUNS": str(runs),
        "GRPO_STUDIO_PUBLIC": "1",
        "GRPO_STUDIO_MAX_UPLOAD_MB": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": str(REPO),
    }
    env.pop("GRADIO_SERVER_NAME", None)
    env.pop("SPACE_ID", None)
    log = open(root / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            assert proc.poll() is None, (root / "app.log").read_text()
            time.sleep(0.5)
    yield url, port, runs
    proc.terminate()
    proc.wait(60)


def _get(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        str(REPO / "app.py"),
        "{runs}/a-run/../..",
        "{runs}/" + "../" * 12 + str(REPO / "app.py").lstrip("/"),
        str(REPO / ".git" / "config"),
        "app.py",
    ],
)
def test_the_server_serves_no_file_outside_runs_and_assets(public_app, path):
    url, _, runs = public_app
    assert _get(f"{url}/gradio_api/file={path.format(runs=runs)}") in (400, 403, 404)


def test_the_server_serves_run_folders_and_assets(public_app):
    url, _, runs = public_app
    assert _get(f"{url}/gradio_api/file={runs}/a-run/config.yaml") == 200
    assert _get(f"{url}/gradio_api/file={REPO}/assets/style.css") == 200


def test_uploads_over_the_limit_are_refused(public_app):
    url, _, _ = public_app
    boundary = "gs-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.jsonl"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"x" * (2 * 2**20)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{url}/gradio_api/upload",
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=30)
    assert e.value.code in (400, 413)


def test_the_app_listens_on_loopback_only(public_app):
    _, port, _ = public_app
    tcp = Path("/proc/net/tcp")
    if not tcp.is_file():
        pytest.skip("no /proc/net/tcp on this system")
    listening = [
        line.split()[1]
        for line in tcp.read_text().splitlines()[1:]
        if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port
    ]
    assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1, not 0.0.0.0


def test_on_a_public_app_only_the_visitor_who_started_a_run_can_stop_it(public, tiny_cfg):
    demo = create_ui(str(public.runs_root), public)
    stop = _stop(demo)
    tiny_cfg.grpo.max_steps = 100_000
    tiny_cfg.run.dir = str(public.runs_root / "owned")
    job = demo.registry.start(tiny_cfg, owner="visitor-a")
    deadline = time.time() + 120
    while demo.registry.snapshot().step < 1 and time.time() < deadline:
        time.sleep(0.1)
    refused = stop("visitor-b")
    assert "only they can stop it" in refused and demo.registry.snapshot().status == "training"
    stop("visitor-a")
    assert job.wait(120).status == "stopped"


def test_a_hugging_face_login_owns_a_run_across_browsers(public, tiny_cfg):
    """With the Space's OAuth on, a run started signed in stops from any browser signed in to the same account."""
    from grpo_app.ui import identify

    def signed_in(name):
        return gr.OAuthProfile({"name": name.title(), "preferred_username": name, "profile": "", "picture": ""})

    browser, identity = identify("", None)
    assert len(browser) == 32 and identity == browser  # a fresh browser gets an id of its own
    assert identify(browser, signed_in("alice")) == (browser, f"{browser} hf:alice")
    assert "hf:alice" not in identify("hf:alice", None)[1]  # a browser cannot store its way into a login
    demo = create_ui(str(public.runs_root), public)
    stop = _stop(demo)
    tiny_cfg.grpo.max_steps = 100_000
    tiny_cfg.run.dir = str(public.runs_root / "login")
    job = demo.registry.start(tiny_cfg, owner=identify("", signed_in("alice"))[1])
    while demo.registry.snapshot().step < 1 and job.snapshot().active:
        time.sleep(0.1)
    assert "only they can stop it" in stop(identify("", signed_in("bob"))[1])
    assert "only they can stop it" in stop("alice")  # a browser id that merely looks like the name
    stop(identify("", signed_in("alice"))[1])
    assert job.wait(120).status == "stopped"


def test_operator_caps_bound_steps_and_minutes(public, tiny_cfg):
    capped = Policy(public=True, runs_root=public.runs_root, max_steps=3, max_minutes=0.02)
    cfg = Config()
    cfg.grpo.max_steps = -1
    assert "at most 3 steps" in capped.apply_caps(cfg) and cfg.grpo.max_steps == 3
    assert "at most 3 steps per run" in capped.caps() and "0.02 minutes" in capped.caps()
    from grpo_app.registry import JobRegistry

    cfg.sft.steps = 10_000
    assert "Warm-up steps set to 3" in capped.apply_caps(cfg) and cfg.sft.steps == 3
    registry = JobRegistry()

    def capped_once(job, began):
        """The job's cap set to the past once `began(snapshot)` (a slow start must not decide where the cap falls):
        the next report stops it. Returns how it ended."""
        deadline = time.time() + 120
        while not began(job.snapshot()) and time.time() < deadline:
            time.sleep(0.05)
        job.max_seconds = 0.001
        return job.wait(180)

    tiny_cfg.grpo.max_steps = 100_000  # in GRPO: checked at each step's progress
    snap = capped_once(registry.start(tiny_cfg, max_seconds=3600), lambda s: s.step >= 1)
    assert snap.status == "stopped" and 1 <= snap.step < 100_000, snap.message
    assert any("time cap" in line for line in snap.log)
    # in a warm-up too (it reports no GRPO progress): a long one is stopped and what it learned is kept
    path = public.runs_root.parent / "answers.jsonl"
    path.write_text("".join(f'{{"prompt": "Post {i}: a few words", "reference": "Short."}}\n' for i in range(8)))
    tiny_cfg.data.path, tiny_cfg.sft.steps = str(path), 10_000_000
    tiny_cfg.run.dir = str(public.runs_root.parent / "warm")
    snap = capped_once(registry.start(tiny_cfg, max_seconds=3600), lambda s: "Warm-up on the reference" in s.message)
    assert snap.status == "stopped" and snap.step == 0, snap.message
    assert any("time cap" in line for line in snap.log)
    assert snap.message.startswith("Stopped after the warm-up (") and "no GRPO step); adapter saved to" in snap.message
    assert (Path(snap.run_dir) / "adapter" / "adapter_model.safetensors").is_file()
