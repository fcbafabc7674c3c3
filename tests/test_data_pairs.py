"""Pair construction on verdict dicts: contrast signals, spans, and every documented switch."""

from __future__ import annotations

import pytest

from salv_trl.data.pairs import PairOptions, build_pairs, mask_share, merge_spans


def _rollout(index, status, signals=None, slices=None, completion=None, task="t"):
    completion = completion if completion is not None else f"completion {index} " + "x" * 40
    return {
        "task_id": task,
        "prompt": "Write it.",
        "completion": completion,
        "sample_index": index,
        "verdict": {
            "status": status,
            "detail": "",
            "signals": [
                {"name": n, "mismatches": 0 if ok else 3, "samples": 10, "correct": ok}
                for n, ok in (signals or {}).items()
            ],
        },
        "code_offset": 0 if status != "no_code" else None,
        "slices": slices
        if slices is not None
        else [
            # y's slice at [10, 20), z's at [20, 30); the interface [0, 5) is in spans only.
            {"signal": "y", "spans": [[0, 5], [10, 20]], "core_spans": [[10, 20]]},
            {"signal": "z", "spans": [[0, 5], [20, 30]], "core_spans": [[20, 30]]},
        ],
        "slice_error": None,
        "verify_settings": None,
    }


ROLLOUTS = [
    _rollout(0, "ok", {"y": True, "z": True}),  # fully correct
    _rollout(1, "ok", {"y": True, "z": False}),  # z wrong
    _rollout(2, "ok", {"y": False, "z": False}),  # both wrong
    _rollout(3, "compile_error"),
    _rollout(4, "timeout"),
    _rollout(5, "no_code", slices=[], completion="I cannot write Verilog."),
]


def _key(pair):
    return pair["chosen"].split()[1], pair["rejected"].split()[1], tuple(pair["signals"]), pair["kind"]


def test_signal_pairs_are_all_ordered_contrasts():
    pairs = build_pairs(ROLLOUTS)
    assert sorted(map(_key, pairs)) == sorted(
        [
            ("0", "1", ("z",), "signal"),
            ("0", "2", ("y", "z"), "signal"),
            ("1", "2", ("y",), "signal"),
            ("0", "cannot", (), "no_code"),
        ]
    )
    by_key = {_key(p): p for p in pairs}
    assert by_key["0", "1", ("z",), "signal"]["chosen_spans"] == [[0, 5], [20, 30]]
    assert by_key["0", "2", ("y", "z"), "signal"]["rejected_spans"] == [[0, 5], [10, 30]]  # union, merged
    no_code = by_key["0", "cannot", (), "no_code"]
    assert no_code["rejected_spans"] == [[0, len("I cannot write Verilog.")]]
    assert no_code["chosen_spans"] == [[0, len(ROLLOUTS[0]["completion"])]]
    # Compile errors and timeouts never appear.
    assert not any("completion 3" in p["rejected"] or "completion 4" in p["rejected"] for p in pairs)


def test_interface_switch_and_no_masks():
    pairs = build_pairs(ROLLOUTS, PairOptions(include_interface=False, no_code_pairs=False))
    assert {tuple(map(tuple, p["chosen_spans"])) for p in pairs} == {((20, 30),), ((10, 30),), ((10, 20),)}
    unmasked = build_pairs(ROLLOUTS, PairOptions(masks=False, no_code_pairs=False))
    assert len(unmasked) == 3 and all(p["chosen_spans"] == [[0, len(p["chosen"])]] for p in unmasked)
    assert all(p["signals"] for p in unmasked)


def test_missing_slice_drop_or_whole():
    rollouts = [ROLLOUTS[0], {**ROLLOUTS[1], "slices": [], "slice_error": "slicer failed"}]
    assert build_pairs(rollouts, PairOptions(missing_slice="drop")) == []
    [pair] = build_pairs(rollouts, PairOptions(missing_slice="whole"))
    assert pair["chosen_spans"] == [[0, 5], [20, 30]] and pair["rejected_spans"] == [
        [0, len(pair["rejected"])]
    ]


def test_module_mode_ablation():
    pairs = build_pairs(ROLLOUTS, PairOptions(mode="module"))
    assert sorted(p["rejected"].split()[1] for p in pairs) == ["1", "2", "3", "4", "cannot"]
    assert all(p["kind"] == "module" and p["chosen"] == ROLLOUTS[0]["completion"] for p in pairs)
    assert all(p["rejected_spans"] == [[0, len(p["rejected"])]] for p in pairs)


def test_not_simulated_samples_are_rejected_against_fully_correct_ones_only_when_asked():
    default = build_pairs(ROLLOUTS)
    asked = build_pairs(ROLLOUTS, PairOptions(not_simulated_pairs=True))
    extra = [p for p in asked if p not in default]
    # the compile error (3) and the timeout (4) against the fully correct 0, over whole sequences
    assert sorted(_key(p) for p in extra) == [
        ("0", "3", (), "not_simulated"),
        ("0", "4", (), "not_simulated"),
    ]
    assert all(p["rejected_spans"] == [[0, len(p["rejected"])]] for p in extra)
    assert "not_simulated" not in {p["kind"] for p in default}  # the paper's default: no such pairs
    # without a fully correct sample, nothing is rejected whole
    assert {p["kind"] for p in build_pairs(ROLLOUTS[1:], PairOptions(not_simulated_pairs=True))} == {"signal"}


