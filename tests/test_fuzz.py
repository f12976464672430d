"""Fuzzing the parsers: a config file, a `--set` pair or a dataset file is either accepted or refused with
ConfigError (DataError for data), never a TypeError, a pandas/pyarrow error or a crash of the app."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpo_app.checks import validate
from grpo_app.config import SECTIONS, Config, ConfigError, load_config, parse_set, set_value
from grpo_app.data import DataError, build_prompts, read_rows
from grpo_app.settings import DataConfig

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELDS = {s: {f.name: f.type for f in dataclasses.fields(getattr(Config(), s))} for s in SECTIONS}
KEYS = [f"{section}.{name}" for section, names in FIELDS.items() for name in names]
# Real TRL GRPOConfig fields of assorted types (they land in grpo.extra), and one secret validate refuses.
TRL_FIELDS = [
    "epsilon_high",
    "generation_batch_size",
    "model_init_kwargs",
    "output_dir",
    "report_to",
    "reward_weights",
    "use_vllm",
    "top_k",
    "chat_template_kwargs",
    "debug",
    "hub_token",
]
NAMES = SECTIONS + sorted({n for names in FIELDS.values() for n in names}) + TRL_FIELDS
# Ints too big for a float, and (drawn, never in a repr) ones over Python's 4300-digit str() limit.
huge = st.sampled_from([2**63, -(2**63) - 1, 10**400]) | st.integers(4301, 4400).map(lambda n: 10**n)
WORDS = [
    "",
    " ",
    "true",
    "off",
    "yes",
    "1",
    "0",
    "-1",
    "8",
    "1e-5",
    "2e-5",
    "1.0e400",
    "nan",
    "inf",
    "-inf",
    "2024-01-01",
    "auto",
    "length",
    "grounding",
    "a.py:f",
    "none",
    "trackio",
    "..",
    "null",
    "[1, 2]",
    "{a: 1}",
    "9" * 5000,
    "\x00",
    "\ud800",
    "a\nb",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), huge, st.floats(), st.text(max_size=12), st.sampled_from(WORDS)
)
keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=8), st.integers(-2, 2), st.booleans(), st.none())
json_like = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=3), max_leaves=8
)
# Text YAML has to quote, escape or fold (width=100) on the way back.
yaml_text = st.text(st.sampled_from(" ab\n\t\r'\"#:-?!&*[]{},|>%@`é\x00\x7f\u2028\ufeff"), max_size=250)
TYPED = {  # values of the field's own type, so that many configs get through to validate() and the round trip
    "int": st.integers(-3, 100),
    "float": st.floats(),
    "str": st.text(max_size=10) | yaml_text,
    "bool": st.booleans(),
    "list": st.lists(
        st.one_of(st.sampled_from(["length", "no_repeat", "x.py:f"]), st.floats(0, 2), st.text(max_size=4)), max_size=3
    ),
    "dict": st.dictionaries(st.sampled_from(TRL_FIELDS), json_like, max_size=2),
}


def field_value(section: str, name: str) -> st.SearchStrategy:
    kind = FIELDS[section].get(name)
    return st.one_of(TYPED[kind], TYPED[kind], json_like) if kind in TYPED else json_like


def section_values(section: str) -> st.SearchStrategy:
    names = list(FIELDS[section]) + (TRL_FIELDS if section == "grpo" else [])
    pairs = st.one_of(
        st.sampled_from(names).flatmap(lambda n: st.tuples(st.just(n), field_value(section, n))),
        st.tuples(keys, json_like),
    )
    return st.lists(pairs, max_size=4).map(dict)


sections = st.lists(
    st.sampled_from(SECTIONS).flatmap(lambda s: st.tuples(st.just(s), section_values(s))), min_size=1, max_size=4
).map(dict)
config_dicts = st.one_of(
    sections,
    sections,
    st.lists(st.sampled_from(SECTIONS).flatmap(lambda s: st.tuples(st.just(s), json_like)), max_size=3).map(dict),
    st.dictionaries(keys, json_like, max_size=3),
    json_like,
)


def to_json(obj: object) -> str:
    try:
        return json.dumps(obj)
    except ValueError:  # an int over 4300 digits
        return "1"


def dump(obj: object) -> str:
    try:
        return yaml.safe_dump(obj, allow_unicode=True, sort_keys=False)
    except ValueError:  # an int over 4300 digits has no decimal form
        return ""


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n" for a, b in itertools.pairwise("abcdefghij")
)
YAML_SNIPPETS = [
    "model: 5",
    "model: [1, 2]",
    "model:",
    "model: {name: [1, 2]}",
    "- model",
    "grpo: {learning_rate: fast}",
    "grpo: {learning_rate: 1.0e400}",
    "grpo: {learning_rate: .nan}",
    "grpo: {learning_rate: true}",
    "lora: {r: 1.0e400}",
    "lora: {r: " + "9" * 5000 + "}",
    "grpo: {seed: 2020-13-45}",
    "run: {dir: 2024-01-01}",
    "run: {dir: 2024-01-01 10:00:00}",
    "run: {dir: !!binary aGVsbG8=}",
    "model: {name: !!set {a, b}}",
    "a: &x [*x]",
    "reward: {functions: &x [*x]}",
    "reward: {weights: &x [1, *x]}",
    "grpo: {extra: {model_init_kwargs: &x {a: *x}}}",
    "grpo: {extra: &x {epsilon_high: *x}}",
    "grpo: {extra: {5: 1}}",
    "grpo: {extra: {no_such: 1}}",
    "grpo: {extra: {generation_batch_size: ten}}",
    "grpo: {generation_batch_size: many}",
    "reward: {functions: [1, {a: 2}]}",
    "reward: {weights: [a, 1]}",
    "{? [1]: 2}",
    "{1: {2: 3}}",
    "data: {5: x}",
    "data: {null: x}",
    "!!float abc",
    "!!int 1.5",
    "<<: 5",
    "[" * 3000 + "]" * 3000,
    "{a: " * 3000 + "}" * 3000,
    "reward:\n  functions: " + LAUGHS,
    "grpo:\n  extra:\n    model_init_kwargs:\n      " + LAUGHS.replace("\n", "\n      "),
    "\ufeffmodel: {name: x}",
    'model: {name: "\\ud800"}',
    'model: {name: "\\x85\\u2028"}',
]
truncated = st.tuples(config_dicts.map(dump), st.floats(0, 1)).map(lambda t: t[0][: int(len(t[0]) * t[1])])
yaml_texts = st.one_of(st.text(max_size=200), st.sampled_from(YAML_SNIPPETS), config_dicts.map(dump), truncated)


def same(a: object, b: object) -> bool:
    """Equality where NaN equals NaN (validate refuses NaN; the YAML round trip must still keep it)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def has_nan(obj: object) -> bool:
    if isinstance(obj, float):
        return math.isnan(obj)
    if isinstance(obj, dict):
        return any(has_nan(v) for v in obj.values())
    if isinstance(obj, list):
        return any(has_nan(v) for v in obj)
    return False


