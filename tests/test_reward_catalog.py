"""The reward catalogue (#21.2): each reward on real answers, good and lazy, and through a real training run."""

import json
import math

import pytest

from grpo_app.config import Config, ConfigError
from grpo_app.rewards import BUILTIN_REWARDS, build_rewards, score
from grpo_app.runs import Run
from grpo_app.settings import RewardSettings
from grpo_app.training import train


def _one(name: str, completions: list, settings: RewardSettings | None = None, max_len: int = 64, **columns):
    settings = settings or RewardSettings()
    settings.functions, settings.weights, settings.monitor = [name], [1.0], []
    (func,), _ = build_rewards(settings, max_len)
    return func(
        prompts=["Tom has 3 apples and buys 5 more. How many apples?"] * len(completions),
        completions=completions,
        **columns,
    )


def test_every_catalogue_name_is_listed_with_a_description():
    for name in ("think_format", "accuracy", "soft_overlong", "cosine", "repetition", "exact_match", "numeric_match",
                 "regex", "json", "json_fields", "contains", "avoids", "reward_model", "rouge"):  # fmt: skip
        assert len(BUILTIN_REWARDS[name]) > 20


def test_the_catalogue_says_what_each_reward_reads(capsys):
    """One table for the page and `rewards --list`: a row per reward, naming settings that exist."""
    from dataclasses import fields

    from grpo_app.cli import main
    from grpo_app.rewards import REWARD_INPUTS, catalogue_markdown
    from grpo_app.settings import GRPOSettings

    assert set(REWARD_INPUTS) == set(BUILTIN_REWARDS)
    known = {f"reward.{f.name}" for f in fields(RewardSettings)} | {f"grpo.{f.name}" for f in fields(GRPOSettings)}
    for name, inputs in REWARD_INPUTS.items():
        for item in inputs:
            named = item.removeprefix("column ").split(",")[0]
            assert named in known or named == "the prompt", (name, item)
    table = catalogue_markdown()
    assert len(table.splitlines()) == 2 + len(BUILTIN_REWARDS)
    assert "| `length` |" in table and "`reward.ideal_length`" in table and "\\|ideal - length\\|" in table
    assert main(["rewards", "--list"]) == 0
    assert capsys.readouterr().out.strip() == table


def test_answers_are_checked_against_the_answer_column():
    answers = [
        "<think>3 plus 5 is 8.</think> <answer>8</answer>",
        "He has 8 apples.",
        "8 apples, or maybe 9",  # the last number counts: a list of guesses does not pass
        "Tom has 3 apples and buys 5 more.",  # the prompt copied: its last number is 5
        "<answer>eight</answer>",
    ]
    assert _one("numeric_match", answers, answer=["8"] * 5) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert _one("exact_match", ["<answer> Paris. </answer>", "paris", "Paris, France"], answer=["Paris"] * 3) == [
        1.0,
        1.0,
        0.0,
    ]
    with pytest.raises(ConfigError, match="needs the dataset column 'answer'.*other columns here: label"):
        _one("numeric_match", ["8"], label=["x"])


def test_format_and_json_rewards():
    good, lazy = "<think>3 + 5 = 8</think>\n<answer>8</answer>", "<think></think><answer></answer>"
    assert _one("regex", [good, "8", lazy, "<answer>8</answer>"]) == [1.0, 0.0, 0.0, 0.0]
    assert _one("think_format", [[{"content": good}], good, "8"]) == [1.0, 1.0, 0.0]  # TRL's, chat or plain text
    settings = RewardSettings(json_keys="name, city, age")
    person = '{"name": "Ana Silva", "city": "Porto", "age": 41}'
    extra = person.replace("}", ', "job": "nurse"}')  # a key it was not asked for
    outputs = [person, f"```json\n{person}\n```", '{"name": "Ana Silva"}', "[1, 2]", "name: Ana Silva", "{}", extra]
    assert _one("json", outputs, settings) == [1.0, 1.0, 0.5, 0.0, 0.0, 0.5, 0.5]
    schema = '{"type": "object", "required": ["name", "age"], "properties": {"age": {"type": "integer"}}}'
    typed = RewardSettings(json_schema=schema)
    assert _one("json", [person, person.replace("41", '"41"'), '{"name": "x"}', "nope"], typed) == [1.0, 0.5, 0.5, 0.0]
    with pytest.raises(ConfigError, match="reward.json_schema is not a valid JSON schema"):
        _one("json", ["{}"], RewardSettings(json_schema='{"type": "nothing"}'))
    expected = [person] * 3
    fields = [
        '{"name": "ana silva", "city": "Porto", "age": 41}',
        '{"name": "Ana Silva", "city": "Lyon", "age": "41"}',
        "x",
    ]
    assert _one("json_fields", fields, answer=expected) == [1.0, pytest.approx(2 / 3), 0.0]


def test_words_and_lengths():
    columns = {"keywords": [["apples", "eight"], "apples, eight"]}
    said = ["Eight apples in all.", "Some apples."]
    assert _one("contains", said, **columns) == [1.0, 0.5]
    assert _one("avoids", said, **columns) == [-1.0, -0.5]
    words = RewardSettings(ideal_length=3, length_unit="words")
    assert _one("length", ["one two three", "one"], words) == [0, -2]
    tokens = RewardSettings(ideal_length=4, length_unit="tokens")
    assert _one("length", ["a", "b"], tokens, completion_ids=[[1, 2, 3, 4], [1]]) == [0, -3]
    with pytest.raises(ConfigError, match="chars, words or tokens"):
        _one("length", ["a"], RewardSettings(length_unit="lines"))


