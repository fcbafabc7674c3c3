"""Verification and slicing of rollouts: code extracted from each completion, judged output by output against
the task's reference, and each output's slice mapped to `[start, end)` character offsets into the completion.

Runs over all local cores ([`salv_trl.hdl.verify.verify_many`]) or, with [`judge_rollouts_ray`], as Ray tasks
across a cluster (extra `ray`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from datasets import Features, List, Value

from ..hdl.extract import extract_code
from ..hdl.formal import DEFAULT_DEPTH
from ..hdl.testbench import RESET_EVERY, STIMULUS
from ..hdl.verify import Judgement, ModuleVerdict, Status, VerifyJob, judge_many

__all__ = [
    "ROLLOUT_FEATURES",
    "VERIFIED_ROLLOUT_FEATURES",
    "VerifySettings",
    "judge_rollouts",
    "judge_rollouts_ray",
    "settings_counts",
    "verdict_from_row",
    "verdict_settings",
]

ROLLOUT_FEATURES = Features(
    {
        "task_id": Value("string"),
        "prompt": Value("string"),
        "completion": Value("string"),
        "sample_index": Value("int32"),
    }
)
_SPANS = List(List(Value("int64")))
VERIFIED_ROLLOUT_FEATURES = Features(
    {
        **ROLLOUT_FEATURES,
        # ModuleVerdict.to_dict()
        "verdict": {
            "status": Value("string"),
            "detail": Value("string"),
            "signals": List(
                {
                    "name": Value("string"),
                    "mismatches": Value("int64"),
                    "samples": Value("int64"),
                    "correct": Value("bool"),
                    "activity": Value("bool"),
                    "proof": Value("string"),
                    "depth": Value("int64"),
                    "reason": Value("string"),
                }
            ),
        },
        # Character offset of the extracted code in the completion; None when the completion has no code.
        "code_offset": Value("int64"),
        # Per-output slices of the judged module, as offsets into the completion (simulated rollouts only).
        "slices": List({"signal": Value("string"), "spans": _SPANS, "core_spans": _SPANS}),
        "slice_error": Value("string"),
        # The VerifySettings the verdict was made with ([`VerifySettings.to_json`]): a verdict is only valid
        # for its settings, so a re-run with other settings knows which rows to judge again.
        "verify_settings": Value("string"),
    }
)


@dataclass(frozen=True)
class VerifySettings:
    """How rollouts are judged; see [`salv_trl.hdl.verify.verify`]. Part of every verdict: each verified row
    stores the settings it was judged with ([`to_json`]), the card states them, and `salv-trl verify` judges
    again the rows whose settings differ from the requested ones. A new setting is one more field here: rows
    stored without it read as its default ([`from_json`]), so adding one re-judges nothing; `stimulus` is the
    exception, as what changes the stimulus must re-judge.

    Args:
        vectors (`int`, defaults to `1000`): Random input vectors (or clock cycles) per candidate, as in the
            paper.
        seed (`int`, defaults to `0`): Stimulus seed.
        simulator (`str`, defaults to `"icarus"`): `"icarus"` or `"verilator"`.
        timeout (`float`, defaults to `10.0`): Wall-clock seconds per simulator step and formal tool run.
        method (`str`, defaults to `"random"`): `"random"`, `"formal"` or `"both"` (formal refines random).
        reset_every (`int`, defaults to `RESET_EVERY`): A reset pulse in the middle cycle and on about one
            cycle in this many (0: only at the start).
        depth (`int`, defaults to `DEFAULT_DEPTH`): Formal: cycles of bounded model checking.
        stimulus (`int`, defaults to `STIMULUS`): The version of the random testbench's rules that made the
            verdicts: recorded, not chosen (the verifier runs the current rules), so that rows judged by older
            rules differ from the requested settings and are judged again. Records without it read 1.
    """

    vectors: int = 1000
    seed: int = 0
    simulator: str = "icarus"
    timeout: float = 10.0
    method: str = "random"
    reset_every: int = RESET_EVERY
    depth: int = DEFAULT_DEPTH
    stimulus: int = STIMULUS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """The settings as the canonical JSON text stored with each verdict (`verify_settings` column)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> VerifySettings | None:
        """Settings read back from [`to_dict`], the fields it lacks at their defaults (`stimulus` at 1: a
        record without it was made by the first rules); `None` when there is no record or it names a setting
        this version does not know (its verdicts cannot be trusted to match)."""
        try:
            return cls(**{"stimulus": 1, **data}) if data else None
        except TypeError:
            return None

    @classmethod
    def from_json(cls, text: str | None) -> VerifySettings | None:
        """[`from_dict`] of the JSON text [`to_json`] wrote."""
        return cls.from_dict(json.loads(text)) if text else None

    def describe(self) -> str:
        """One line for messages and the card, e.g. `vectors 1000, seed 0, simulator icarus, timeout 10.0`."""
        return ", ".join(f"{name} {value}" for name, value in self.to_dict().items())


def verdict_from_row(row: dict[str, Any]) -> ModuleVerdict:
    """The [`ModuleVerdict`] of a verified rollout row's `verdict` column."""
    return ModuleVerdict.from_dict(row["verdict"])


def settings_counts(
    rollouts: Sequence[dict],
    stored: Sequence[VerifySettings | None],
    *,
    other_than: VerifySettings | None = None,
) -> Counter:
    """Verified rollouts by the settings their verdicts were made with (described; `stored` from
    [`verdict_settings`]), leaving out those made with `other_than`."""
    return Counter(
        settings.describe() if settings else "settings not recorded"
        for row, settings in zip(rollouts, stored, strict=True)
        if row.get("verdict") is not None and (other_than is None or settings != other_than)
    )


