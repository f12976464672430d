import json

import pandas as pd
import pytest

from grpo_app.data import ASSETS, DataError, build_prompts, detect_column, preview, read_rows
from grpo_app.settings import DataConfig


def test_bundled_dataset_shape():
    train, test = read_rows("bundled", "train"), read_rows("bundled", "test")
    assert len(train) + len(test) >= 150 and len(test) >= 30
    texts = list(train["prompt"]) + list(test["prompt"])
    assert all(300 <= len(t) <= 1500 for t in texts)
    assert len(set(texts)) == len(texts)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet", ".txt"])
def test_every_file_type(tmp_path, suffix):
    rows = ["first post about bikes", "second post about bread", "third post, with a comma"]
    path = tmp_path / f"data{suffix}"
    df = pd.DataFrame({"text": rows, "id": [1, 2, 3]})
    if suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif suffix == ".json":
        df.to_json(path, orient="records")
    elif suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".parquet":
        df.to_parquet(path)
    else:
        path.write_text("\n".join(rows) + "\n\n")
    ds, report = build_prompts(DataConfig(path=str(path)))
    assert list(ds["prompt"]) == rows
    assert report.column == ("prompt" if suffix == ".txt" else "text")


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_rows(str(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(DataError, match="Could not read bad.jsonl"):
        read_rows(str(bad))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError):
        read_rows(str(empty))
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    with pytest.raises(DataError, match="Unsupported file type"):
        read_rows(str(odd))
    with pytest.raises(DataError, match="No prompt column"):
        detect_column(["a", "b"])
    with pytest.raises(DataError, match="Column 'x' not found"):
        detect_column(["a"], "x")


def test_hub_failure_is_one_clear_sentence():
    with pytest.raises(DataError, match="Use 'bundled'"):
        read_rows("someone/does-not-exist-here")


def test_chat_format_instruction_and_messages(tmp_path):
    cfg = DataConfig(
        path="bundled",
        instruction="Summarize this post in one sentence.",
        chat_format=True,
        system_prompt="Be brief.",
        max_samples=3,
    )
    ds, _ = build_prompts(cfg)
    first = ds[0]["prompt"]
    assert first[0] == {"role": "system", "content": "Be brief."}
    assert first[1]["role"] == "user" and first[1]["content"].startswith("Summarize this post in one sentence.\n\n")
    plain, _ = build_prompts(DataConfig(path="bundled", max_samples=2))
    assert isinstance(plain[0]["prompt"], str)  # the recipe's plain prompts stay plain
    path = tmp_path / "chat.jsonl"
    conv = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "answer"}]
    path.write_text(json.dumps({"messages": conv}) + "\n")
    ds, report = build_prompts(DataConfig(path=str(path)))
    assert report.column == "messages" and ds[0]["prompt"] == [{"role": "user", "content": "hello"}]


def test_overlong_prompts_truncated_or_dropped(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    path = tmp_path / "p.txt"
    path.write_text("short one\n" + "word " * 400 + "\n")
    ds, report = build_prompts(DataConfig(path=str(path)), tok, max_prompt_length=64)
    assert (report.rows, report.truncated, report.dropped) == (2, 1, 0)
    assert len(tok(ds[1]["prompt"])["input_ids"]) <= 64
    ds, report = build_prompts(DataConfig(path=str(path), overlong="drop"), tok, max_prompt_length=64)
    assert (report.rows, report.dropped) == (1, 1) and "dropped" in report.summary()
    path.write_text("start " + "word " * 400 + "the very end\n")
    ds, report = build_prompts(DataConfig(path=str(path), overlong="truncate_left"), tok, max_prompt_length=64)
    assert report.truncated == 1 and ds[0]["prompt"].endswith("the very end") and "start" not in ds[0]["prompt"]
    assert len(tok(ds[0]["prompt"])["input_ids"]) <= 64  # as TRL 0.14 did: the end of the prompt is kept


def test_bundled_posts_documents_and_mixed():
    posts, documents, mixed = (read_rows(name) for name in ("bundled", "bundled-documents", "bundled-mixed"))
    assert len(mixed) == len(posts) + len(documents)
    assert mixed.column_names == ["prompt", "title", "layout", "reference"]  # the columns both have reach rewards
    assert all(0 < len(r) <= 120 and r not in p for r, p in zip(mixed["reference"], mixed["prompt"], strict=True))
    reason, extract = read_rows("bundled-reason"), read_rows("bundled-extract")
    assert reason.column_names == extract.column_names == ["prompt", "answer"] and len(reason) == len(extract) == 200
    assert all(row["answer"].isdigit() for row in reason)  # as written: a string of digits, never a float
    assert min(len(t) for t in documents["prompt"]) >= 1000  # long texts beside the short posts
    assert not any("?" in r for r in documents["reference"])  # statements: a post's question stays with posts
    held_out = read_rows("bundled-documents", "test")["prompt"]
    assert 10 <= len(held_out) and all(1000 <= len(t) <= 4000 for t in held_out)
    assert held_out[0] == (ASSETS / "cat_document.txt").read_text().strip()  # the Compare tab's document
    assert held_out[0].startswith("# A long document about the Cat\n\n")  # with the course demo's heading
    held_out_posts = read_rows("bundled", "test")["prompt"]
    assert not set(held_out) & set(documents["prompt"]) and not set(held_out_posts) & set(posts["prompt"])


def test_a_completion_column_goes_on_as_the_reference(tmp_path):
    """TRL keeps `completion` for what it samples: a dataset's own answers in that column (the recipe's
    mlabonne/smoltldr has them there) reach the warm-up and the rouge reward as `reference`."""
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "A long post", "completion": "A short summary."}\n')
    ds, _ = build_prompts(DataConfig(path=str(path)))
    assert ds.column_names == ["prompt", "reference"] and ds["reference"] == ["A short summary."]
    path.write_text('{"prompt": "A long post", "completion": "Theirs.", "reference": "Ours."}\n')
    ds, _ = build_prompts(DataConfig(path=str(path)))
    assert ds.column_names == ["prompt", "reference"] and ds["reference"] == ["Ours."]  # a reference wins


def test_preview():
    columns, column, rows, count = preview(DataConfig(path="bundled"))
    assert column == "prompt" and count >= 120 and len(rows) == 5
