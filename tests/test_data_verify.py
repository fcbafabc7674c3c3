"""End to end on benchmark references: single-output mutants wrapped as model completions → verify → slice →
pairs; and the verify stage on a local Ray instance and on a Ray cluster that loses a worker node."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import reference_designs, requires_benchmarks

from salv_trl.cli import main
from salv_trl.data.hub import build_info, load_config, save_config
from salv_trl.data.pairs import PairOptions
from salv_trl.data.rollouts import ROLLOUT_FEATURES, VerifySettings, judge_rollouts, verdict_from_row
from salv_trl.data.stages import pairs_stage, verify_stage, work_store
from salv_trl.data.tasks import TASK_FEATURES
from salv_trl.hdl.mutate import mutants
from salv_trl.hdl.verify import Status

# A two-output module for the quick tests.
M = (
    "module m(input [3:0] a, b, output [3:0] s, output c);\n"
    "  assign s = a + b;\n  assign c = a < b;\nendmodule\n"
)
# Multi-output VerilogEval v2 references: combinational, wide and sequential ones.
CHOSEN = ("Prob072_thermostat", "Prob087_gates", "Prob058_alwaysblock2", "Prob094_gatesv")


def _wrap(code: str, index: int) -> str:
    """A model-like completion: prose of varying length around a fenced block, so offsets differ by sample."""
    prose = f"Let me work through this{' carefully' * index}."
    return f"{prose}\n\n```verilog\n{code}```\n\nThat drives every output."


def _small_folder(folder, completions: list[str]) -> None:
    """A dataset folder with task `m` (reference `M`) and the given completions as its rollouts."""
    from datasets import Dataset

    task = {"task_id": "m", "prompt": "p", "reference": M, "testbench": None, "top": None}
    save_config(Dataset.from_list([task], features=TASK_FEATURES), folder, "tasks")
    rows = [
        {"task_id": "m", "prompt": "p", "completion": c, "sample_index": i} for i, c in enumerate(completions)
    ]
    save_config(Dataset.from_list(rows, features=ROLLOUT_FEATURES), folder, "rollouts")


def _contains(spans, start, end) -> bool:
    return any(a <= start and end <= b for a, b in spans)


def _intersects(spans, start, end) -> bool:
    return any(a < end and start < b for a, b in spans)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """A dataset folder with rollouts: a reference, one mutant per output, a code-less and a broken one."""
    designs = {d.name.removeprefix("ve2/"): d for d in reference_designs() if d.name.startswith("ve2/")}
    if not all(name in designs for name in CHOSEN):
        pytest.skip("VerilogEval v2 references not found")
    folder = tmp_path_factory.mktemp("e2e")
    tasks, rollouts, origin = [], [], {}
    for name in CHOSEN:
        reference = designs[name].text
        tasks.append(
            {
                "task_id": name,
                "prompt": f"Implement {name}.",
                "reference": reference,
                "testbench": None,
                "top": None,
            }
        )
        candidates = [(reference, None)] + [
            (m.text, m) for m in mutants(reference, "RefModule", per_output=1)
        ]
        candidates += [("", None), ("module RefModule(input x; endmodule\n", None)]
        for index, (code, mutant) in enumerate(candidates):
            completion = _wrap(code, index) if code else "I am not sure how to write this module."
            rollouts.append(
                {
                    "task_id": name,
                    "prompt": f"Implement {name}.",
                    "completion": completion,
                    "sample_index": index,
                }
            )
            origin[completion] = (reference, mutant)
    from datasets import Dataset

    save_config(Dataset.from_list(tasks, features=TASK_FEATURES), folder, "tasks")
    save_config(Dataset.from_list(rollouts, features=ROLLOUT_FEATURES), folder, "rollouts")
    verify_stage(folder, VerifySettings(vectors=200), workers=2, progress=False)
    pairs = pairs_stage(folder, PairOptions(), progress=False)
    return folder, origin, pairs


def _site_in(completion: str, origin, mutant) -> tuple[int, int]:
    """Where `mutant`'s edit of the reference lies in a completion with the reference or another mutant."""
    reference, own = origin[completion]
    offset = completion.index("```verilog\n") + len("```verilog\n")
    start, end = mutant.span
    if own is mutant:
        end = start + (end - start) + len(own.text) - len(reference)  # the replacement text
    elif own is not None and own.span[0] < start:
        shift = len(own.text) - len(reference)
        start, end = start + shift, end + shift
    return offset + start, offset + end