def verdict_settings(
    rollouts: Sequence[dict], recorded: dict[str, Any] | None = None
) -> list[VerifySettings | None]:
    """The settings each rollout's verdict was made with: its `verify_settings`, or, for rows verified before
    that column existed, the settings `recorded` for the folder's verify stage; `None` for an unverified row
    or settings this version cannot read.

    Args:
        rollouts (`Sequence[dict]`): Rollout rows (columns `verdict` and, where present, `verify_settings`).
        recorded (`dict`, *optional*): The folder's build record of its verify stage (extra keys such as
            `backend` are ignored).
    """
    fallback = VerifySettings.from_dict({k: v for k, v in (recorded or {}).items() if k != "backend"})
    return [
        None
        if row.get("verdict") is None
        else VerifySettings.from_json(row["verify_settings"])
        if row.get("verify_settings")
        else fallback
        for row in rollouts
    ]


def _slice_rows(judgement: Judgement, offset: int) -> list[dict]:
    """A judgement's slices as dataset rows, with spans shifted from the code to the completion."""
    shift = lambda spans: [[offset + start, offset + end] for start, end in spans]  # noqa: E731
    return [
        {"signal": name, "spans": shift(s.spans), "core_spans": shift(s.core_spans)}
        for name, s in judgement.slices.items()
    ]


def _check_tasks(rollouts: Sequence[dict], tasks: dict[str, dict]) -> None:
    missing = sorted({r["task_id"] for r in rollouts} - set(tasks))
    if missing:
        raise ValueError(f"rollouts of unknown task(s): {', '.join(missing[:5])}")


def judge_rollouts(
    rollouts: Sequence[dict],
    tasks: dict[str, dict],
    settings: VerifySettings | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Verify and slice rollouts; returns the rows with `verdict`, `code_offset`, `slices`, `slice_error`
    added.

    Args:
        rollouts (`Sequence[dict]`): Rollout rows (`task_id`, `prompt`, `completion`, `sample_index`).
        tasks (`dict[str, dict]`): Task rows by `task_id` (`reference`, `testbench`, `top`).
        settings ([`VerifySettings`], *optional*): Simulation settings.
        workers (`int`, *optional*): Verification processes (all cores by default).
        progress (`bool`, defaults to `True`): Show a progress bar.

    Returns:
        `list[dict]`: verified rows, in input order. Completions without code get status `no_code`; slices are
        computed for simulated (`ok`) rollouts only, the only ones that give signal pairs.
    """
    settings = settings or VerifySettings()
    _check_tasks(rollouts, tasks)
    extracted = [extract_code(r["completion"]) for r in rollouts]
    jobs, job_rows = [], []
    for index, (row, code) in enumerate(zip(rollouts, extracted, strict=True)):
        if code is not None:
            task = tasks[row["task_id"]]
            jobs.append(
                VerifyJob(
                    code.code,
                    task["reference"],
                    task.get("testbench"),
                    task.get("top"),
                    settings.vectors,
                    settings.seed,
                    settings.simulator,
                    settings.method,
                    settings.reset_every,
                    settings.depth,
                )
            )
            job_rows.append(index)
    judged = [Judgement(ModuleVerdict(Status.no_code, detail="no code in the completion"))] * len(rollouts)
    for index, judgement in zip(
        job_rows,
        judge_many(jobs, workers=workers, progress=progress, timeout=settings.timeout) if jobs else [],
        strict=True,
    ):
        judged[index] = judgement
    return [
        {
            **row,
            "verdict": judgement.verdict.to_dict(),
            "code_offset": None if code is None else code.offset,
            "slices": [] if code is None else _slice_rows(judgement, code.offset),
            "slice_error": judgement.slice_error,
            "verify_settings": settings.to_json(),
        }
        for row, code, judgement in zip(rollouts, extracted, judged, strict=True)
    ]


def judge_rollouts_ray(
    rollouts: Sequence[dict],
    tasks: dict[str, dict],
    settings: VerifySettings | None = None,
    *,
    chunk_size: int = 64,
    num_cpus: float = 1,
) -> Iterator[list[dict]]:
    """[`judge_rollouts`] as Ray tasks (one per chunk, one core each) on the connected Ray cluster.

    Call `ray.init(address=...)` first (or let Ray start a local instance). Each worker node needs salv-trl
    and the simulator installed. Yields each chunk's verified rows as soon as it finishes (in completion
    order), so the caller can store them and a re-run does not redo them.
    """
    try:
        import ray
    except ImportError as error:
        raise ValueError("the Ray route needs Ray: pip install 'salv-trl[ray]'") from error

    settings = settings or VerifySettings()
    _check_tasks(rollouts, tasks)
    remote = ray.remote(num_cpus=num_cpus)(_judge_chunk)
    pending = []
    for start in range(0, len(rollouts), chunk_size):
        chunk = list(rollouts[start : start + chunk_size])
        chunk_tasks = {r["task_id"]: tasks[r["task_id"]] for r in chunk}
        pending.append(remote.remote(chunk, chunk_tasks, settings))
    while pending:
        finished, pending = ray.wait(pending, num_returns=1)
        yield ray.get(finished[0])


def _judge_chunk(rollouts: list[dict], tasks: dict[str, dict], settings: VerifySettings) -> list[dict]:
    return judge_rollouts(rollouts, tasks, settings, workers=1, progress=False)
