"""The app's API through gradio_client, as a script or another Space would drive it: only the documented
endpoints are listed, a run goes from start to a tuned answer, and on a public app a second client cannot stop
the first one's run."""

import time

import pytest
from browser_helpers import launch

DOCUMENTED = {"/start_run", "/run_status", "/stop_run", "/list_runs", "/generate", "/evaluate"}


@pytest.fixture(scope="module")
def public_app(tmp_path_factory):
    """`python app.py` in public mode, as a Space serves it."""
    runs = tmp_path_factory.mktemp("api") / "runs"
    runs.mkdir()
    proc, url = launch(runs, GRPO_STUDIO_PUBLIC="1")
    yield url, runs
    proc.terminate()
    proc.wait(60)


def test_a_run_through_the_api(public_app):
    from gradio_client import Client

    url, runs = public_app
    owner, other = Client(url, verbose=False), Client(url, verbose=False)
    assert set(owner.view_api(print_info=False, return_format="dict")["named_endpoints"]) == DOCUMENTED
    small = [
        "grpo.max_steps=200",
        "sft.steps=1",  # the preset's warm-up, one step of it
        "grpo.per_device_train_batch_size=4",
        "grpo.num_generations=4",
        "grpo.max_completion_length=8",
        "grpo.save_steps=1",
        "data.path=bundled",
        "data.max_samples=16",
        "grpo.max_prompt_length=256",
        "generation.max_new_tokens=16",
    ]
    with pytest.raises(Exception, match="server paths are not read"):  # the public app's rules hold here too
        owner.predict(preset="quick", overrides=["data.path=/etc/passwd"], api_name="/start_run")
    with pytest.raises(Exception, match="server paths are not read"):  # the warm-up's own examples too
        owner.predict(preset="quick", overrides=["sft.extra_data=/etc/passwd"], api_name="/start_run")
    started = owner.predict(preset="quick", overrides=small, api_name="/start_run")
    run_id = started["run_id"]
    assert (runs / run_id / "config.yaml").is_file() and started["status"] in ("loading", "training")
    deadline = time.time() + 300
    while not owner.predict(run_id=run_id, api_name="/run_status")["metrics"] and time.time() < deadline:
        time.sleep(1)  # the step is counted a moment before its metrics row arrives
    status = owner.predict(run_id="", api_name="/run_status")
    assert status["run_id"] == run_id and status["total"] == 200 and "reward" in status["metrics"]
    with pytest.raises(Exception, match="only they can stop it"):
        other.predict(api_name="/stop_run")
    assert owner.predict(api_name="/stop_run")["stopping"]
    while owner.predict(run_id=run_id, api_name="/run_status")["status"] == "stopping":
        time.sleep(1)
    assert owner.predict(run_id=run_id, api_name="/run_status")["status"] == "stopped"
    assert any(r["run_id"] == run_id and r["adapter"] for r in owner.predict(api_name="/list_runs"))
    answers = owner.predict(
        prompt="My cat sleeps all day and wakes me at 5 am for food.",
        run_id=run_id,
        max_new_tokens=12,
        api_name="/generate",
    )
    assert answers["base"] and answers["tuned"]
    report = owner.predict(run_id=run_id, prompts="documents", limit=2, api_name="/evaluate")
    assert report["prompts"] == 2 and {"title", "lead", "base", "tuned"} <= set(report)
    assert "rougeL" in report["tuned"]
