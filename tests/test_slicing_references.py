"""Slices of every benchmark reference design: non-empty, parseable, and simulating like the original."""

from __future__ import annotations

import shutil

import pytest
from conftest import ICARUS_CANNOT_SIMULATE, reference_designs, requires_benchmarks

from salv_trl.hdl.parse import parse
from salv_trl.hdl.slicing import slice_signals

# References that Icarus Verilog 11 cannot compile on their own: the slice can't be simulated either.
ICARUS_LIMITATIONS = {
    name: "Icarus 11: 'sorry: This cast operation is not yet supported'" for name in ICARUS_CANNOT_SIMULATE
}


@requires_benchmarks
def test_every_output_gets_a_slice_that_parses():
    failures, outputs = [], 0
    for design in reference_designs():
        original = parse(design.text, top=design.top)
        slices = slice_signals(design.text, top=design.top)
        assert list(slices) == [port.name for port in original.interface.outputs], design.name
        for output, piece in slices.items():
            outputs += 1
            undriven = any("never driven" in warning for warning in piece.warnings)
            rendered = parse(piece.render(), top=design.top)
            if not piece.spans or not (piece.core_spans or undriven):
                failures.append((design.name, output, "empty slice"))
            elif rendered.errors:
                failures.append((design.name, output, [str(error) for error in rendered.errors[:2]]))
            elif rendered.interface.ports != original.interface.ports:
                failures.append((design.name, output, "interface changed"))
    print(f"{outputs} outputs of {len(reference_designs())} reference designs sliced")
    assert not failures, failures


@requires_benchmarks
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not installed")
def test_every_rendered_slice_simulates_like_the_reference():
    from salv_trl.hdl.verify import VerifyJob, verify_many

    jobs, keys = [], []
    for design in reference_designs():
        for output, piece in slice_signals(design.text, top=design.top).items():
            jobs.append(VerifyJob(piece.render(), design.text, top=design.top, vectors=300, seed=1))
            keys.append((design.name, output))
    verdicts = verify_many(jobs, workers=2, progress=False, batch_size=32)
    failures, skipped = [], []
    for (name, output), verdict in zip(keys, verdicts, strict=True):
        signal = verdict.signals.get(output) if verdict.status.value == "ok" else None
        # No mismatch on any sample (an output the stimulus never moves is `untested`, not `correct`).
        if signal is not None and signal.samples and not signal.mismatches:
            continue
        if name in ICARUS_LIMITATIONS and "sorry:" in verdict.detail:
            skipped.append((name, output))
        else:
            failures.append(
                (name, output, verdict.status.value, verdict.signals.get(output), verdict.detail[:300])
            )
    print(
        f"{len(jobs) - len(skipped) - len(failures)} of {len(jobs)} output slices simulate identically; "
        f"{len(skipped)} skipped ({len({name for name, _ in skipped})} references Icarus 11 cannot compile: "
        f"{sorted({name for name, _ in skipped})})"
    )
    assert not failures, failures
