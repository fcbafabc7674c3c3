"""Completions made elsewhere: `salv-trl import` from every source format (plain and chat), the join to
benchmark tasks, each bad input; then verify → pairs → `recipes/dpo.py` on the imported set, a verify re-run
with other settings, the file route on a model answer, and missing local paths answered at once."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time

import pytest
from conftest import requires_benchmarks
from datasets import Dataset
from test_recipes import ENV, LAUNCH_ONE, ROOT, TINY_CONFIG

from salv_trl.cli import main
from salv_trl.data import hub
from salv_trl.data.hub import build_info, load_config
from salv_trl.data.rollouts import ROLLOUT_FEATURES, VerifySettings, judge_rollouts
from salv_trl.data.stages import verify_stage, work_store

REFERENCE = (
    "module m(input [3:0] a, b, output [3:0] s, output c);\n"
    "  assign s = a + b;\n  assign c = a < b;\nendmodule\n"
)
SYSTEM = "You write Verilog."


def answer(code: str) -> str:
    """A model answer: prose with backticked names around a fenced block."""
    prose = "Output `s` is the sum and `c` compares `a` with `b`:"
    return f"{prose}\n\n```verilog\n{code}```\n\nUse `timescale` freely."


# sample 0 correct, 1 with `s` wrong, 2 with `c` wrong, 3 does not compile
CODES = [
    REFERENCE,
    REFERENCE.replace("a + b", "a - b"),
    REFERENCE.replace("a < b", "a > b"),
    REFERENCE.replace("assign c = a < b;", "always @* c = a < b;"),
]
TASKS = [
    {"task_id": "add", "prompt": "Write m: s = a + b, c = a < b.", "reference": REFERENCE},
    # a prompt longer than the tiny recipe's max_length (256 tokens): trl removes its rows
    {"task_id": "long", "prompt": "Write m. " + "Mind every detail. " * 120, "reference": REFERENCE},
    {"task_id": "unused", "prompt": "Nobody answered this one.", "reference": REFERENCE},
]


def rows(task_ids=("add", "long"), chat: bool = False) -> list[dict]:
    out = []
    for task_id in task_ids:
        prompt = next(t["prompt"] for t in TASKS if t["task_id"] == task_id)
        for index, code in enumerate(CODES):
            completion = answer(code)
            if chat:
                completion = [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": completion},
                ]
            out.append({"task_id": task_id, "completion": completion, "sample_index": index})
    return out


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


@pytest.fixture()
def tasks_file(tmp_path) -> str:
    return write_jsonl(tmp_path / "tasks.jsonl", TASKS)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_import_from_every_source_format(tmp_path, tasks_file, capsys, monkeypatch):
    records = rows()
    plain = tmp_path / "plain"
    code, out, err = run_cli(
        capsys, "import", write_jsonl(tmp_path / "c.jsonl", records), "--tasks", tasks_file,
        "--output", str(plain), "--model", "some/api-model", "--no-progress",
    )  # fmt: skip
    assert code == 0 and f"{len(records)} rollouts of 2 tasks (plain format)" in out
    assert "1 tasks of the task set have no completion (left out)" in err
    rollouts = load_config(plain, "rollouts")
    assert rollouts.features == ROLLOUT_FEATURES
    assert [(r["task_id"], r["sample_index"]) for r in rollouts] == [
        (r["task_id"], r["sample_index"]) for r in records
    ]
    # without a prompt column, the task's prompt is the rollout's prompt
    assert (
        rollouts[0]["prompt"] == TASKS[0]["prompt"] and rollouts[0]["completion"] == records[0]["completion"]
    )
    assert load_config(plain, "tasks")["task_id"] == ["add", "long"]  # the tasks that have completions
    record = build_info(plain)["import"]
    assert record["format"] == "plain" and record["prompt_format"] == {"chat_template": False, "system": None}
    assert record["model"] == "some/api-model" and len(record["source_sha256"]) == 64
    card = (plain / "README.md").read_text()
    assert "### import" in card and "c.jsonl" in card and "some/api-model" in card

    # the same rows from parquet, a folder of data files, a save_to_disk folder, a salv-trl folder, the Hub
    Dataset.from_list(records).to_parquet(tmp_path / "c.parquet")
    (tmp_path / "files").mkdir()
    shutil.copy(tmp_path / "c.jsonl", tmp_path / "files" / "train.jsonl")
    Dataset.from_list(records).save_to_disk(tmp_path / "saved")
    hub_calls, load_dataset = [], hub.load_dataset

    def fake_hub(name, *args, **kwargs):
        if name in hub.FILE_BUILDERS.values() or name.startswith(str(tmp_path)):
            return load_dataset(name, *args, **kwargs)  # local files and folders
        hub_calls.append(name)
        return Dataset.from_list(records)

    monkeypatch.setattr(hub, "load_dataset", fake_hub)
    for source in ("c.parquet", "files", "saved", "plain", "you/verilog-answers"):
        where = str(tmp_path / source) if source != "you/verilog-answers" else source
        out_folder = tmp_path / f"from-{source.replace('/', '-')}"
        code, _, _ = run_cli(capsys, "import", where, "--tasks", tasks_file, "--output", str(out_folder))
        assert code == 0, source
        assert load_config(out_folder, "rollouts").to_list() == rollouts.to_list(), source
    assert hub_calls == ["you/verilog-answers"]


def test_import_chat_messages_then_conversational_pairs(tmp_path, tasks_file, capsys):
    records = rows(("add",), chat=True)
    Dataset.from_list(records).to_parquet(tmp_path / "chat.parquet")
    folder = tmp_path / "chat"
    code, out, _ = run_cli(
        capsys, "import", str(tmp_path / "chat.parquet"), "--tasks", tasks_file, "--output", str(folder)
    )
    assert code == 0 and "(chat format)" in out
    assert build_info(folder)["import"]["prompt_format"] == {"chat_template": True, "system": SYSTEM}
    rollouts = load_config(folder, "rollouts")
    assert rollouts[0]["prompt"] == TASKS[0]["prompt"]  # the user turn
    assert rollouts[0]["completion"] == records[0]["completion"][-1]["content"]  # the assistant's answer
    assert main(["verify", "--dataset", str(folder), "--vectors", "20", "--no-progress"]) == 0
    assert main(["pairs", str(folder), "--no-progress"]) == 0
    pair = load_config(folder, "pairs").filter(lambda p: p["kind"] == "signal")[0]
    assert pair["prompt"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": TASKS[0]["prompt"]},
    ]
    [chosen] = pair["chosen"]
    sliced = "".join(chosen["content"][start:end] for start, end in pair["chosen_spans"])
    assert chosen["role"] == "assistant" and "assign" in sliced


@requires_benchmarks
def test_import_joins_benchmark_tasks(tmp_path, benchmarks_dir, capsys):
    from salv_trl.data.tasks import load_tasks

    adder = load_tasks(benchmarks_dir, benchmark="rtllm-v1.1").filter(lambda t: t["task_id"] == "adder_8bit")[
        0
    ]
    records = [
        {
            "task_id": "adder_8bit",
            "completion": f"Here:\n```verilog\n{adder['reference']}```",
            "prompt": "Add.",
        },
        {"task_id": "no_such_design", "completion": "```verilog\nmodule x; endmodule\n```"},
    ]
    folder = tmp_path / "rtllm"
    argv = ["import", write_jsonl(tmp_path / "c.jsonl", records), "--output", str(folder), "--no-progress"]
    code, _, err = run_cli(capsys, *argv, "--benchmark", "rtllm-v1.1", "--data-dir", str(benchmarks_dir))
    assert (
        code == 0 and "skipped 1 rows of 1 task ids the task set does not have (e.g. no_such_design)" in err
    )
    [task] = load_config(folder, "tasks").to_list()
    assert task == adder and build_info(folder)["tasks"]["source"] == "rtllm-v1.1"
    assert load_config(folder, "rollouts")[0]["prompt"] == "Add."  # a given prompt is kept
    assert main(["verify", "--dataset", str(folder), "--vectors", "20", "--no-progress"]) == 0
    assert load_config(folder, "rollouts")[0]["verdict"]["status"] == "ok"


def test_bad_inputs_get_counts_and_clear_messages(tmp_path, tasks_file, capsys):
    def imported(records, name, *extra):
        return run_cli(
            capsys, "import", write_jsonl(tmp_path / f"{name}.jsonl", records), "--tasks", tasks_file,
            "--output", str(tmp_path / name), *extra,
        )  # fmt: skip

    good = rows(("add",))
    unknown = [dict(good[0], task_id="nope"), dict(good[1], task_id="nope")]
    messy = good + unknown + [dict(good[0], sample_index=7, completion="  \n")] + [good[2]]
    code, out, err = imported(messy, "messy")
    assert code == 0 and f"{len(good)} rollouts of 1 tasks" in out
    assert "skipped 2 rows of 1 task ids the task set does not have (e.g. nope)" in err
    assert f"skipped 1 empty completions (rows {len(good) + 2})" in err
    assert "skipped 1 duplicate rows" in err
    assert build_info(tmp_path / "messy")["import"]["skipped"] == {
        "unknown_task": 2,
        "empty": 1,
        "duplicate": 1,
    }
    # without sample indices rows are numbered per task; an exact repeat is still a duplicate
    code, _, err = imported(
        [{k: v for k, v in r.items() if k != "sample_index"} for r in good * 2], "unindexed"
    )
    assert code == 0 and f"skipped {len(good)} duplicate rows" in err
    assert load_config(tmp_path / "unindexed", "rollouts")["sample_index"] == list(range(len(good)))

    failures = {
        "lack column(s) completion": ([{"task_id": "add", "answer": "x"}], ()),
        "appears twice with different contents": ([good[0], dict(good[1], sample_index=0)], ()),
        "no completion left to import": (unknown, ()),
        "must end with the assistant's message": (
            [dict(good[0], completion=[{"role": "user", "content": "hi"}])], ()
        ),
        "2 different system messages": (
            [dict(r, completion=[{"role": "system", "content": s}, {"role": "assistant", "content": "x"}])
             for r, s in zip(good, ("A", "B"), strict=False)],
            (),
        ),
        "--tasks SOURCE, or --benchmark NAME --data-dir DIR": (good, ("--benchmark", "rtllm-v1.1")),
    }  # fmt: skip
    for number, (message, (records, extra)) in enumerate(failures.items()):
        code, _, err = imported(records, f"bad{number}", *extra)
        assert code == 2 and message in err, (message, err)
    assert main(["import", tasks_file, "--output", str(tmp_path / "x")]) == 2  # no tasks named at all

    # importing the same rows again keeps the verdicts made since; other rows into the folder are refused
    folder = tmp_path / "messy"
    assert main(["verify", "--dataset", str(folder), "--vectors", "20", "--no-progress"]) == 0
    verified = load_config(folder, "rollouts").to_list()
    assert imported(messy, "messy")[0] == 0 and load_config(folder, "rollouts").to_list() == verified
    code, _, err = imported(good[:2], "messy")
    assert code == 2 and "already holds other rollouts" in err


def test_verify_re_run_with_other_settings_re_verifies(tmp_path, tasks_file, capsys, caplog):
    folder = tmp_path / "set"
    write_jsonl(tmp_path / "c.jsonl", rows(("add",)))
    assert main(["import", str(tmp_path / "c.jsonl"), "--tasks", tasks_file, "--output", str(folder)]) == 0

    def samples() -> set[int]:
        return {s["samples"] for r in load_config(folder, "rollouts") for s in r["verdict"]["signals"]}

    def verify(*extra: str) -> int:
        return main(["verify", "--dataset", str(folder), "--no-progress", "--workers", "1", *extra])

    assert verify("--vectors", "20") == 0 and samples() == {20}
    first = load_config(folder, "rollouts").to_list()
    assert {r["verify_settings"] for r in first} == {VerifySettings(vectors=20).to_json()}
    assert verify("--vectors", "20") == 0 and load_config(folder, "rollouts").to_list() == first  # same: kept
    with caplog.at_level(logging.WARNING, logger="salv_trl.data.stages"):
        assert verify("--vectors", "30", "--seed", "3") == 0
    assert samples() == {30}
    assert (
        f"{len(first)} rollouts of {folder} were verified with other settings (vectors 20, seed 0"
        in caplog.text
    )
    card = (folder / "README.md").read_text()
    assert (
        f"Verdicts made with: {VerifySettings(vectors=30, seed=3).describe()} ({len(first)} rollouts)" in card
    )
    assert "`seed`: 3" in card and "`vectors`: 30" in card

    # rows verified before verdicts carried their settings read them from the folder's build record
    legacy = load_config(folder, "rollouts").remove_columns("verify_settings")
    hub.save_config(legacy, folder, "rollouts")
    assert (
        verify_stage(folder, VerifySettings(vectors=30, seed=3), workers=1, progress=False).to_list()
        == legacy.to_list()
    )
    # an interrupted run's rows made with other settings are never taken for this run's
    stale = dict(first[0], verdict=dict(first[0]["verdict"], detail="made with seed 9"))
    stale["verify_settings"] = VerifySettings(vectors=30, seed=9).to_json()
    with work_store(
        folder, "verify", lambda r: (r["task_id"], r["sample_index"], r["verify_settings"])
    ) as store:
        store.write([stale])
    again = verify_stage(folder, VerifySettings(vectors=20), workers=1, progress=False).to_list()
    assert again == first  # everything judged again with vectors 20, as the first run did
    assert not (folder / ".work").exists()

    # verdicts stored before the settings recorded the stimulus's rules (older rules) are judged again
    def older(row: dict) -> dict:
        stored = {k: v for k, v in json.loads(row["verify_settings"]).items() if k != "stimulus"}
        verdict = dict(row["verdict"], detail="older stimulus")
        return {"verify_settings": json.dumps(stored), "verdict": verdict}

    hub.save_config(load_config(folder, "rollouts").map(older), folder, "rollouts")
    assert VerifySettings.from_json(older(first[0])["verify_settings"]) != VerifySettings(vectors=20)
    assert verify_stage(folder, VerifySettings(vectors=20), workers=1, progress=False).to_list() == first


def test_file_route_reads_a_model_answer_as_the_dataset_route_does(tmp_path, capsys):
    (tmp_path / "ref.v").write_text(REFERENCE)
    files = {
        "answer.md": answer(CODES[1]),  # prose with backticked names, `s` wrong
        "defined.v": "`define SUM(x, y) ((x) - (y))\n`timescale 1ns/1ps\n"
        + REFERENCE.replace("a + b", "`SUM(a, b)"),
    }  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    paths = [str(tmp_path / name) for name in files]
    code, out, _ = run_cli(
        capsys, "verify", *paths, "-r", str(tmp_path / "ref.v"), "--vectors", "20", "--json"
    )
    verdicts = [{k: v for k, v in row.items() if k != "candidate"} for row in json.loads(out)]
    assert code == 1
    dataset_route = judge_rollouts(
        [{"task_id": "t", "prompt": "p", "completion": text, "sample_index": 0} for text in files.values()],
        {"t": {"reference": REFERENCE}},
        VerifySettings(vectors=20),
        workers=1,
        progress=False,
    )
    assert verdicts == [row["verdict"] for row in dataset_route]
    assert [{s["name"]: s["correct"] for s in v["signals"]} for v in verdicts] == [
        {"s": False, "c": True},
        {"s": False, "c": True},  # the `define above the module is part of the file's code
    ]


def test_compile_error_detail_leaves_out_the_reference_warnings():
    from salv_trl.hdl.verify import verify

    # the reference's own instance pads a port (an Icarus warning on every compile)
    reference = (
        "module sub(input [3:0] x, output [3:0] y);\n  assign y = x;\nendmodule\n"
        + REFERENCE.replace(
            "  assign s = a + b;", "  wire [7:0] w;\n  sub u(.x(a), .y(w));\n  assign s = w[3:0] + b;"
        )
    )  # fmt: skip
    verdict = verify(CODES[3], reference, vectors=20)
    assert verdict.status.value == "compile_error" and verdict.detail.startswith("cand")
    assert "ref.v" not in verdict.detail and "not a valid l-value" in verdict.detail


def test_missing_local_paths_fail_at_once_without_the_hub(tmp_path, tasks_file, capsys, monkeypatch):
    load_dataset = hub.load_dataset

    def no_hub(name, *args, **kwargs):
        if name in hub.FILE_BUILDERS.values():  # a local data file
            return load_dataset(name, *args, **kwargs)
        raise AssertionError(f"the Hub was asked for {name}")

    monkeypatch.setattr(hub, "load_dataset", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    commands = [
        ["verify", "--dataset", "data/salvv"],
        # a typo of a local folder (`data` is here), though shaped like a Hub id, owner/name
        ["import", "data/answers", "--tasks", tasks_file, "--output", "out"],
        ["pairs", str(tmp_path / "missing")],
        ["import", "answers.jsonl", "--tasks", tasks_file, "--output", "out"],
        ["import", tasks_file, "--tasks", "./tasks-typo", "--output", "out"],
        ["sample", "data/tasks.jsonl", "--model", "tiny", "--output", "out"],
    ]
    for argv in commands:
        start = time.monotonic()
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "no such" in err, (argv, err)
        assert time.monotonic() - start < 1, argv
    assert hub.local_or_hub("you/verilog-answers") == "you/verilog-answers"  # only this shape goes to the Hub
    code, _, err = run_cli(capsys, "verify", "--dataset", tasks_file)  # completions not imported yet
    assert code == 2 and f"salv-trl import {tasks_file} --tasks TASKS --output FOLDER" in err


def test_no_progress_hides_every_bar_and_a_bar_prints_100_once(tmp_path, tasks_file, capsys):
    write_jsonl(tmp_path / "c.jsonl", rows(("add",)))
    folder = tmp_path / "bars"
    main(["import", str(tmp_path / "c.jsonl"), "--tasks", tasks_file, "--output", str(folder)])
    capsys.readouterr()
    assert main(["verify", "--dataset", str(folder), "--vectors", "20"]) == 0
    err = capsys.readouterr().err
    assert err.count("verify: 100%") == 1, err
    code, _, err = run_cli(capsys, "pairs", str(folder), "--no-progress")
    assert code == 0 and "%|" not in err  # neither ours nor datasets' (parquet writing)


@pytest.mark.slow  # one `accelerate launch`
def test_imported_set_through_verify_pairs_and_the_dpo_recipe(tmp_path, tasks_file, capsys):
    folder = tmp_path / "imported"
    write_jsonl(tmp_path / "c.jsonl", rows())
    assert main(["import", str(tmp_path / "c.jsonl"), "--tasks", tasks_file, "--output", str(folder)]) == 0
    assert main(["verify", "--dataset", str(folder), "--vectors", "20", "--no-progress"]) == 0
    statuses = [r["verdict"]["status"] for r in load_config(folder, "rollouts")]
    assert statuses == ["ok", "ok", "ok", "compile_error"] * 2
    # one pairs folder per mode, side by side; the non-compiling sample is paired only when asked
    for mode, extra in (
        ("signal", ()),
        ("module", ("--mode", "module")),
        ("all", ("--not-simulated-pairs",)),
    ):
        assert main(["pairs", str(folder), "--output", str(tmp_path / mode), "--no-progress", *extra]) == 0
    kinds = {mode: set(load_config(tmp_path / mode, "pairs")["kind"]) for mode in ("signal", "module", "all")}
    assert kinds == {"signal": {"signal"}, "module": {"module"}, "all": {"signal", "not_simulated"}}
    assert not (folder / "pairs").exists() and build_info(tmp_path / "signal")["import"]["format"] == "plain"
    pairs = load_config(tmp_path / "signal", "pairs")
    too_long = sum(task_id == "long" for task_id in pairs["task_id"])
    assert 0 < too_long < len(pairs)

    command = [
        *LAUNCH_ONE, str(ROOT / "recipes" / "dpo.py"), "--config", str(TINY_CONFIG),
        "--model_name_or_path", str(tmp_path / "model"), "--dataset_name", str(tmp_path / "signal"),
        "--output_dir", str(tmp_path / "dpo"), "--max_steps", "2", "--save_strategy", "no",
        "--logging_steps", "1", "--disable_tqdm", "true",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # before training: the rows trl removes because their prompt alone fills max_length (256)
    assert (
        f"Signal spans of the train dataset: {len(pairs)} rows; {too_long} removed by trl (the prompt alone "
        "fills max_length 256)" in done.stdout
    )
    assert (tmp_path / "dpo" / "adapter_model.safetensors").is_file()
