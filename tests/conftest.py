"""Shared fixtures. Tests never touch the network, and read benchmarks from ../shared/benchmarks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
NO_BENCHMARKS = (
    f"benchmark checkout not found at {BENCHMARKS} (expected ../shared/benchmarks beside the project)"
)


@dataclass(frozen=True)
class ReferenceDesign:
    """One benchmark reference module: `top` is None where the file's own top must be inferred."""

    name: str
    path: Path
    top: str | None

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace")


def reference_designs() -> list[ReferenceDesign]:
    """Every reference design in ../shared/benchmarks: VerilogEval v2 `*_ref.sv`, RTLLM `verified_*.v`."""
    if not BENCHMARKS.is_dir():
        return []
    designs = [
        ReferenceDesign(f"ve2/{p.name.removesuffix('_ref.sv')}", p, "RefModule")
        for p in sorted((BENCHMARKS / "verilog-eval-v2" / "dataset_spec-to-rtl").glob("*_ref.sv"))
    ]
    for suite in ("RTLLM-v1.1", "RTLLM-v2.0"):
        designs += [
            ReferenceDesign(f"{suite}/{p.parent.name}", p, None)
            for p in sorted((BENCHMARKS / suite).rglob("verified_*.v"))
        ]
    return designs


# References that Icarus Verilog 11 cannot compile: "sorry: This cast operation is not yet supported".
ICARUS_CANNOT_SIMULATE = frozenset({"ve2/Prob151_review2015_fsm", "ve2/Prob156_review2015_fancytimer"})


def simulatable_designs() -> list[ReferenceDesign]:
    """[`reference_designs`] without the ones Icarus cannot simulate."""
    return [design for design in reference_designs() if design.name not in ICARUS_CANNOT_SIMULATE]


requires_benchmarks = pytest.mark.skipif(not BENCHMARKS.is_dir(), reason=NO_BENCHMARKS)


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    if not BENCHMARKS.is_dir():
        pytest.skip(NO_BENCHMARKS)
    return BENCHMARKS
