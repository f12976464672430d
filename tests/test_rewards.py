import pytest

from grpo_app.config import ConfigError
from grpo_app.prompts import completion_text
from grpo_app.rewards import build_rewards, length_reward, load_custom, score
from grpo_app.settings import RewardSettings


def test_length_reward_plain_and_chat_agree():
    f = length_reward(50)
    text = "x" * 30
    chat = [[{"role": "assistant", "content": text}]]
    assert f(prompts=["p"], completions=[text]) == [-20]
    # In chat format len(completion) would be 1: the reward must read the message text.
    assert f(prompts=[[{"role": "user", "content": "p"}]], completions=chat) == [-20]
    assert f(prompts=["p"], completions=["y" * 50]) == [0]


def test_completion_text_shapes():
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    assert completion_text({"content": "x"}) == "x"


def test_builtins_and_weights():
    settings = RewardSettings(
        functions=["length", "one_sentence", "on_topic", "no_repeat"],
        weights=[1.0, 2.0, 3.0, 4.0],
        ideal_length=10,
        monitor=[],
    )
    funcs, weights = build_rewards(settings)
    assert [f.__name__ for f in funcs] == ["length", "one_sentence", "on_topic", "no_repeat"]  # on_topic: old name
    assert weights == [1.0, 2.0, 3.0, 4.0]
    prompts = ["The garden needs water and the tomatoes are ripe."]
    good = "Tomatoes ripe."
    s = score(settings, prompts, [good])
    assert s["one_sentence"] == [1.0] and s["on_topic"] == [1.0] and s["no_repeat"] == [0.0]
    assert s["total"] == [s["length"][0] + 2.0 + 3.0]
    looped = score(settings, prompts, ["the cat the cat the cat the cat\nand more"])
    assert looped["one_sentence"] == [0.0] and looped["no_repeat"][0] == -0.5 and looped["on_topic"] == [0.0]


def test_custom_reward_from_file(tmp_path):
    f = tmp_path / "my_rewards.py"
    f.write_text("def shout(prompts, completions, **kw):\n    return [float(c.isupper()) for c in completions]\n")
    func = load_custom(f"{f}:shout")
    assert func(prompts=["a", "b"], completions=["HI", "hi"]) == [1.0, 0.0]
    with pytest.raises(ConfigError, match="Could not load reward"):
        load_custom(f"{f}:missing")


def test_monitored_rewards_are_logged_with_weight_zero():
    settings = RewardSettings(
        functions=["length", "grounding"],
        weights=[1.0, 10.0],
        monitor=["grounding", "summary", "no_repeat"],
        ideal_length=20,
    )
    funcs, weights = build_rewards(settings)
    # a monitor already optimised is not added twice; the others come last with weight 0
    assert [f.__name__ for f in funcs] == ["length", "grounding", "summary", "no_repeat"]
    assert weights == [1.0, 10.0, 0.0, 0.0]
    prompts = ["The library on Elm Street will close on Sundays from March because of budget cuts."]
    s = score(settings, prompts * 2, ["The Elm Street library closes Sundays from March.", "Awesome!"])
    assert s["summary"] == [1.0, 0.0]
    assert s["total"] == [s["length"][i] + 10.0 * s["grounding"][i] for i in range(2)]  # monitors add nothing