@requires_benchmarks
def test_end_to_end_pairs_from_mutants(e2e):
    folder, origin, pairs = e2e
    rollouts = load_config(folder, "rollouts").to_list()
    statuses = [r["verdict"]["status"] for r in rollouts]
    broken = [r["verdict"]["status"] for r in rollouts if "(input x;" in r["completion"]]
    assert statuses.count("no_code") == len(CHOSEN) and len(broken) == len(CHOSEN)
    assert set(broken) <= {"syntax_error", "interface_mismatch", "compile_error"}
    for row in rollouts:
        reference, mutant = origin[row["completion"]]
        verdict = verdict_from_row(row)
        if verdict.status == Status.ok:
            assert row["code_offset"] == row["completion"].index("```verilog\n") + len("```verilog\n")
            assert {s["signal"] for s in row["slices"]} == set(verdict.signals) and row["slice_error"] is None
        if (
            mutant is not None and verdict.status == Status.ok
        ):  # a mutant is wrong on its output only, if at all
            assert all(v.correct for name, v in verdict.signals.items() if name != mutant.output)
    signal_pairs = [p for p in pairs if p["kind"] == "signal"]
    assert len({p["task_id"] for p in signal_pairs}) == len(CHOSEN)
    assert sum(p["kind"] == "no_code" for p in pairs) == len(CHOSEN)  # reference vs the code-less completion
    by_completion = {r["completion"]: r for r in rollouts}
    for pair in signal_pairs:
        chosen, rejected = pair["chosen"], pair["rejected"]
        for text, spans in ((chosen, pair["chosen_spans"]), (rejected, pair["rejected_spans"])):
            assert spans and all(0 <= s < e <= len(text) for s, e in spans)
            # sorted and disjoint
            assert all(e1 < s2 for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False))
        [signal] = pair["signals"]  # single-output mutants: one contrast signal per pair
        _, wrong = origin[rejected]
        assert wrong is not None and wrong.output == signal
        # The contrast signal's driver (the mutated expression) is in both span sets ...
        assert _contains(pair["chosen_spans"], *_site_in(chosen, origin, wrong))
        assert _contains(pair["rejected_spans"], *_site_in(rejected, origin, wrong))
        # ... and no driver of an output that is correct in both is.
        both = [
            name
            for name, v in verdict_from_row(by_completion[chosen]).signals.items()
            if v.correct and verdict_from_row(by_completion[rejected]).signals[name].correct
        ]
        task_reference = origin[chosen][0]
        others = [
            m for ref, m in origin.values() if ref == task_reference and m is not None and m.output in both
        ]
        for other in {id(m): m for m in others}.values():
            assert not _intersects(pair["chosen_spans"], *_site_in(chosen, origin, other))
            assert not _intersects(pair["rejected_spans"], *_site_in(rejected, origin, other))
    info = build_info(folder)
    assert info["verify"]["vectors"] == 200 and info["pairs"]["stats"]["mask_share"]["over"] == "signal pairs"
    assert 0 < info["pairs"]["stats"]["mask_share"]["chosen"] < 1


@requires_benchmarks
def test_verify_stage_resumes_from_stored_chunks(e2e, tmp_path):
    """Rows already judged before an interruption are kept as they are; only the rest is judged."""
    folder, _, _ = e2e
    rollouts = load_config(folder, "rollouts").to_list()
    tasks = load_config(folder, "tasks").to_list()
    save_config(load_config(folder, "tasks"), tmp_path, "tasks")
    from datasets import Dataset

    save_config(
        Dataset.from_list([{k: r[k] for k in ROLLOUT_FEATURES} for r in rollouts], features=ROLLOUT_FEATURES),
        tmp_path,
        "rollouts",
    )
    marked = {**rollouts[0], "verdict": {**rollouts[0]["verdict"], "detail": "judged before the kill"}}
    with work_store(tmp_path, "verify", lambda r: (r["task_id"], r["sample_index"])) as store:
        store.write([marked])
    again = verify_stage(tmp_path, VerifySettings(vectors=200), workers=1, progress=False).to_list()
    assert again[0] == marked and again[1:] == rollouts[1:]
    assert judge_rollouts([], {t["task_id"]: t for t in tasks}) == []


def test_verify_stage_on_local_ray(tmp_path):
    ray = pytest.importorskip("ray")
    _small_folder(tmp_path, [_wrap(M, 0), _wrap(M.replace("a + b", "a - b"), 1), "no code"])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        argv = ["verify", "--dataset", str(tmp_path), "--ray", "--chunk-size", "2", "--vectors", "100"]
        assert main([*argv, "--no-progress"]) == 0  # joins the test's local instance
        rollouts = load_config(tmp_path, "rollouts")
    finally:
        ray.shutdown()
    assert [r["verdict"]["status"] for r in rollouts] == ["ok", "ok", "no_code"]
    assert {s["name"]: s["correct"] for s in rollouts[1]["verdict"]["signals"]} == {"s": False, "c": True}
    [pair] = [p for p in pairs_stage(tmp_path, PairOptions(), progress=False) if p["kind"] == "signal"]
    assert pair["signals"] == ["s"]
    [[start, end]] = [
        span for span in pair["rejected_spans"] if "a - b" in pair["rejected"][span[0] : span[1]]
    ]
    assert "assign c" not in "".join(pair["rejected"][s:e] for s, e in pair["rejected_spans"])
    assert build_info(tmp_path)["verify"]["backend"] == "ray"


# Ray rewrites 127.0.0.1 and localhost to the machine's network address; other loopback addresses stay.
LOOPBACK = "127.0.0.2"


