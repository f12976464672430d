"""Shared fixtures: a tiny random Llama (fast), a small prompt file, and a tiny training config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from grpo_app.config import Config

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never wait on the network

POSTS = [
    "My neighbour mows his lawn at six every Saturday morning and the noise wakes the whole house. "
    "How do I bring it up without starting a feud?",
    "I finally fixed the dripping kitchen tap myself after a plumber quoted a fortune. It took a washer "
    "and a YouTube video and about an hour.",
    "Our team switched to a four-day week as a trial. Productivity is the same, but meetings got shorter "
    "and everyone seems happier.",
    "I adopted a shy rescue cat who hides under the bed all day. After three weeks she now sits on the "
    "windowsill when I am home.",
]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The real SmolLM2 tokenizer (from the offline package), saved alone."""
    from grpo_app.models import load_tokenizer, resolve_model

    path = tmp_path_factory.mktemp("tok")
    load_tokenizer(resolve_model("default")).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer: trains in seconds on a CPU."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def posts_file(tmp_path) -> Path:
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in POSTS * 4))
    return path


@pytest.fixture
def tiny_cfg(tmp_path, tiny_model_dir, posts_file) -> Config:
    cfg = Config()
    cfg.model.name = str(tiny_model_dir)
    cfg.data.path = str(posts_file)
    cfg.data.instruction = "Summarize:"
    cfg.data.chat_format = True
    g = cfg.grpo
    g.per_device_train_batch_size, g.gradient_accumulation_steps, g.num_generations = 4, 1, 4
    g.max_completion_length, g.max_steps, g.learning_rate = 8, 2, 1e-2
    g.gradient_checkpointing = False
    cfg.generation.max_new_tokens = 8
    cfg.run.dir = str(tmp_path / "run")
    return cfg


# --- the browser tests (tests/test_browser*.py; helpers in browser_helpers.py) ---
@pytest.fixture(scope="module")
def app_url(tmp_path_factory, browser):
    """`python app.py` on a runs folder of its own, for the tests of one module."""
    runs = tmp_path_factory.mktemp("runs")
    from browser_helpers import launch

    proc, url = launch(runs)
    yield url, runs
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium (Playwright's own download fails offline)."""
    from browser_helpers import CHROMIUM

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture(autouse=True)
def _close_pages(request):
    """Each test's pages close with it: an open page polls the live view every 1.5 s and would tax the next."""
    yield
    if "browser" in request.fixturenames:
        b = request.getfixturevalue("browser")
        for context in b.contexts:
            for page in context.pages:
                page.close()
