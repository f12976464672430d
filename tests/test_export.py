"""Merge, export with a model card, and the push paths that need no network (offline, refused, no token)."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import torch

from grpo_app.export import ExportError, export_run, push_folder
from grpo_app.runs import Run
from grpo_app.training import train

REPO = Path(__file__).resolve().parent.parent
CANARY = "hf_CANARYtokenDoNotLeak0123456789"


@pytest.fixture
def trained_run(tiny_cfg):
    tiny_cfg.grpo.learning_rate = 5e-2  # move the tiny model visibly, so merged != base
    tiny_cfg.model.dtype = "float32"  # the merge is then exact up to float rounding (bf16 runs merge in bf16)
    result = train(tiny_cfg)
    assert result.status == "finished", result.error
    return result.run_dir


def _greedy(model, tok, text="Summarize: the tap drips and I fixed it with a washer."):
    ids = tok(text, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id)
    return out[0, ids["input_ids"].shape[1] :].tolist()


def test_merged_export_loads_plainly_and_matches_base_plus_adapter(trained_run, tiny_model_dir):
    from huggingface_hub import ModelCard
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, pipeline

    folder = export_run(trained_run, merge=True)
    assert folder == trained_run / "merged"
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer_config.json",
        "generation_config.json",
        "README.md",
        "reward.png",
    } <= {p.name for p in folder.iterdir()}
    assert not list(folder.glob("adapter_*"))  # plain weights, no PEFT needed
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.chat_template  # the chat template travels with the model
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, trained_run / "adapter")
    assert _greedy(merged, tok) == _greedy(tuned, tok)
    gen = GenerationConfig.from_pretrained(folder)
    g = Run(trained_run).config().generation  # the run's settings: the recipe's, with the tests' 8 tokens
    assert (gen.max_new_tokens, gen.temperature, gen.min_p, gen.do_sample) == (g.max_new_tokens, 0.5, 0.1, True)
    out = pipeline("text-generation", model=str(folder))(
        [{"role": "user", "content": "Summarize: hello"}], max_new_tokens=4
    )
    assert out[0]["generated_text"][-1]["role"] == "assistant"
    card = ModelCard.load(folder / "README.md")
    assert {"grpo", "trl"} <= set(card.data.tags) and card.data.pipeline_tag == "text-generation"
    assert card.data.library_name == "transformers"
    assert "`length` x 1" in card.text and "learning_rate" in card.text and "reward.png" in card.text


def test_adapter_export_card_and_refusals(trained_run, tmp_path):
    from huggingface_hub import ModelCard

    folder = export_run(trained_run, out=tmp_path / "adapter-export")
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {p.name for p in folder.iterdir()}
    assert ModelCard.load(folder / "README.md").data.library_name == "peft"
    assert "warm-up" not in ModelCard.load(folder / "README.md").text  # this run had none
    from grpo_app.export import card
    from grpo_app.runs import Run

    cfg = Run(trained_run).config()  # with a warm-up on its data and a Hub dataset beside it: the card says so
    cfg.sft.steps, cfg.sft.extra_data = 40, "someone/labelled-posts"
    warmed = card(Run(trained_run), cfg, merged=False, plot=False)
    assert "supervised warm-up: 40 steps on the reference answers of" in warmed.text
    assert "`someone/labelled-posts`" in warmed.text and warmed.data.datasets == ["someone/labelled-posts"]
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "precious.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an earlier export"):
        export_run(trained_run, out=tmp_path / "taken")
    assert (tmp_path / "taken" / "precious.txt").read_text() == "keep me"
    with pytest.raises(ExportError, match="no saved adapter"):
        export_run(tmp_path)
    with pytest.raises(ExportError, match="not a repo id"):
        push_folder(folder, "no-slash", token=CANARY)
    env_token = os.environ.pop("HF_TOKEN", None)
    try:
        with pytest.raises(ExportError, match="No Hugging Face token"):
            push_folder(folder, "me/model")
    finally:
        if env_token is not None:
            os.environ["HF_TOKEN"] = env_token
    with pytest.raises(ExportError, match="Offline") as e:  # HF_HUB_OFFLINE=1 in the tests
        push_folder(folder, "me/model", token=CANARY)
    assert CANARY not in str(e.value) and "kept" in str(e.value)


class _Refuse(BaseHTTPRequestHandler):
    """A local stand-in for the Hub that refuses every token, as the Hub does for a bad one."""

    def _refuse(self):
        body = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, *args):
        pass


def test_refused_push_from_the_cli_leaks_no_token(trained_run):
    server = HTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_TOKEN": CANARY,
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
    }
    r = subprocess.run(
        [sys.executable, "-m", "grpo_app", "export", str(trained_run), "--push", "me/model"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    server.shutdown()
    assert r.returncode == 2 and "refused the token" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert (trained_run / "export" / "README.md").is_file()  # the export is kept
    assert CANARY not in r.stdout + r.stderr
    for path in trained_run.rglob("*"):  # nothing the run or the push attempt wrote holds the token
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
