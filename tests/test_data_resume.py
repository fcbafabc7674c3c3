"""Resumability: `kill -9` of a real `salv-trl sample` process mid-stage, then a re-run that finishes the work
without losing, duplicating or redoing rows; and the shard store's handling of torn lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from datasets import load_dataset
from test_data_sampling import one_torch_thread, tiny_model_dir  # noqa: F401, F811 (fixtures)

import salv_trl.data.sampling as sampling
from salv_trl.cli import main
from salv_trl.data.sampling import rollout_key
from salv_trl.data.shards import ShardStore

REFERENCE = "module top(input a, b, output y);\n  assign y = a & b;\nendmodule\n"


def test_shard_store_ignores_torn_lines_and_duplicate_keys(tmp_path):
    store = ShardStore(tmp_path / "work", rollout_key)
    with store:
        store.write(
            [{"task_id": "a", "sample_index": 0, "v": 1}, {"task_id": "a", "sample_index": 1, "v": 2}]
        )
    with ShardStore(tmp_path / "work", rollout_key) as again:  # a second run, its own shard
        again.write(
            [{"task_id": "a", "sample_index": 1, "v": 99}, {"task_id": "b", "sample_index": 0, "v": 3}]
        )
    torn = tmp_path / "work" / "part-99999999999999999999-1.jsonl"
    torn.write_text(
        json.dumps({"task_id": "c", "sample_index": 0}) + "\n" + '{"task_id": "d", "sampl', encoding="utf-8"
    )
    rows = list(ShardStore(tmp_path / "work", rollout_key).rows())
    assert [(r["task_id"], r["sample_index"], r.get("v")) for r in rows] == [
        ("a", 0, 1),
        ("a", 1, 2),
        ("b", 0, 3),
        ("c", 0, None),  # first write wins; the torn line is not a row
    ]
    store.clear()
    assert not (tmp_path / "work").exists()


def test_kill_9_mid_sampling_then_resume(tmp_path, tiny_model_dir, monkeypatch):  # noqa: F811
    tasks = tmp_path / "tasks.jsonl"
    count = 40  # enough that the kill lands mid-stage even on a fast machine
    tasks.write_text(
        "".join(
            json.dumps(
                {"task_id": f"t{i:03d}", "prompt": f"Write module number {i}.", "reference": REFERENCE}
            )
            + "\n"
            for i in range(count)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "ds"
    argv = [
        "sample",
        str(tasks),
        "--model",
        str(tiny_model_dir),
        "--output",
        str(out),
        "--n",
        "2",
        "--max-new-tokens",
        "16",
        "--batch-size",
        "1",
        "--no-progress",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "salv_trl.cli", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    store = ShardStore(out / ".work" / "sample", rollout_key)
    deadline = time.monotonic() + 120
    while len(store.done()) < 3:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "sampling never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    before = {rollout_key(r): r for r in store.rows()}
    assert 3 <= len(before) < 2 * count  # killed mid-stage
    assert not (out / "rollouts").exists()

    generated = []
    original = sampling.sample_completions

    def counting(model, tokenizer, prompts, **kwargs):
        generated.extend(prompts)
        return original(model, tokenizer, prompts, **kwargs)

    monkeypatch.setattr(sampling, "sample_completions", counting)
    assert main(argv) == 0
    rollouts = load_dataset(
        str(out), "rollouts", split="train", cache_dir=str(tmp_path / "hf-cache")
    ).to_list()
    keys = [rollout_key(r) for r in rollouts]
    assert keys == [
        (f"t{i:03d}", j) for i in range(count) for j in range(2)
    ]  # nothing lost, nothing duplicated
    by_key = dict(zip(keys, rollouts, strict=True))
    assert all(
        by_key[key] == row for key, row in before.items()
    )  # rows written before the kill are kept as is
    finished = {task for task, _ in before if (task, 0) in before and (task, 1) in before}
    assert len(generated) == count - len(finished)  # finished tasks were not sampled again
    assert not set(generated) & {f"Write module number {int(t[1:])}." for t in finished}
