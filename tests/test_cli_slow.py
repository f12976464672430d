"""End to end on the real offline SmolLM2-135M-Instruct: the CLI as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


REPO = Path(__file__).resolve().parent.parent


def cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "grpo_app", *args], cwd=cwd, capture_output=True, text=True, timeout=900, env=env
    )


def test_cli_rejects_bad_input_without_traceback(tmp_path):
    r = cli("train", "--set", "grpo.num_generations=3", cwd=tmp_path)
    assert r.returncode == 2 and "divisible" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--set", "data.path=missing.jsonl", "grpo.max_steps=1", cwd=tmp_path)
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()  # checked before loading a model or creating a run folder
    r = cli("config", "--preset", "recipe", cwd=tmp_path)
    assert r.returncode == 0 and "mlabonne/smoltldr" in r.stdout


def test_cli_output_cut_short_by_its_reader_is_not_an_error(tmp_path):
    """`rewards --list | head -1`: the reader leaves after one line; the CLI stops quietly, as a shell tool does."""
    r = subprocess.run(
        f"{sys.executable} -m grpo_app rewards --list | head -1", shell=True, cwd=REPO, capture_output=True, text=True
    )
    assert r.stdout.startswith("| reward |") and r.stderr == ""


def test_cli_train_then_generate_with_and_without_adapter(tmp_path):
    prompts = tmp_path / "new_posts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"text": t}) + "\n"
            for t in [
                "The bakery on my street closed after forty years. The owner says rent tripled and nobody took over.",
                "I ran my first half marathon on Sunday. I walked twice, but I finished in two hours twenty.",
            ]
        )
    )
    r = cli(
        "train",
        "--preset",
        "quick",
        "--set",
        "grpo.max_steps=2",
        "sft.steps=2",  # the preset's warm-up on the real model, two steps of it
        "grpo.per_device_train_batch_size=4",
        "grpo.num_generations=4",
        "grpo.max_completion_length=16",
        "data.max_samples=8",
        "run.dir=out",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mean reward: first" in r.stdout and "Warm-up: 2 supervised steps" in r.stderr
    out = tmp_path / "out"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    for extra in ([], ["--adapter", "out/adapter"]):
        r = cli(
            "generate",
            *extra,
            "--prompts",
            str(prompts),
            "--out",
            "gen.jsonl",
            "--set",
            "generation.max_new_tokens=24",
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        rows = [json.loads(line) for line in (tmp_path / "gen.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(row["completion"] for row in rows)
        assert "length" in rows[0]["rewards"] and "total" in rows[0]["rewards"]
    # eval: base vs tuned on the bundled held-out posts, long documents and plain texts, a JSON report in the run folder
    r = cli("eval", "--adapter", "out/adapter", "--limit", "2", "--set", "generation.max_new_tokens=24", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "answers that are summaries" in r.stdout and "documents (2 prompts)" in r.stdout
    report = json.loads((out / "eval.json").read_text())
    assert set(report["sets"]) == {"posts", "documents", "plain"}
    for result in report["sets"].values():
        assert result["prompts"] == 2 and len(result["answers"]) == 2
        for side in ("base", "tuned"):
            assert {
                "length_error",
                "summary_rate",
                "grounding",
                "repetition",
                "degenerate_rate",
                "reward/length",
            } <= set(result[side])
        assert {"base_answer", "tuned_answer", "tuned_is_summary", "tuned_why_not"} <= set(result["answers"][0])
    # `make learning`'s table of that report: two GRPO steps are no summariser, and each set says what it missed
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "learning.py"), "--report", str(out)], capture_output=True, text=True
    )
    row = next(line for line in r.stdout.splitlines() if line.startswith("| out |"))
    assert r.returncode == 1 and row.count(" (") == 3 and "PASS" not in row, r.stdout + r.stderr
    # export --merge on the real model: plain transformers loads it and picks the same greedy tokens
    r = cli("export", "out", "--merge", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    _merged_matches_adapter(out / "merged", out / "adapter")


def _merged_matches_adapter(merged_dir, adapter_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo_app.models import resolve_model

    tok = AutoTokenizer.from_pretrained(merged_dir)
    text = tok.apply_chat_template(
        [
            {
                "role": "user",
                "content": "Summarize this text in one sentence.\n\nThe "
                "bakery on my street closed after forty years because the rent tripled.",
            }
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tok(text, return_tensors="pt", add_special_tokens=False)

    def greedy(model):
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
        return out[0, ids["input_ids"].shape[1] :].tolist()

    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(resolve_model("default"), dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, adapter_dir)
    picks = greedy(tuned)
    # the export is saved in the run's dtype (bf16): teacher-forced on the adapter's greedy answer, the merged
    # model must pick the same tokens but at near-ties, and give them nearly the same log-probabilities
    seq = torch.cat([ids["input_ids"], torch.tensor([picks])], 1)
    start = ids["input_ids"].shape[1] - 1
    with torch.inference_mode():
        a, b = (m(input_ids=seq).logits[0, start:-1].float().log_softmax(-1) for m in (merged, tuned))
    chosen = torch.tensor(picks)[:, None]
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.85
    assert (a.gather(1, chosen) - b.gather(1, chosen)).abs().max() < 0.5
    assert greedy(merged)[:4] == picks[:4]