def test_duplicates_max_pairs_and_tasks():
    duplicate = {**ROLLOUTS[1], "sample_index": 9}
    other_task = [{**r, "task_id": "u"} for r in ROLLOUTS[:3]]
    rollouts = ROLLOUTS + [duplicate] + other_task
    assert len(build_pairs(rollouts)) == 4 + 3
    assert (
        len(build_pairs(rollouts, PairOptions(drop_duplicates=False))) == 4 + 2 + 3
    )  # the duplicate of 1 is chosen against 2 and rejected against 0
    capped = build_pairs(rollouts, PairOptions(max_pairs_per_task=2))
    assert [p["task_id"] for p in capped] == ["t", "t", "u", "u"]
    assert capped == build_pairs(rollouts, PairOptions(max_pairs_per_task=2))  # seeded
    assert build_pairs([{**r, "verdict": None} for r in ROLLOUTS]) == []  # unverified rows are skipped


def test_options_validate():
    with pytest.raises(ValueError):
        PairOptions(mode="token")
    with pytest.raises(ValueError):
        PairOptions(missing_slice="ignore")
    with pytest.raises(ValueError):
        PairOptions(max_pairs_per_task=0)


def test_merge_spans_and_mask_share():
    assert merge_spans([[5, 8], [0, 2], [2, 3], [7, 9], [4, 4]]) == [[0, 3], [5, 9]]
    pair = {"chosen": "abcdefghij", "rejected": "abcde", "chosen_spans": [[0, 5]], "rejected_spans": []}
    share = mask_share([pair])
    assert share == {"unit": "characters", "chosen": 0.5, "rejected": 0.0}

    from salv_trl.tiny import train_tokenizer

    tokenizer = train_tokenizer(["abcde fghij"] * 10, vocab_size=300)
    tokens = mask_share([pair], tokenizer)
    assert tokens["unit"].startswith("tokens") and 0 < tokens["chosen"] < 1 and tokens["rejected"] == 0


def test_pairs_stage_without_pairs_writes_an_empty_config(tmp_path):
    from datasets import Dataset

    from salv_trl.data.hub import load_config, save_config
    from salv_trl.data.pairs import PAIR_FEATURES
    from salv_trl.data.rollouts import VERIFIED_ROLLOUT_FEATURES
    from salv_trl.data.stages import pairs_stage

    rollouts = [ROLLOUTS[3], ROLLOUTS[5]]  # a compile error and a completion without code: nothing to pair
    save_config(Dataset.from_list(rollouts, features=VERIFIED_ROLLOUT_FEATURES), tmp_path, "rollouts")
    assert len(pairs_stage(tmp_path, PairOptions(), progress=False)) == 0
    empty = load_config(tmp_path, "pairs")
    assert len(empty) == 0 and empty.features == PAIR_FEATURES
    assert "0 pairs from 0 tasks" in (tmp_path / "README.md").read_text()


def _with(rollout, name, **fields):
    """`rollout` with output `name`'s verdict fields replaced (coverage, formal proof)."""
    signals = [{**s, **fields} if s["name"] == name else s for s in rollout["verdict"]["signals"]]
    return {**rollout, "verdict": {**rollout["verdict"], "signals": signals}}


def test_an_untested_output_is_never_a_contrast_signal():
    # z is untested in rollout 1 (no mismatch, the reference's z never moved): not a contrast against 0.
    untested = _with(ROLLOUTS[1], "z", mismatches=0, correct=False, activity=False)
    pairs = build_pairs([ROLLOUTS[0], untested, ROLLOUTS[2]])
    assert ("0", "1", ("z",), "signal") not in map(_key, pairs)
    assert ("1", "2", ("y",), "signal") in map(_key, pairs)


def test_require_proof_keeps_only_contrasts_formal_agrees_with():
    proved = _with(_with(ROLLOUTS[0], "z", proof="proved"), "y", proof="proved")
    refuted = _with(ROLLOUTS[1], "z", proof="counterexample", depth=3)
    unproved = _with(ROLLOUTS[2], "z", proof="unknown", reason="timeout")
    rollouts = [proved, refuted, unproved]
    assert sorted(map(_key, build_pairs(rollouts, PairOptions(require_proof=True)))) == [
        ("0", "1", ("z",), "signal")
    ]
    assert len(build_pairs(rollouts)) > 1  # without the option, simulation's contrasts count too
    module = build_pairs(rollouts, PairOptions(mode="module", require_proof=True))
    assert sorted(map(_key, module)) == [("0", "1", (), "module")]
