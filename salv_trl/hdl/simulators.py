"""Simulator back ends behind one interface: compile a set of sources in a [`Sandbox`], then run the result.

- `icarus` (default, required): `iverilog -g2012` + `vvp -n`, the flow of VerilogEval and of the original
  release.
- `verilator`: `verilator --binary --timing` (Verilator 5), then the built executable. Slower to compile, and
  it rejects some constructs Icarus accepts; offered where a second opinion is wanted.

[`simulate`] is the one-call route used by [`salv_trl.hdl.verify`] and by the evaluation harness.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .sandbox import Sandbox, SandboxLimits, SandboxResult

__all__ = ["Simulator", "Icarus", "Verilator", "Simulation", "get_simulator", "simulate", "SIMULATORS"]


class Simulator:
    """A simulator back end: `compile` sources in a sandbox, then `run` what was built there."""

    name: str = ""
    executables: tuple[str, ...] = ()

    def available(self) -> bool:
        """Whether the simulator's executables are on `PATH`."""
        return all(shutil.which(exe) for exe in self.executables)

    def compile(
        self, box: Sandbox, sources: Sequence[str], top: str | None, timeout: float, flags: Sequence[str] = ()
    ) -> SandboxResult:
        """Compile the files `sources` (names inside `box`) with root module `top` (None: all roots)."""
        raise NotImplementedError

    def run(self, box: Sandbox, timeout: float, idle_timeout: float | None = None) -> SandboxResult:
        """Run what the last [`compile`] built in `box` (timeouts as in [`Sandbox.run`])."""
        raise NotImplementedError


class Icarus(Simulator):
    """Icarus Verilog: `iverilog -g2012 -o sim.vvp [-s top] [flags] sources`, then `vvp -n sim.vvp`."""

    name = "icarus"
    executables = ("iverilog", "vvp")

    def compile(self, box, sources, top, timeout, flags=()):
        argv = ["iverilog", "-g2012", *flags, "-o", "sim.vvp"] + (["-s", top] if top else []) + list(sources)
        return box.run(argv, timeout)

    def run(self, box, timeout, idle_timeout=None):
        return box.run(["vvp", "-n", "sim.vvp"], timeout, idle_timeout=idle_timeout)


class Verilator(Simulator):
    """Verilator 5: `verilator --binary --timing` builds an executable that is then run."""

    name = "verilator"
    executables = ("verilator",)

    def compile(self, box, sources, top, timeout, flags=()):
        argv = (
            [
                "verilator",
                "--binary",
                "--timing",
                "-j",
                "1",
                "-Wno-fatal",
                "-Wno-lint",
                "-Wno-style",
                "--Mdir",
                "obj",
                "-o",
                "sim",
                *flags,
            ]
            + (["--top-module", top] if top else [])
            + list(sources)
        )
        return box.run(argv, timeout)

    def run(self, box, timeout, idle_timeout=None):
        return box.run(["./obj/sim"], timeout, idle_timeout=idle_timeout)


SIMULATORS: dict[str, type[Simulator]] = {"icarus": Icarus, "verilator": Verilator}


_FOUND: dict[str, Simulator] = {}  # back ends found on PATH (a missing one is looked for again on each call)


def get_simulator(name: str | Simulator) -> Simulator:
    """The back end called `name` (`"icarus"` or `"verilator"`); ValueError for others or when missing."""
    if isinstance(name, Simulator):
        return name
    if name in _FOUND:
        return _FOUND[name]
    if name not in SIMULATORS:
        raise ValueError(f"unknown simulator {name!r}; choose one of {sorted(SIMULATORS)}")
    simulator = SIMULATORS[name]()
    if not simulator.available():
        raise ValueError(f"simulator {name!r} needs {', '.join(simulator.executables)} on PATH")
    _FOUND[name] = simulator
    return simulator


@dataclass
class Simulation:
    """Result of [`simulate`]: the compile step, and the run step when compiling succeeded."""

    compile: SandboxResult
    run: SandboxResult | None

    @property
    def compiled(self) -> bool:
        return self.compile.ok

    @property
    def output(self) -> str:
        """What the simulation printed (stdout then stderr); empty when it did not run."""
        return "" if self.run is None else self.run.stdout + self.run.stderr


def simulate(
    sources: Mapping[str, str],
    *,
    top: str | None = None,
    simulator: str | Simulator = "icarus",
    flags: Sequence[str] = (),
    compile_timeout: float = 60.0,
    run_timeout: float = 30.0,
    run_idle_timeout: float | None = None,
    limits: SandboxLimits | None = None,
) -> Simulation:
    """Compile and run `sources` (file name -> text) in a fresh sandbox that is removed afterwards.

    Example:
    ```python
    >>> sim = simulate({"tb.v": 'module tb; initial $display("hi"); endmodule'})
    >>> sim.compiled, sim.run.stdout.strip()
    (True, 'hi')

    ```
    """
    backend = get_simulator(simulator)
    with Sandbox(sources, limits) as box:
        built = backend.compile(box, list(sources), top, compile_timeout, flags)
        return Simulation(built, backend.run(box, run_timeout, run_idle_timeout) if built.ok else None)
