"""Environments: loading by name / path / $PTE_RL_ENVS_DIR, validation, and the facts, math, simpleqa envs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pte_rl.errors import InputError
from pte_rl.rollout.env import Environment, default_data_dir, load_environment, resolve_environment

DATA_DIR = default_data_dir()
needs_data = pytest.mark.skipif(not (DATA_DIR / "math500.jsonl").is_file(), reason=f"no benchmark files in {DATA_DIR}")

TINY_ENV = '''
from datasets import Dataset
from pte_rl.rollout.env import Environment


def echo(text: str) -> str:
    """Echo the text.

    Args:
        text: what to echo.
    """
    return text


def load_environment(size: int = 2, tag: str = "x") -> Environment:
    rows = {"prompt": [[{"role": "user", "content": f"{tag}{i}"}] for i in range(size)],
            "ground_truth": [str(i) for i in range(size)], "task_id": [f"{tag}-{i}" for i in range(size)]}
    return Environment(name="tiny", dataset=Dataset.from_dict(rows), tools=[echo], check_answer=lambda a, g: a == g)
'''


def test_loads_by_path_by_env_dir_and_lists_names_when_unknown(tmp_path, monkeypatch):
    path = tmp_path / "tiny.py"
    path.write_text(TINY_ENV)
    env = load_environment(str(path), size=3)
    assert len(env.dataset) == 3 and env.source == (str(path.resolve()), {"size": 3})
    assert env.tool_schemas()[0]["function"]["name"] == "echo"
    monkeypatch.setenv("PTE_RL_ENVS_DIR", str(tmp_path))
    assert load_environment("tiny", tag="y").dataset["task_id"] == ["y-0", "y-1"]
    with pytest.raises(ValueError, match=r"unknown environment 'nope'; available: .*arith.*facts.*tiny"):
        resolve_environment("nope")
    with pytest.raises(TypeError, match=r"tiny.py: load_environment\(\).*'colour'.*accepted options: size: int = 2"):
        load_environment("tiny", colour="red")
    with pytest.raises(FileNotFoundError, match="missing.py"):
        load_environment(str(tmp_path / "missing.py"))


def test_environment_rejects_missing_columns_and_overlapping_splits():
    from datasets import Dataset

    rows = {"prompt": [[{"role": "user", "content": "q"}]], "ground_truth": ["1"], "task_id": ["t1"]}
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['task_id'\]"):
        Environment("e", Dataset.from_dict({k: v for k, v in rows.items() if k != "task_id"}), [], lambda a, g: True)
    with pytest.raises(ValueError, match="1 task_id\\(s\\) in both dataset and eval_dataset"):
        Environment("e", Dataset.from_dict(rows), [], lambda a, g: True, eval_dataset=Dataset.from_dict(rows))


def test_facts_is_deterministic_disjoint_and_answerable_from_its_pages():
    env = load_environment("facts", n_cities=20, n_eval=20)
    again = load_environment("facts", n_cities=20, n_eval=20)
    other = load_environment("facts", n_cities=20, n_eval=20, seed=1)
    assert env.dataset["task_id"] == again.dataset["task_id"]
    assert env.dataset["ground_truth"] == again.dataset["ground_truth"]
    assert env.dataset["prompt"] != other.dataset["prompt"]
    assert not set(env.dataset["task_id"]) & set(env.eval_dataset["task_id"])
    # 20 cities: 4 countries (2 questions each), 15 inventions (2), 15 companies (3), 20 cities (1).
    assert len(env.dataset) + len(env.eval_dataset) == 4 * 2 + 15 * 2 + 15 * 3 + 20
    search, visit = env.tools
    for row in list(env.dataset)[:10]:
        question, answer = row["prompt"][1]["content"], row["ground_truth"]
        pattern = r"facts-([a-z]+-[a-z-]+?)-(capital|founded|inventor|founder|headquarters|hq)"
        doc = re.match(pattern, row["task_id"]).group(1)
        page = visit(doc=doc)
        lead = page.split("\n\n")[1]  # the facts paragraph, after the title and url
        if row["hops"] == 1:
            assert answer in lead, (question, lead)
        else:  # the first hop's page names the entity whose page holds the answer
            middle = re.search(r"capital is (\w+)|invented by ([\w ]+) in|headquarters are in (\w+)", lead)
            name = next(g for g in middle.groups() if g)
            assert doc in search(query=question) or name
            kind = "person" if "invented" in lead else "city"
            second = visit(doc=f"{kind}-{name.lower().replace(' ', '-')}")
            assert answer in second.split("\n\n")[1]
        assert env.check_answer(f"So the answer is \\boxed{{{answer}}}", answer) is True
    assert 4000 <= len(visit(doc=doc)) <= 4000 + 200  # the visit budget: pages are longer (and title, url, marker)
    two_hop = load_environment("facts", n_cities=20, n_eval=10, two_hop_fraction=0.5)
    assert sum(two_hop.eval_dataset["hops"]) == 15  # 5 two-hop + 5 one-hop


@needs_data
def test_math_loads_the_benchmarks_and_normalises_their_answers():
    env = load_environment("math", dataset="math500")
    assert len(env.dataset) + len(env.eval_dataset) == 500
    assert 25 <= len(env.eval_dataset) <= 80  # eval_fraction 0.1 by hash
    assert not set(env.dataset["task_id"]) & set(env.eval_dataset["task_id"])
    rows = {r["task_id"]: r for r in list(env.dataset) + list(env.eval_dataset)}
    first = rows["math500-1"]
    assert first["prompt"][1]["content"].startswith("If $2^8=4^x$") and first["ground_truth"] == "4"
    gsm = load_environment("math", dataset="gsm8k", eval_dataset="aime25")
    assert len(gsm.dataset) == 500 and len(gsm.eval_dataset) == 30
    assert gsm.dataset[0]["ground_truth"] == "70000"  # "... #### 70000"
    assert gsm.eval_dataset[0]["ground_truth"] == "70" and gsm.eval_dataset[0]["task_id"] == "aime25-0"
    aime24 = load_environment("math", dataset="aime24", eval_fraction=0.5)
    assert len(aime24.dataset) + len(aime24.eval_dataset) == 30
    assert env.tools[0].__name__ == "python"
    assert env.check_answer("\\boxed{\\frac{1}{2}}", "0.5") is True


def test_math_names_the_file_line_and_field_of_a_bad_row(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n" + json.dumps({"question": "x?"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'answer'"):
        load_environment("math", dataset=str(bad))
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    with pytest.raises(ValueError, match="is the training source itself"):
        load_environment("math", dataset=str(good), eval_dataset=str(good))


MATH_ROWS = Path(__file__).resolve().parent / "data" / "math" / "math500.jsonl"


def test_math_reads_a_jsonl_file_a_saved_dataset_and_a_dataset_dict(tmp_path):
    """The 8 MATH-500 rows of tests/data/math three ways: the same questions, answers and split sizes."""
    import datasets

    records = [json.loads(line) for line in MATH_ROWS.read_text().splitlines()]
    from_file = load_environment("math", dataset=str(MATH_ROWS), eval_fraction=0.5)
    assert len(from_file.dataset) + len(from_file.eval_dataset) == 8
    answers = {row["task_id"]: row["ground_truth"] for row in [*from_file.dataset, *from_file.eval_dataset]}
    assert answers == {f"math500-{line}": r["answer"] for line, r in enumerate(records, 1)}  # ids by line number
    assert answers["math500-1"] == "4" and answers["math500-2"] == "x \\in [-2,7]"
    rows = datasets.Dataset.from_list(records)
    rows.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": rows.select(range(3)), "test": rows}).save_to_disk(str(tmp_path / "split"))
    saved = load_environment("math", dataset=str(tmp_path / "saved"), eval_fraction=0.5)
    assert len(saved.dataset) + len(saved.eval_dataset) == 8 and saved.dataset[0]["task_id"].startswith("saved-")
    both = sorted(list(saved.dataset["ground_truth"]) + list(saved.eval_dataset["ground_truth"]))
    assert both == sorted(r["answer"] for r in records)
    train = load_environment("math", dataset=str(tmp_path / "split"), hf_split="train", eval_fraction=0.5)
    assert len(train.dataset) + len(train.eval_dataset or []) == 3
    with pytest.raises(InputError, match=r"field 'hf_split': .*split holds the splits train, test, not 'dev'"):
        load_environment("math", dataset=str(tmp_path / "split"), hf_split="dev")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match=r"field 'dataset': .*plain: a directory, but not one datasets.save_to_disk"):
        load_environment("math", dataset=str(tmp_path / "plain"))


def test_math_passes_a_hub_name_its_config_and_split_to_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return datasets.Dataset.from_list([{"question": "3 + 4 = ?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
                                           {"question": "1,000 + 1?", "answer": "... #### 1,001"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    env = load_environment("math", dataset="openai/gsm8k", hf_config="main", hf_split="train", eval_dataset=None,
                           eval_fraction=0.5)
    assert calls == [("openai/gsm8k", "main", "train")]
    truths = dict(zip(list(env.dataset["task_id"]) + list(env.eval_dataset["task_id"] if env.eval_dataset else []),
                      list(env.dataset["ground_truth"]) + list(env.eval_dataset["ground_truth"]
                                                               if env.eval_dataset else []), strict=True))
    assert truths == {"gsm8k-0": "7", "gsm8k-1": "1001"}


def test_math_says_what_to_download_for_a_hub_name_it_cannot_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(InputError) as info:
        load_environment("math", dataset="nobody/no-such-set", hf_config="main")
    message = str(info.value)
    assert message.startswith("field 'dataset': 'nobody/no-such-set' is no local file or directory")
    assert "datasets.load_dataset('nobody/no-such-set', 'main', split='test')" in message
    assert "--env.options.dataset no-such-set.jsonl" in message
    for missing in ("data/absent.jsonl", str(tmp_path / "absent"), "./x"):
        with pytest.raises(InputError, match=f"field 'dataset': {re.escape(missing)}: no such file or directory"):
            load_environment("math", dataset=missing)
    with pytest.raises(InputError, match=r"field 'dataset': the benchmark name 'math500' reads .*math500.jsonl, which "
                                         r"does not exist; give a .jsonl file"):
        load_environment("math", dataset="math500", data_dir=str(tmp_path))


def test_dataset_files_name_the_file_line_and_field_of_a_bad_line(tmp_path):
    from pte_rl.envs.simpleqa import load_questions
    from pte_rl.errors import InputError

    questions = tmp_path / "qa.jsonl"
    # line 1 a row, line 2 blank, line 3 a row with an empty answer list
    questions.write_text(json.dumps({"question": "Who?", "answer": ["Ada", "A. Lovelace"], "id": 7}) + "\n\n"
                         + json.dumps({"question": "When?", "answer": []}) + "\n")
    with pytest.raises(InputError, match=r"qa.jsonl:3: field 'answer': expected a string or a list of strings"):
        load_questions(str(questions))
    questions.write_text(json.dumps({"question": "Who?", "answer": ["Ada", "A. Lovelace"], "id": 7}) + "\n[1]\n")
    with pytest.raises(InputError, match=r"qa.jsonl:2: field '<line>': expected a JSON object, got list"):
        load_questions(str(questions))
    questions.write_text(json.dumps({"question": " Who? ", "answer": ["Ada ", "A. Lovelace"], "id": 7}) + "\n")
    assert load_questions(str(questions)) == [{"question": "Who?", "answers": ["Ada", "A. Lovelace"],
                                               "task_id": "simpleqa-7"}]
    questions.write_text("\n  \n")
    with pytest.raises(InputError, match=r"qa.jsonl: field '<file>': expected at least one JSON object"):
        load_questions(str(questions))


@needs_data
def test_simpleqa_loads_questions_and_searches_a_given_corpus(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    docs = [{"id": "d1", "title": "IEEE Frank Rosenblatt Award", "text": "The 2010 award went to Michio Sugeno."},
            {"id": "d2", "title": "Radcliffe College", "text": "A women's liberal arts college in Cambridge."}]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    env = load_environment("simpleqa", corpus_path=str(corpus))
    assert len(env.dataset) + len(env.eval_dataset) == 500
    rows = {r["task_id"]: r for r in list(env.dataset) + list(env.eval_dataset)}
    assert rows["simpleqa-1"]["ground_truth"] == ["Michio Sugeno"]
    search, visit = env.tools
    assert "id: d1" in search(query="Frank Rosenblatt Award 2010")
    assert "Michio Sugeno" in visit(doc="d1")
    assert env.check_answer("It was \\boxed{Michio Sugeno}.", ["Michio Sugeno"]) is True
