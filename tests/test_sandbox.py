"""The sandbox: limits, timeouts that kill the whole process group, output cap, cleanup, no network; the
screen."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from salv_trl.hdl.sandbox import Sandbox, SandboxLimits, network_isolated, run_sandboxed
from salv_trl.hdl.screen import screen
from salv_trl.hdl.simulators import get_simulator, simulate


def _alive(marker: str) -> bool:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return bool(found.stdout.strip())


def test_runs_in_a_fresh_directory_that_is_removed():
    with Sandbox({"a.txt": "hello"}) as box:
        result = box.run(["sh", "-c", "cat a.txt; pwd; echo out > b.txt"], timeout=10)
        path = box.path
        assert (path / "b.txt").read_text() == "out\n"
    assert result.ok and result.stdout.startswith("hello") and str(path) in result.stdout
    assert not path.exists()


def test_timeout_kills_the_whole_process_group():
    marker = f"sleep 77.{os.getpid()}"  # a unique command line to look for afterwards
    start = time.monotonic()
    result = run_sandboxed(["sh", "-c", f"{marker} & {marker}"], timeout=1)
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - start < 5
    time.sleep(0.2)
    assert not _alive(marker)


def test_background_children_do_not_survive_a_normal_exit():
    marker = f"sleep 78.{os.getpid()}"
    result = run_sandboxed(["sh", "-c", f"{marker} > /dev/null 2>&1 & echo started"], timeout=5)
    assert result.stdout.strip() == "started"
    time.sleep(0.2)
    assert not _alive(marker)


def test_output_flood_is_capped_and_killed():
    result = run_sandboxed(["yes"], timeout=20, limits=SandboxLimits(output_bytes=100_000))
    assert result.output_exceeded and len(result.stdout) <= 100_000
    assert result.elapsed < 10


def test_file_size_and_memory_limits():
    limits = SandboxLimits(file_bytes=1 << 20, memory_bytes=256 << 20)
    big = run_sandboxed(["sh", "-c", "head -c 5000000 /dev/zero > f; wc -c < f"], timeout=10, limits=limits)
    assert int(big.stdout.split()[-1]) <= 1 << 20
    hog = run_sandboxed(["python3", "-c", "x = bytearray(1 << 30)"], timeout=10, limits=limits)
    assert hog.returncode != 0 and "MemoryError" in hog.stderr


@pytest.mark.skipif(not network_isolated(), reason="this host does not allow a new network namespace")
def test_no_network():
    result = run_sandboxed(["cat", "/proc/net/dev"], timeout=10)
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines()[2:]]
    assert interfaces == ["lo"]


def test_sandbox_rejects_paths_as_file_names():
    with pytest.raises(ValueError):
        Sandbox({"../escape.v": "x"})


def test_icarus_compile_and_run():
    sim = simulate({"tb.v": 'module tb; initial $display("hi %0d", 6 * 7); endmodule'})
    assert sim.compiled and sim.run.stdout.strip() == "hi 42"
    broken = simulate({"tb.v": "module tb; initial begin x = ; end endmodule"})
    assert not broken.compiled and broken.run is None and "syntax error" in broken.compile.stderr


def test_unknown_simulator_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown simulator"):
        get_simulator("modelsim")


@pytest.mark.parametrize(
    "text, refused",
    [
        ('module m; initial $display("$system and $fopen are only words here"); endmodule', None),
        ("module m; // $system('rm -rf /')\n /* $fopen */ endmodule", None),
        ('module m; initial $system("touch /tmp/x"); endmodule', "$system"),
        ('module m; integer f; initial f = $fopen("/etc/passwd", "r"); endmodule', "$fopen"),
        ('module m; reg [7:0] r [0:3]; initial $readmemh("/etc/hosts", r); endmodule', "$readmemh"),
        ('module m; initial begin $dumpfile("/tmp/w.vcd"); $dumpvars; end endmodule', "$dumpfile"),
        ("module m; initial $finish; endmodule", "$finish"),
        ('`include "/etc/passwd"\nmodule m; endmodule', "`include"),
        ("`define F(a) $fo``a\nmodule m; endmodule", "pasting"),
        ('import "DPI-C" function int system(string s);\nmodule m; endmodule', "foreign import"),
        ("module m; initial $root.tb.x = 1; endmodule", "$root"),
        ("`define W 8\nmodule m(output [`W-1:0] y); assign y = 0; endmodule", None),
        ("module m; endmodule\0", "NUL"),
    ],
)
def test_screen(text, refused):
    reason = screen(text)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_screen_refuses_huge_text():
    assert "too large" in screen("module m; endmodule\n" * 100_000, max_chars=1_000_000)