def one_sentence(e: ConfigError) -> None:
    message = str(e)
    assert message and "\n" not in message and len(message) < 2000, message


def check_config(build) -> Config | None:
    """`build()` gives a Config or ConfigError; a Config validates with ConfigError at most and survives YAML."""
    try:
        cfg = build()
    except ConfigError as e:
        one_sentence(e)
        return None
    assert isinstance(cfg, Config)
    try:
        validate(cfg)
    except ConfigError:
        pass
    again = Config.from_yaml(cfg.to_yaml())
    if has_nan(cfg.to_dict()):
        assert same(again.to_dict(), cfg.to_dict()), (cfg, again)
    else:
        assert again == cfg
    return cfg


@FUZZ
@given(yaml_texts)
def test_from_yaml_accepts_or_raises_config_error(text):
    check_config(lambda: Config.from_yaml(text))


@pytest.mark.parametrize("text", YAML_SNIPPETS, ids=[str(i) for i in range(len(YAML_SNIPPETS))])
def test_yaml_snippets(text):
    check_config(lambda: Config.from_yaml(text))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=100) | st.text(max_size=50).map(lambda t: t.encode("utf-16")))
def test_from_yaml_of_bytes(data):
    check_config(lambda: Config.from_yaml(data))


@FUZZ
@given(config_dicts)
def test_from_dict_accepts_or_raises_config_error(obj):
    check_config(lambda: Config.from_dict(obj))


@pytest.mark.parametrize(
    "data,key",
    [
        ({"grpo": {"learning_rate": "fast"}}, "grpo.learning_rate"),
        ({"grpo": {"learning_rate": True}}, "grpo.learning_rate"),
        ({"grpo": {"learning_rate": 10**400}}, "grpo.learning_rate"),
        ({"grpo": {"no_such": 1}}, "grpo.no_such"),
        ({"grpo": {"extra": {"no_such": 1}}}, "grpo.extra.no_such"),
        ({"grpo": {"extra": {"epsilon_high": "x"}}}, "grpo.extra.epsilon_high"),
        ({"grpo": {"generation_batch_size": "many"}}, "grpo.generation_batch_size"),
        ({"model": 5}, "model"),
        ({"model": []}, "model"),
        ({"nope": {}}, "nope"),
        ({5: {}}, "5"),
        ({"data": {5: "x"}}, "data"),
        ({"lora": {"r": [1]}}, "lora.r"),
        ({"lora": {"r": 10**5000}}, "lora.r"),
        ({"model": {"name": {"a": 1}}}, "model.name"),
        ({"reward": {"functions": ["length", [1]]}}, "reward.functions"),
        ({"reward": {"weights": [1, [2]]}}, "reward.weights"),
    ],
)
def test_errors_name_the_key(data, key):
    with pytest.raises(ConfigError) as e:
        Config.from_dict(data)
    assert key in str(e.value)
    one_sentence(e.value)


