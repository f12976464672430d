import json

import pytest

from grpo_app.inference.engine import InferenceModels
from grpo_app.settings import GenerationSettings
from grpo_app.training import train

PROMPT = [{"role": "user", "content": "Summarize: the tap drips and I fixed it with a washer."}]


@pytest.fixture
def trained(tiny_cfg):
    tiny_cfg.grpo.learning_rate = 5e-2  # move the tiny model's outputs visibly in two steps
    result = train(tiny_cfg)
    assert result.status == "finished", result.error
    return tiny_cfg, str(result.run_dir / "adapter")


def test_same_seed_same_text_and_stream_matches(trained):
    cfg, adapter = trained
    models = InferenceModels(cfg)
    settings = GenerationSettings(max_new_tokens=12, seed=3)
    a = models.generate([PROMPT], settings)[0]
    b = models.generate([PROMPT], settings)[0]
    assert a.text == b.text and a.tokens > 0
    streamed = list(models.stream(PROMPT, settings))
    assert len(streamed) >= 2 and streamed[-1].text == a.text
    assert all(streamed[i].text.startswith(streamed[i - 1].text.strip()[:1]) for i in range(1, len(streamed)))
    tuned = models.generate([PROMPT], settings, adapter=adapter)[0]
    tuned_streamed = list(models.stream(PROMPT, settings, adapter=adapter))[-1]
    assert tuned.text == tuned_streamed.text


def test_base_and_adapter_differ_and_base_is_restored(trained):
    cfg, adapter = trained
    models = InferenceModels(cfg)
    # sampled with one seed: a tiny random model's greedy answer is often newlines only, for either side
    settings = GenerationSettings(max_new_tokens=12, temperature=1.0, min_p=0.0, seed=1)
    prompts = [PROMPT, [{"role": "user", "content": "Summarize: my cat hides under the bed."}]]
    base = [g.text for g in models.generate(prompts, settings)]
    tuned = [g.text for g in models.generate(prompts, settings, adapter=adapter)]
    assert base != tuned
    assert [g.text for g in models.generate(prompts, settings)] == base  # adapter off again = the base


def test_switching_adapters_keeps_one_base_and_bounded_memory(trained, tiny_cfg):
    cfg, adapter = trained
    models = InferenceModels(cfg, keep=2)
    base_id = id(models.base)
    settings = GenerationSettings(max_new_tokens=4, do_sample=False)
    copies = []
    for i in range(4):
        import shutil
        from pathlib import Path

        dst = Path(tiny_cfg.run.dir).parent / f"copy{i}"
        shutil.copytree(adapter, dst)
        copies.append(str(dst))
    for path in copies * 2:
        models.generate([PROMPT], settings, adapter=path)
    assert sum(k is not None for k in models.decoders) == 2  # merged copies for the 2 newest adapters, + the base
    assert models.model is models.base and id(models.base) == base_id  # the base itself never wrapped


def test_the_fast_engine_answers_as_generate_does(trained):
    """Greedy in float32: the decoder over merged copies gives transformers' `generate` answers (base and PEFT
    adapter), for a batch of prompts of different lengths."""
    from grpo_app.inference import engine
    from grpo_app.inference.decoder import prefill_chunks
    from grpo_app.inference.engine import generate
    from grpo_app.prompts import prompt_ids

    cfg, adapter = trained
    cfg.model.dtype = "float32"
    models = InferenceModels(cfg)
    settings = GenerationSettings(max_new_tokens=10, do_sample=False)
    prompts = [PROMPT, [{"role": "user", "content": "Summarize: my cat hides under the bed all day long."}], "Hi"]
    assert models.fallback_reason(settings) == ""
    lengths = [len(prompt_ids(models.tokenizer, p)) for p in prompts]
    assert len(prefill_chunks(lengths)) > 1  # prompts of unlike lengths are prefilled apart, then decoded together
    for side in (None, adapter):
        fast = [g.text for g in models.generate(prompts, settings, adapter=side)]
        model = models.select(side)
        from grpo_app.inference.engine import _adapters_off

        with _adapters_off(model):
            slow = [g.text for g in generate(model, models.tokenizer, prompts, settings)]
        assert fast == slow and any(fast)
    sampled = GenerationSettings(max_new_tokens=10, seed=5)
    one_by_one = [g.text for g in models.generate(prompts, sampled, batch_size=1)]
    assert [g.text for g in models.generate(prompts, sampled, batch_size=16)] == one_by_one  # per-row seeds
    assert engine.batch(models.decoder_model(None), models.tokenizer, prompts, sampled)[0].text == one_by_one[0]


def test_both_sides_stream_together_with_their_own_seeds(trained, tmp_path):
    """One press: the tuned answer grows while the base one does; each side is the text it gives alone, and the
    base text does not depend on the adapter beside it."""
    import shutil

    cfg, adapter = trained
    other = tmp_path / "other-adapter"
    shutil.copytree(adapter, other)
    models = InferenceModels(cfg)
    settings = GenerationSettings(max_new_tokens=12, seed=7)
    pairs = list(models.stream_pair(PROMPT, settings, adapter))
    growing = [(b.tokens, t.tokens) for b, t in pairs]
    assert growing[-1][0] > 1 and growing[-1][1] > 1
    assert any(0 < b < growing[-1][0] and t > 0 for b, t in growing)  # tuned shown while base still grows
    base, tuned = pairs[-1]
    assert base.text == models.generate([PROMPT], settings)[0].text
    assert tuned.text == models.generate([PROMPT], settings, adapter=adapter)[0].text
    again = list(models.stream_pair(PROMPT, settings, str(other)))[-1]
    assert again[0].text == base.text  # same seed, same base text, whichever adapter is beside it
    assert list(models.stream_pair(PROMPT, settings, adapter))[-1][1].text == tuned.text
    assert list(models.stream(PROMPT, settings))[-1].text == base.text


def test_evaluate_scores_both_sides_and_the_baselines_on_every_layout(trained, tmp_path):
    from grpo_app.evaluation import HELDOUT, evaluate, figures_markdown, heldout_set, write_report

    cfg, adapter = trained
    cfg.generation.max_new_tokens = 6
    sets = {name: heldout_set(cfg.data, name, 2) for name in HELDOUT}
    assert all(len(p) == 2 and len(p.references) == 2 for p in sets.values())
    doc = sets["documents"].prompts[0][-1]["content"]
    assert len(doc) > 1000 and doc.startswith(cfg.data.instruction)  # long texts, formatted like training prompts
    assert sets["documents"].texts[0].startswith("# ") and sets["posts"].texts[0].startswith("SUBREDDIT: r/")
    report = evaluate(InferenceModels(cfg), cfg, adapter, sets)
    for name, result in report["sets"].items():
        for side in ("base", "tuned"):
            figures = result[side]
            assert 0 <= figures["summary_rate"] <= 1 and figures["length_error"] >= 0
            assert 0 <= figures["rougeL"] <= 1 and 0 <= figures["copy_rate"] <= 1
            answers = [row[f"{side}_answer"] for row in result["answers"]]
            assert figures["mean_chars"] == sum(map(len, answers)) / 2
        # the no-model baselines: a title where the layout has one, and the first sentence; both copies
        assert ("title" in result) == (name != "plain") and result["lead"]["copy_rate"] == 1.0
        table = figures_markdown(result)
        assert "answers that are summaries" in table and "ROUGE-L" in table and "copy the first sentence" in table
    path = write_report(report, tmp_path / "r" / "eval.json")
    assert json.loads(path.read_text())["sets"]["posts"]["prompts"] == 2
