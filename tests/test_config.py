import pytest

from grpo_app.checks import validate
from grpo_app.config import Config, ConfigError, load_config, parse_set, preset, set_value


def test_yaml_round_trip():
    cfg = preset("quick")
    cfg.grpo.extra["epsilon_high"] = 0.28
    cfg.reward.functions = ["length", "no_repeat"]
    again = Config.from_yaml(cfg.to_yaml())
    assert again == cfg


def test_recipe_preset_is_the_reference_recipe():
    c = preset("recipe")
    assert c.model.name == "HuggingFaceTB/SmolLM-135M-Instruct"
    assert (c.data.path, c.data.prompt_column) == ("mlabonne/smoltldr", "prompt")
    assert (c.lora.r, c.lora.lora_alpha, c.lora.target_modules) == (16, 32, "all-linear")
    g = c.grpo
    assert (g.learning_rate, g.per_device_train_batch_size, g.gradient_accumulation_steps) == (2e-5, 8, 2)
    assert (g.max_prompt_length, g.max_completion_length, g.num_generations) == (512, 96, 8)
    assert (g.optim, g.bf16, g.num_train_epochs) == ("adamw_8bit", True, 1)
    assert c.reward.functions == ["length"] and c.reward.ideal_length == 50
    gen = c.generation
    assert (gen.max_new_tokens, gen.temperature, gen.min_p, gen.do_sample) == (256, 0.5, 0.1, True)
    validate(c)
    validate(preset("quick"))


def test_set_values_are_typed_and_checked():
    cfg = load_config(
        "quick",
        overrides=parse_set(
            [
                "grpo.learning_rate=1e-4",
                "lora.r=8",
                "grpo.bf16=false",
                "reward.functions=length,on_topic",
                "run.dir=out",
                "grpo.epsilon_high=0.3",
            ]
        ),
    )
    assert cfg.grpo.learning_rate == 1e-4 and cfg.lora.r == 8 and cfg.grpo.bf16 is False
    assert cfg.reward.functions == ["length", "on_topic"] and cfg.run.dir == "out"
    assert cfg.grpo.extra == {"epsilon_high": 0.3}
    with pytest.raises(ConfigError, match="lora.r: expected int"):
        set_value(cfg, "lora.r", "many")
    with pytest.raises(ConfigError, match="Unknown setting 'grpo.not_a_field'"):
        set_value(cfg, "grpo.not_a_field", 1)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set(["lora.r"])


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("grpo.num_generations", 1, "at least 2"),
        ("grpo.num_generations", 3, "divisible by grpo.num_generations"),
        ("grpo.learning_rate", 0, "learning_rate must be positive"),
        ("grpo.max_steps", 0, "max_steps"),
        ("reward.functions", ["nope"], "Unknown reward"),
        ("reward.weights", [1, 2], "reward.weights has 2 values"),
        ("data.overlong", "cut", "truncate"),
    ],
)
def test_validation_messages(key, value, message):
    cfg = preset("quick")
    set_value(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_config_file_overrides_only_what_it_names(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("grpo:\n  max_steps: 7\nmodel:\n  name: my/model\n")
    cfg = load_config("recipe", str(f), parse_set(["grpo.max_steps=9"]))
    assert cfg.grpo.max_steps == 9 and cfg.model.name == "my/model" and cfg.grpo.learning_rate == 2e-5
    f.write_text("grpo: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(None, str(f))
    with pytest.raises(ConfigError, match="not found"):
        load_config(None, str(tmp_path / "missing.yaml"))