def test_rouge_pays_for_what_the_reference_says():
    """The reference's content scores; the title copied scores less than a summary that carries the question."""
    reference = "My landlord kept $650 of my $1,200 deposit for paint and carpet; should I go to small claims?"
    answers = [
        "My landlord kept $650 of my deposit for paint and carpet; is small claims worth it?",  # a summary
        "Landlord keeping $650 of my deposit for paint and an ancient carpet",  # the title
        "I am upset.",  # vague
        "",
    ]
    scores = _one("rouge", answers, reference=[reference] * 4)
    assert scores[0] > 0.6 > scores[1] > 0.3 > scores[2] >= scores[3] == 0.0
    # the answer column first when it names a column the data has, then the usual reference columns
    assert _one("rouge", ["a b c"], RewardSettings(answer_column="gold"), gold=["a b c"], reference=["x"]) == [1.0]
    assert _one("rouge", ["a b c"], completion=["a b c"]) == [1.0]
    # no reference at all (new prompts in `generate` or the Compare tab): does not apply; `train` refuses it first
    assert _one("rouge", ["a b c"], label=["x"]) == [None]


def test_trl_rewards_get_what_trl_gives_them():
    ids = [[1, 2, 3, 1, 2, 3, 1, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]]
    repetition = _one("repetition", ["x", "y"], completion_ids=ids)
    assert repetition[0] < -0.5 and repetition[1] == 0.0
    overlong = _one(
        "soft_overlong", ["x", "y"], RewardSettings(overlong_buffer=4), max_len=10, completion_ids=[[1] * 5, [1] * 9]
    )
    assert overlong[0] == 0.0 and -1.0 < overlong[1] < 0.0
    assert _one("accuracy", ["The answer is $\\boxed{8}$.", "$\\boxed{9}$"], answer=["8", "8"]) == [1.0, 0.0]
    cosine = _one("cosine", ["$\\boxed{8}$", "$\\boxed{9}$"], answer=["8", "8"], completion_ids=[[1] * 5, [1] * 5])
    assert cosine[0] > 0.5 and cosine[1] < -0.5
    with pytest.raises(ConfigError, match="token ids"):
        _one("repetition", ["x"])


def test_a_reward_model_scores_completions(tmp_path, tokenizer_dir):
    """A tiny random sequence classifier saved locally stands in for a Hub reward model (offline)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_labels=1, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    settings = RewardSettings(reward_model=str(tmp_path / "rm"))
    scores = _one("reward_model", ["Eight apples.", "A completely different and much longer answer here."], settings)
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores) and scores[0] != scores[1]
    with pytest.raises(ConfigError, match="Could not load the reward model"):
        _one("reward_model", ["x"], RewardSettings(reward_model=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="needs reward.reward_model"):
        _one("reward_model", ["x"])


def test_catalogue_rewards_train_with_trl(tiny_cfg, tmp_path):
    """numeric_match reads the answer column, repetition the token ids TRL passes, regex the text: one real run."""
    rows = [{"prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(8)]
    (tmp_path / "sums.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    tiny_cfg.data.path, tiny_cfg.data.chat_format = str(tmp_path / "sums.jsonl"), False
    r = tiny_cfg.reward
    r.functions, r.weights, r.monitor = ["numeric_match", "regex", "repetition", "length"], [1, 1, 1, 0.01], ["json"]
    result = train(tiny_cfg)
    assert result.status == "finished", result.error
    row = Run(result.run_dir).metrics()[0]
    for name in ("numeric_match", "regex", "repetition", "json"):
        assert f"rewards/{name}/mean" in row, name


def test_score_counts_tokens_with_a_tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    cfg = Config()
    cfg.reward.functions, cfg.reward.weights, cfg.reward.monitor = ["repetition"], [1.0], []
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    scores = score(cfg.reward, ["p", "p"], ["the cat the cat the cat the cat", "a short answer here"], tok)
    assert scores["repetition"][0] < scores["repetition"][1] == 0.0


def test_a_task_preset_is_scored_on_its_own_held_out_split(tiny_model_dir):
    """eval for `reason` answers the 40 held-out word problems with their answer column; its figures are the
    task's rewards (format, accuracy), not the summary checks."""
    from grpo_app.config import preset
    from grpo_app.evaluation import compare_batch, default_sets, figures_markdown, summarize
    from grpo_app.inference.engine import InferenceModels

    cfg = preset("reason")
    cfg.model.name, cfg.generation.max_new_tokens = str(tiny_model_dir), 8
    sets = default_sets(cfg.data, limit=3)
    assert list(sets) == ["reason"] and sets["reason"].columns["answer"][0].isdigit()
    assert list(default_sets(preset("quick").data, limit=1)) == ["posts", "documents", "plain"]
    df = compare_batch(InferenceModels(cfg), sets["reason"], cfg.generation, None, cfg.reward)
    summary = summarize(df, cfg.reward.ideal_length)
    assert {"reward/regex", "reward/numeric_match", "reward/soft_overlong"} <= set(summary["base"])
    table = figures_markdown(summary, "reason", task=True)
    assert "reward: numeric_match" in table and "summaries" not in table and "ROUGE" not in table