def test_from_dict_of_a_non_mapping():
    for bad in ([1], "model", 5):
        with pytest.raises(ConfigError, match="mapping"):
            Config.from_dict(bad)


set_pairs = st.one_of(
    st.text(max_size=40),
    st.tuples(
        st.sampled_from(KEYS + [f"grpo.{n}" for n in TRL_FIELDS]),
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(WORDS + [s.partition(": ")[2] for s in YAML_SNIPPETS]),
            json_like.map(to_json),
        ),
    ).map(lambda kv: f"{kv[0]}={kv[1]}"),
)


@FUZZ
@given(st.lists(set_pairs, max_size=4))
def test_set_pairs_accept_or_raise_config_error(pairs):
    def build() -> Config:
        cfg = Config()
        for key, value in parse_set(pairs):
            try:
                set_value(cfg, key, value)
            except ConfigError as e:
                one_sentence(e)
        return cfg

    check_config(build)


@FUZZ
@given(st.one_of(st.sampled_from(KEYS + [f"grpo.{n}" for n in TRL_FIELDS]), st.text(max_size=12), keys), json_like)
def test_set_value_accepts_or_raises_config_error(key, value):
    def build() -> Config:
        cfg = Config()
        set_value(cfg, key, value)
        return cfg

    check_config(build)


def test_set_value_examples():
    cfg = Config()
    set_value(cfg, "grpo.epsilon_high", "0.3")  # a TRL field: into grpo.extra, typed as TRL declares it
    set_value(cfg, "reward.weights", "1e-3,1")  # YAML reads 1e-3 as text: still a number here
    set_value(cfg, "run.dir", parse_set(["run.dir=2024-01-01"])[0][1])  # YAML reads a date
    assert cfg.grpo.extra == {"epsilon_high": 0.3} and cfg.reward.weights == [1e-3, 1] and cfg.run.dir == "2024-01-01"
    for key, value in [
        ("grpo.learning_rate", True),
        ("lora.r", 10**400),
        ("reward.weights", "1,a: b"),
        ("model.name", b"x"),
        ("grpo.extra", {"no_such": 1}),
        ("lora.r", float("inf")),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            set_value(cfg, key, value)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


COUNTER = itertools.count()


def write(folder: Path, suffix: str, content: bytes) -> Path:
    path = folder / f"f{next(COUNTER)}{suffix}"  # a new name each time: nothing cached can answer for it
    path.write_bytes(content)
    return path


@FUZZ
@given(
    yaml_texts.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=100),
    st.lists(set_pairs, max_size=2),
)
def test_config_files_load_or_raise_config_error(fuzz_dir, content, pairs):
    path = write(fuzz_dir, ".yaml", content)
    check_config(lambda: Config.load(path))
    check_config(lambda: load_config("quick", str(path), parse_set(pairs)))


def test_config_file_that_is_a_folder_or_not_text(tmp_path):
    with pytest.raises(ConfigError, match="folder"):
        Config.load(tmp_path)
    with pytest.raises(ConfigError, match="folder"):
        load_config(None, str(tmp_path))
    bad = tmp_path / "c.yaml"
    bad.write_bytes(b"model: {name: \xff}\n")
    with pytest.raises(ConfigError, match="c.yaml.*UTF-8"):
        Config.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "a\x00b.yaml")


message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system"]) | scalars, "content": st.text(max_size=10) | scalars}
)
messages = st.lists(message, max_size=3)
# One prompt column whose values share a type (as a real file's would), so that reading succeeds and to_prompt
# sees text, numbers, mappings, lists of text, chat messages and gaps.
column_values = st.sampled_from(
    [
        st.text(min_size=1, max_size=20),
        st.integers(-5, 5),
        st.floats(),
        st.booleans(),
        st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
        st.lists(st.text(max_size=4), max_size=2),
        messages,
        st.lists(message, min_size=1, max_size=3),
    ]
).flatmap(lambda kind: st.lists(st.one_of(kind, kind, kind, st.none()), min_size=1, max_size=4))
typed_rows = st.tuples(st.sampled_from(["prompt", "text", "messages", "content"]), column_values).map(
    lambda t: [{t[0]: v, "id": i} for i, v in enumerate(t[1])]
)
rows = st.one_of(
    typed_rows,
    typed_rows,
    st.lists(
        st.dictionaries(
            st.sampled_from(["prompt", "text", "messages", "id"]) | st.text(max_size=5),
            json_like | messages,
            max_size=3,
        ),
        max_size=4,
    ),
)