def _session(leader: int) -> list:
    """The processes of the session that `leader` started (Ray's workers leave its process group, not it)."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):  # read now: `info` stays valid after the process ends
        try:
            if os.getsid(process.pid) == leader:
                found.append(process)
        except (ProcessLookupError, psutil.Error):
            pass
    return found


def _kill_session(leader: int) -> None:
    import psutil

    for process in _session(leader):
        try:
            process.kill()
        except psutil.Error:
            pass


def _ray_start(options: list[str], log: Path, env: dict) -> subprocess.Popen:
    """`ray start --block` in a session of its own, once it says the node runs."""
    node = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--node-ip-address", LOOPBACK,
         "--num-cpus", "1", "--disable-usage-stats", *options],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            _kill_session(node.pid)
            raise AssertionError(f"ray start did not start a node:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return node


@pytest.fixture
def ray_cluster(tmp_path):
    """A head and a worker node (one CPU each) on a loopback address, with token authentication; every process
    of both is killed at the end, whatever the test did. Yields the address, the environment that reaches the
    cluster, and the worker node's `ray start` process."""
    pytest.importorskip("ray", reason="the Ray route needs Ray (pip install 'salv-trl[ray]')")
    with socket.socket() as free:
        free.bind((LOOPBACK, 0))
        port = free.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    nodes = []
    try:
        nodes.append(
            _ray_start(
                ["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp],
                tmp_path / "head.log",
                env,
            )
        )
        nodes.append(_ray_start(["--address", f"{LOOPBACK}:{port}"], tmp_path / "worker.log", env))
        yield f"{LOOPBACK}:{port}", env, nodes[1]
    finally:
        for node in nodes:
            _kill_session(node.pid)
            node.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow  # a Ray cluster starts
def test_verify_on_a_ray_cluster_survives_losing_a_worker_node(ray_cluster, tmp_path):
    """`salv-trl verify --dataset ... --ray ADDRESS` against a head and a worker node; the worker node is
    killed (every process of it, SIGKILL) while it judges a chunk. Ray runs the lost chunk again on the head,
    and the rollouts end with the verdicts and slices of the local run, none lost or duplicated."""
    address, env, worker = ray_cluster
    completions = [
        _wrap([M, M.replace("a + b", "a - b"), M.replace("a < b", "a > b")][i % 3], i) if i % 4 else "no code"
        for i in range(12)
    ]
    local, remote = tmp_path / "local", tmp_path / "remote"
    _small_folder(local, completions)
    _small_folder(remote, completions)
    options = ["--vectors", "100", "--no-progress"]
    assert main(["verify", "--dataset", str(local), "--workers", "1", *options]) == 0

    log = tmp_path / "verify.log"
    command = [sys.executable, "-m", "salv_trl.cli", "verify", "--dataset", str(remote), "--ray", address,
               "--chunk-size", "2", *options]  # fmt: skip
    run = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        # a Ray worker process runs a task as `ray::<function>`
        while not any((p.info["cmdline"] or [])[:1] == ["ray::_judge_chunk"] for p in _session(worker.pid)):
            assert run.poll() is None, (
                f"the run ended before the worker node judged a chunk:\n{log.read_text()}"
            )
            assert time.monotonic() < deadline, "the worker node judged no chunk in 120 s"
            time.sleep(0.05)
        _kill_session(worker.pid)
        assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        run.kill()
    assert "will be retried" in log.read_text()  # Ray's word that the worker's chunk was lost and run again
    assert load_config(remote, "rollouts").to_list() == load_config(local, "rollouts").to_list()
    assert build_info(remote)["verify"]["backend"] == "ray"


@requires_benchmarks
def test_pairs_cli_switches(e2e, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(e2e[0], folder)
    assert main(["pairs", str(folder), "--max-pairs-per-task", "3", "--no-interface", "--no-progress"]) == 0
    pairs = load_config(folder, "pairs").to_list()
    assert max(sum(p["task_id"] == t for p in pairs) for t in CHOSEN) == 3
    assert not any(
        "endmodule" in p["chosen"][s:e] for p in pairs if p["kind"] == "signal" for s, e in p["chosen_spans"]
    )
    assert build_info(folder)["pairs"]["include_interface"] is False
    assert main(["pairs", str(folder), "--mode", "module", "--no-progress"]) == 0
    module_pairs = load_config(folder, "pairs").to_list()
    assert {p["kind"] for p in module_pairs} == {"module"} and all(p["signals"] == [] for p in module_pairs)
    assert "| module |" in (folder / "README.md").read_text()


def test_verify_cli_dataset_route(tmp_path, capsys):
    _small_folder(tmp_path, [_wrap(M, 0), _wrap(M.replace("a < b", "a > b"), 1)])
    assert (
        main(["verify", "--dataset", str(tmp_path), "--vectors", "50", "--workers", "1", "--no-progress"])
        == 0
    )
    assert "ok: 2 (2 rollouts)" in capsys.readouterr().out
    verified = load_config(tmp_path, "rollouts")
    assert [s["correct"] for s in verified[1]["verdict"]["signals"]] == [True, False]
    assert main(["verify", "--vectors", "50"]) == 2  # neither files nor a dataset: a clear error
