"""The supervised warm-up: what it learns from, how it batches, that its loss is the model's own, that a run
with it trains, saves and resumes, and that a dataset without answers is one sentence before anything runs."""

import json
import threading

import pytest
import torch
from safetensors.torch import load_file

from grpo_app.config import ConfigError
from grpo_app.runs import Run, read_jsonl
from grpo_app.settings import SFTSettings
from grpo_app.sft_warmup import (
    Example,
    answer_column,
    answer_loss,
    answer_nll,
    answer_sets,
    batches,
    build_examples,
    passes,
    warm_up,
    warm_up_examples,
)
from grpo_app.training import train
from grpo_app.ui import live

ANSWERS = ["Rent rose by half; should I move?", "My dog ate socks; is he fine?", "The bridge reopened after repair."]


def _with_answers(tmp_path, column="reference"):
    path = tmp_path / "answers.jsonl"
    rows = [{"prompt": f"Post number {i}: " + "words " * (3 + 5 * i), column: ANSWERS[i % 3]} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_answer_column_is_found_or_named():
    assert answer_column(["prompt", "reference"]) == "reference"
    assert answer_column(["prompt", "completion"]) == "completion"  # mlabonne/smoltldr's summaries
    assert answer_column(["prompt", "tldr", "mine"], "mine") == "mine"
    with pytest.raises(ConfigError, match=r"no reference, summary, tldr, reference_summary, completion column \(it"):
        answer_column(["prompt", "answer"])  # a numeric answer is not an answer to imitate
    with pytest.raises(ConfigError, match="'mine' is not a column"):
        answer_column(["prompt"], "mine")


def test_batches_cover_the_steps_and_pad_little():
    examples = [Example([1] * n, [2] * 3) for n in [5, 400, 7, 380, 6, 390, 8, 410] * 4]
    plan = list(batches(examples, 4, 20, seed=0))
    assert len(plan) == 20 and all(len(b) == 4 for b in plan)
    seen = [i for b in plan[:8] for i in b]
    assert sorted(seen) == list(range(32))  # one pass sees every example once
    for b in plan:  # short and long texts do not share a batch
        lengths = [len(examples[i]) for i in b]
        assert max(lengths) - min(lengths) < 50, lengths
    assert plan != list(batches(examples, 4, 20, seed=1))
    assert len(list(batches(examples, 4, 3, seed=0))) == 3  # fewer steps than a pass
    many = batches(examples, 4, 10**12, seed=0)  # drawn as needed: no plan of a trillion batches up front
    assert len(next(many)) == 4


def test_the_loss_is_the_models_own_cross_entropy_on_the_answer(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    batch = [Example([5, 6, 7, 8], [9, 10, tok.eos_token_id]), Example([11, 12], [13, tok.eos_token_id])]
    lean = answer_loss(model, batch, tok.pad_token_id)
    assert len(passes(batch, budget=8)) == 2  # 7 + 4 tokens: two passes, the same mean
    expected = []
    for e in batch:  # each example alone, labels only on the answer, as plain transformers computes it
        ids = torch.tensor([e.prompt + e.answer])
        labels = ids.clone()
        labels[0, : len(e.prompt)] = -100
        expected.append((model(input_ids=ids, labels=labels).loss, len(e.answer)))
    mean = sum(loss * n for loss, n in expected) / sum(n for _, n in expected)
    assert lean == pytest.approx(mean.item(), rel=1e-4)
    assert answer_loss(model, batch, tok.pad_token_id) == pytest.approx(
        answer_nll(model, batch, tok.pad_token_id).item() / 5, rel=1e-4
    )  # one pass of both, padded, gives the same


def test_passes_bound_the_padded_tokens_of_a_forward():
    batch = [Example([1] * n, [2]) for n in (700, 100, 120, 90, 300, 310)]
    cut = passes(batch, budget=1024)
    assert sorted(len(e) for p in cut for e in p) == sorted(len(e) for e in batch)
    assert all(len(p) * max(len(e) for e in p) <= 1024 or len(p) == 1 for p in cut)
    assert len(cut) == 3  # the short three together, the two of ~300, the 701-token text alone


def test_examples_end_with_the_end_of_turn_token(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": "A post"}]] * 2, "reference": ["It is short.", ""]}
    )
    examples = build_examples(data, "reference", tok)
    assert len(examples) == 1  # a row without an answer is left out
    assert examples[0].answer[-1] == tok.eos_token_id
    assert tok.decode(examples[0].answer[:-1]) == "It is short."
    assert tok.decode(examples[0].prompt).endswith("<|im_start|>assistant\n")  # the chat prompt, as GRPO sees it


def test_warm_up_lowers_the_loss_on_the_answers(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    data = Dataset.from_dict({"prompt": ["one", "two", "three", "four"], "reference": ANSWERS + ANSWERS[:1]})
    examples = build_examples(data, "reference", tok)
    before = answer_loss(model, examples, tok.pad_token_id)
    rows = []
    history = warm_up(
        model,
        tok,
        examples,
        SFTSettings(steps=30, learning_rate=1e-2, batch_size=4),
        0,
        lambda r, _: rows.append(r),
        threading.Event(),
    )
    after = answer_loss(model, examples, tok.pad_token_id)
    assert len(history) == 30 and rows == history
    assert after < before - 0.3, (before, after)  # a random 32-wide model: ~0.5 nats is what LoRA can move
    assert history[0]["learning_rate"] == 1e-2 and history[-1]["learning_rate"] < 1e-3  # decays linearly


def test_a_run_warms_up_saves_and_resumes_without_warming_up_again(tiny_cfg, tmp_path):
    tiny_cfg.data.path = str(_with_answers(tmp_path))
    tiny_cfg.sft.steps, tiny_cfg.sft.batch_size = 3, 4
    tiny_cfg.grpo.max_steps, tiny_cfg.grpo.save_steps, tiny_cfg.grpo.beta = 2, 1, 0.04
    logs = []

    class Lines:
        def __getattr__(self, name):
            return lambda *a, **k: logs.append((name, a))

    result = train(tiny_cfg, Lines())
    assert result.status == "finished", result.error
    run = Run(result.run_dir)
    sft = read_jsonl(run.path / "sft.jsonl")
    assert [r["step"] for r in sft] == [1, 2, 3] and all(r["loss"] > 0 for r in sft)
    assert any(n == "on_status" and "Warm-up on the reference answers: step 3/3" in a[1] for n, a in logs)
    assert any(n == "on_log" and a[0].startswith("Warm-up: 3 supervised steps") for n, a in logs)
    assert [a[0] for n, a in logs if n == "on_warmup"] == sft  # each step reaches the live loss chart as it lands
    assert [m["step"] for m in run.metrics()] == [1, 2]  # GRPO's steps counted apart from the warm-up's
    lora = load_file(run.adapter_dir / "adapter_model.safetensors")
    assert not (run.adapter_dir / "ref").exists()  # the KL's frozen copy of the warm-up (TRL's) is not saved
    assert any(v.abs().sum() > 0 for k, v in lora.items() if "lora_B" in k)
    # resumed from its last checkpoint (as a stopped run would be): it holds the warmed-up weights, no second warm-up
    (run.path / "status.json").write_text('{"status": "stopped"}')
    anchor = load_file(run.path / "checkpoints/checkpoint-2/ref/adapter_model.safetensors")
    cfg = run.config()
    cfg.grpo.max_steps = 3
    cfg.sft.extra_data = str(tmp_path / "moved-away.jsonl")  # not read: a resumed run does not warm up again
    logs.clear()
    assert train(cfg, Lines(), resume=True).status == "finished"
    assert len(read_jsonl(run.path / "sft.jsonl")) == 3
    # the KL's anchor is still the warmed-up adapter, not the base: TRL's frozen copy ("ref") is in each checkpoint,
    # and transformers' Trainer loads every adapter a checkpoint holds
    after = load_file(run.path / "checkpoints/checkpoint-3/ref/adapter_model.safetensors")
    assert anchor.keys() == after.keys() and all(torch.equal(anchor[k], after[k]) for k in anchor)
    assert any(v.abs().sum() > 0 for k, v in anchor.items() if "lora_B" in k)
    history = next(a for n, a in logs if n == "on_history")
    assert history[3] == sft and not any(n == "on_warmup" for n, _ in logs)  # the chart keeps the first session's
    assert live.run_snapshot(run).warmup == sft  # and so does the run reopened
    assert [m["step"] for m in run.metrics()] == [1, 2, 3]


def test_a_stop_during_the_warm_up_keeps_what_it_learned(tiny_cfg, tmp_path):
    tiny_cfg.data.path = str(_with_answers(tmp_path))
    tiny_cfg.sft.steps, tiny_cfg.sft.batch_size = 50, 4
    stop = threading.Event()

    class StopAfterTwo:
        def __getattr__(self, name):
            def call(*a, **k):
                if name == "on_status" and "step 2/50" in (a[1] if len(a) > 1 else ""):
                    stop.set()

            return call

    result = train(tiny_cfg, StopAfterTwo(), stop)
    assert result.status == "stopped"
    assert len(read_jsonl(result.run_dir / "sft.jsonl")) == 2
    assert (result.run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_a_dataset_without_answers_is_one_sentence_before_the_run_exists(tiny_cfg):
    tiny_cfg.sft.steps = 5
    with pytest.raises(ConfigError, match=r"^sft.steps needs reference answers: .* \(it has: prompt\)\. Add one"):
        train(tiny_cfg)
    tiny_cfg.reward.functions, tiny_cfg.reward.weights = ["length", "rouge"], [1, 100]
    with pytest.raises(
        ConfigError,
        match="sft.steps and the rouge reward need reference answers: .* Add one, or set "
        "sft.steps=0 and drop the rouge reward.",
    ):
        train(tiny_cfg)
    tiny_cfg.sft.steps = 0
    with pytest.raises(ConfigError, match="^the rouge reward needs reference answers"):
        train(tiny_cfg)
    assert not Run(tiny_cfg.run.dir).path.exists()
    tiny_cfg.reward.weights = [1, 0]  # TRL still scores a reward of weight 0
    with pytest.raises(ConfigError, match="^the rouge reward needs reference answers"):
        train(tiny_cfg)


def test_extra_examples_join_the_warm_up_only(tiny_cfg, tmp_path):
    """sft.extra_data: rows the warm-up learns from beside the training data's, never GRPO's prompts; the
    training data may then have no answers at all."""
    extra = tmp_path / "extra.jsonl"
    rows = [{"text": f"Extra {i}", "completion": ANSWERS[i % 3]} for i in range(5)]  # a prompt/completion file
    extra.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tiny_cfg.sft.steps, tiny_cfg.sft.batch_size, tiny_cfg.sft.extra_data = 2, 4, str(extra)
    tiny_cfg.grpo.max_steps = 1
    logs = []

    class Lines:
        def __getattr__(self, name):
            return lambda *a, **k: logs.append((name, a))

    result = train(tiny_cfg, Lines())  # the training data (prompts only) has no answers: the extra rows suffice
    assert result.status == "finished", result.error
    assert ("on_log", ("Warm-up examples: 0 from the training data, 5 from sft.extra_data.",)) in logs
    assert any(n == "on_status" and "Warm-up on the reference answers: step 2/2" in a[1] for n, a in logs)
    sampled = [c["prompt"] for c in Run(result.run_dir).completions()]
    assert sampled and not any("Extra" in p for p in sampled)  # GRPO samples the training prompts only
    tiny_cfg.data.path = str(_with_answers(tmp_path))  # both: the training data's 12 answers, then the 5 extra
    tiny_cfg.run.dir = str(tmp_path / "second")
    logs.clear()
    assert train(tiny_cfg, Lines()).status == "finished"
    assert ("on_log", ("Warm-up examples: 12 from the training data, 5 from sft.extra_data.",)) in logs


def test_bad_extra_examples_are_one_sentence_before_the_run_exists(tiny_cfg, tmp_path):
    tiny_cfg.sft.steps, tiny_cfg.sft.extra_data = 2, str(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match=r"^sft.extra_data: Dataset file not found: .*missing.jsonl$"):
        train(tiny_cfg)
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"prompt": "no answer here"}\n')
    tiny_cfg.sft.extra_data = str(plain)
    with pytest.raises(
        ConfigError,
        match=r"^sft.extra_data \(.*plain.jsonl\) has no answers to learn from: it needs a reference, summary, tldr, "
        r"reference_summary, completion column \(it has: prompt\)\. Add one, or clear sft.extra_data\.$",
    ):
        train(tiny_cfg)
    assert not Run(tiny_cfg.run.dir).path.exists()


def test_both_sets_of_answers_are_learned_from_and_a_named_column_holds_for_both(tiny_model_dir):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from grpo_app.config import Config

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    own = Dataset.from_dict({"prompt": ["a", "b"], "summary": ["Own one.", "Own two."], "mine": ["", "Mine."]})
    extra = Dataset.from_dict(
        {
            "prompt": ["c", "d", "e"],
            "summary": ["X.", "Y.", ""],
            "mine": ["Extra one.", "Extra two.", "Extra three, a longer one."],
        }
    )
    cfg = Config()
    cfg.sft.extra_data = "extra.jsonl"
    parts = warm_up_examples(answer_sets(cfg, own, extra), tok)
    shown = [[tok.decode(e.answer[:-1]) for e in part] for part in parts]
    assert shown == [["Own one.", "Own two."], ["X.", "Y."]]  # auto: each set's summaries, empty ones left out
    cfg.sft.column = "mine"  # named: that column in both, never another one of the training data
    parts = warm_up_examples(answer_sets(cfg, own, extra), tok)
    assert [tok.decode(e.answer[:-1]) for part in parts for e in part] == [
        "Mine.",
        "Extra one.",
        "Extra two.",
        "Extra three, a longer one.",
    ]