def jsonl(items: list) -> bytes:
    return "".join(to_json(r) + "\n" for r in items).encode()


def csv_text(header: list[str], body: list[list[str]]) -> bytes:
    import csv

    out = io.StringIO()
    csv.writer(out).writerows([header, *body])
    return out.getvalue().encode("utf-8", "surrogatepass")


def parquet(items: list) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    try:
        pq.write_table(pa.Table.from_pylist(items), out)
    except Exception:  # pyarrow cannot type these values (mixed types, empty structs): store their JSON text
        out = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([{k: to_json(v) for k, v in row.items()} for row in items]), out)
    return out.getvalue()


def cut(data: bytes, share: float) -> bytes:
    return data[: int(len(data) * share)]


csv_files = st.builds(
    csv_text,
    st.lists(st.sampled_from(["prompt", "text", ""]) | st.text(max_size=6), max_size=3),
    st.lists(st.lists(st.text(max_size=8), max_size=4), max_size=3),
)
WRITERS = {".jsonl": jsonl, ".json": lambda items: to_json(items).encode(), ".parquet": parquet}
WELL_FORMED = {  # a file of the suffix's own format (its content may still be odd)
    **{suffix: rows.map(writer) for suffix, writer in WRITERS.items()},
    ".csv": csv_files,
    ".txt": st.lists(st.text(max_size=30)).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
}
garbage = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.just(b""),
    st.binary(max_size=50).map(lambda b: b"\xff\xfe\x80" + b),  # not UTF-8
    json_like.map(lambda v: to_json(v).encode()),  # JSON that is a scalar, a list of scalars, ...
    st.sampled_from(list(WELL_FORMED.values())).flatmap(lambda other: other),  # another format's file
)


def contents(suffix: str) -> st.SearchStrategy:
    own = WELL_FORMED[suffix]
    return st.one_of(own, own, st.tuples(own, st.floats(0, 1)).map(lambda t: cut(*t)), garbage)


files = st.sampled_from(list(WELL_FORMED)).flatmap(lambda suffix: st.tuples(st.just(suffix), contents(suffix)))
data_configs = st.builds(
    DataConfig,
    prompt_column=st.sampled_from(["auto", "prompt", "text", "0", ""]),
    chat_format=st.booleans(),
    system_prompt=st.sampled_from(["", "Be brief."]),
    instruction=st.sampled_from(["", "Summarize:"]),
)


@FUZZ
@given(files, data_configs)
def test_dataset_files_read_or_raise_data_error(fuzz_dir, file, data_cfg):
    check_data(write(fuzz_dir, *file), data_cfg)


@FUZZ
@given(st.sampled_from(list(WRITERS)), typed_rows, data_configs)
def test_prompt_columns_of_any_type_give_prompts_or_data_error(fuzz_dir, suffix, items, data_cfg):
    check_data(write(fuzz_dir, suffix, WRITERS[suffix](items)), data_cfg)


def check_data(path: Path, data_cfg: DataConfig) -> None:
    """read_rows and build_prompts give rows and prompts (text or chat messages), or a one-sentence DataError."""
    columns = []
    try:
        raw = read_rows(str(path))
        assert len(raw) > 0
        columns = raw.column_names
    except DataError as e:
        one_sentence(e)
    data_cfg.path = str(path)
    try:
        ds, report = build_prompts(data_cfg)
    except DataError as e:
        one_sentence(e)
        return
    # the prompt column, then the file's other columns (they reach the reward functions by name, as in TRL)
    assert len(ds) == report.rows > 0 and ds.column_names[0] == "prompt" and set(ds.column_names[1:]) <= set(columns)
    for prompt in ds["prompt"]:
        assert isinstance(prompt, str) or all(isinstance(m["role"], str) for m in prompt)


@pytest.mark.parametrize(
    "content",
    [
        b"5",
        b"[1, 2]",
        b'"text"',
        b"null",
        b'[{"prompt": {"a": 1}}]',
        b'[{"prompt": ["a", "b"]}]',
        b'[{"prompt": [1]}]',
        b"[{}]",
    ],
)
def test_odd_json_files(tmp_path, content):
    path = tmp_path / "odd.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match="odd.json"):
        build_prompts(DataConfig(path=str(path)))
