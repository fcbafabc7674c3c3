"""The sandbox: limits, timeouts that kill the whole process group, output cap, cleanup, no network; the
screen."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salv_trl.hdl import sandbox
from salv_trl.hdl.sandbox import (
    INSIDE,
    UNSAFE_ENV,
    IsolationError,
    Sandbox,
    SandboxLimits,
    clean_leftovers,
    run_sandboxed,
)
from salv_trl.hdl.screen import screen
from salv_trl.hdl.simulators import get_simulator, simulate

ROOT = Path(__file__).resolve().parents[1]


def _alive(marker: str) -> bool:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return bool(found.stdout.strip())


def test_runs_in_a_fresh_folder_that_is_removed():
    with Sandbox({"a.txt": "hello\n"}) as box:
        result = box.run(["sh", "-c", "cat a.txt; pwd; echo out > b.txt"], timeout=10)
        path = box.path
        assert (path / "b.txt").read_text() == "out\n"
    assert result.ok and result.stdout.split() == ["hello", INSIDE]
    assert not path.exists()


def test_identical_files_are_one_inode_and_a_write_replaces_never_writes_through(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("host\n")
    with Sandbox({"a.v": "`resetall\n", "b.v": "module b; endmodule\n", "c.v": "`resetall\n"}) as box:
        a, b, c = (os.stat(box.path / name) for name in ("a.v", "b.v", "c.v"))
        assert a.st_ino == c.st_ino != b.st_ino and a.st_nlink == 2
        box.write("c.v", "changed\n")  # the other name of the inode keeps its content
        assert (box.path / "a.v").read_text() == "`resetall\n"
        assert (box.path / "c.v").read_text() == "changed\n"
        # a link that a sandboxed command could leave is replaced, not followed out of the folder
        (box.path / "d.v").symlink_to(outside)
        box.write("d.v", "mine\n")
        assert not (box.path / "d.v").is_symlink()
        result = box.run(["sh", "-c", "cat a.v b.v c.v d.v"], timeout=10)
    assert outside.read_text() == "host\n"
    assert result.stdout == "`resetall\nmodule b; endmodule\nchanged\nmine\n"


def test_timeout_kills_the_whole_process_tree():
    marker = f"sleep 77.{os.getpid()}"  # a unique command line to look for afterwards
    start = time.monotonic()
    result = run_sandboxed(["sh", "-c", f"{marker} & {marker}"], timeout=1)
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - start < 5
    time.sleep(0.2)
    assert not _alive(marker)


def test_background_children_do_not_survive_a_normal_exit():
    marker = f"sleep 78.{os.getpid()}"
    result = run_sandboxed(["sh", "-c", f"setsid {marker} > /dev/null 2>&1 & echo started"], timeout=5)
    assert result.stdout.strip() == "started"
    time.sleep(0.2)
    assert not _alive(marker)


def test_output_flood_is_capped_and_killed():
    result = run_sandboxed(["yes"], timeout=20, limits=SandboxLimits(output_bytes=100_000))
    assert result.output_exceeded and len(result.stdout) <= 100_000
    assert result.elapsed < 10


def test_file_size_cpu_and_memory_limits():
    limits = SandboxLimits(file_bytes=1 << 20, memory_bytes=256 << 20, cpu_seconds=1)
    big = run_sandboxed(["sh", "-c", "head -c 5000000 /dev/zero > f; wc -c < f"], timeout=10, limits=limits)
    assert int(big.stdout.split()[-1]) <= 1 << 20
    hog = run_sandboxed(["python3", "-c", "x = bytearray(1 << 30)"], timeout=10, limits=limits)
    assert hog.returncode != 0 and "MemoryError" in hog.stderr
    spin = run_sandboxed(["sh", "-c", "while :; do :; done"], timeout=20, limits=limits)
    assert spin.returncode in (-signal.SIGXCPU, -signal.SIGKILL) and spin.elapsed < 10


def test_no_network():
    result = run_sandboxed(["cat", "/proc/net/dev"], timeout=10)
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines()[2:]]
    assert interfaces == ["lo"]


def test_an_unprivileged_user_that_sees_only_its_own_processes():
    result = run_sandboxed(["sh", "-c", "id -u; ls /proc | grep -c '^[0-9]'"], timeout=10)
    uid, processes = result.stdout.split()
    assert uid != "0" and int(processes) <= 4  # bwrap's init, sh, ls, grep


def test_host_files_are_out_of_sight_and_out_of_reach(tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret.txt").write_text("host secret 4711")
    script = (
        f"cat {canary}/secret.txt; cat {ROOT}/setup.cfg; ls /root /home /etc /tmp; "
        f"echo x > {canary}/written; echo x > /usr/written; echo x > ../../written; echo x > /tmp/written; "
        "echo $TMPDIR $HOME"
    )
    result = run_sandboxed(["sh", "-c", script], timeout=10)
    assert "4711" not in result.stdout and "[metadata]" not in result.stdout
    assert result.stdout.split() == [INSIDE, INSIDE]  # TMPDIR and HOME inside; nothing else was listed
    assert sorted(p.name for p in canary.iterdir()) == ["secret.txt"]
    assert not Path("/usr/written").exists() and not Path("/tmp/written").exists()


def test_one_sandbox_cannot_reach_another_through_proc():
    with Sandbox({"own.txt": "first box"}) as first, Sandbox() as second:
        sleeper = subprocess.Popen(
            ["python3", "-c", "import sys, time; time.sleep(5)"], stdout=subprocess.PIPE
        )  # a host process with an open pipe, as a neighbour's simulator would have
        try:
            attack = (
                f"cat /proc/{sleeper.pid}/cmdline; echo forged > /proc/{sleeper.pid}/fd/1; "
                f"cat /proc/*/cwd/own.txt; cat {first.path}/own.txt"
            )
            result = second.run(["sh", "-c", attack], timeout=10)
        finally:
            sleeper.kill()
            out, _ = sleeper.communicate()
        assert "first box" not in result.stdout and "sleep" not in result.stdout
        assert b"forged" not in out


def test_leftovers_of_a_killed_process_are_removed_at_the_next_start(monkeypatch):
    # A root of their own beside the usual one (which the sandbox's uid can reach): in the shared one any
    # other salv-trl process may clean first.
    sandbox.require_isolation()  # probed once, in this process's usual folder
    root = sandbox._root().with_name(f"salv-trl-test-{os.getpid()}-{time.time_ns()}")
    code = (
        "import os, signal, pathlib; from salv_trl.hdl import sandbox; "
        f"sandbox._root = lambda: pathlib.Path({str(root)!r}); "
        "box = sandbox.Sandbox({'a.v': 'x'}); print(box.path, flush=True); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    monkeypatch.setattr(sandbox, "_root", lambda: root)
    monkeypatch.setattr(sandbox, "_owned", None)
    try:
        # This process's folder exists first (its own first use cleans too), and a live sandbox of it is
        # never taken for a leftover.
        with Sandbox():
            killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            left = Path(killed.stdout.strip())
            assert killed.returncode == -signal.SIGKILL and left.is_dir()  # SIGKILL leaves the folder behind
            assert left.parents[1] == root
            removed = clean_leftovers(root)
            assert removed == [left.parent] and not left.exists()
            assert not clean_leftovers(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_no_isolation_is_refused_unless_the_user_opts_out(monkeypatch):
    monkeypatch.setattr(sandbox, "isolation_problem", lambda: "bwrap not found on PATH")
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    with pytest.raises(IsolationError, match="apt-get install bubblewrap"):
        Sandbox()
    monkeypatch.setenv(UNSAFE_ENV, "1")
    assert run_sandboxed(["sh", "-c", "echo limits only"], timeout=10).stdout.strip() == "limits only"


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
        ("`define F(a) $fo``a\nmodule m; endmodule", "$fo"),
        ("`define F(a) fo``a\nmodule m; endmodule", "pasting"),
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


def test_pool_workers_do_not_outlive_a_killed_parent():
    code = (
        "from salv_trl.hdl.verify import VerifyJob, verify_many\n"
        "ref = 'module m(input [7:0] a, output [7:0] y); assign y = a + 1; endmodule'\n"
        "jobs = [VerifyJob(ref.replace('+ 1', f'+ {k}'), ref, vectors=20000) for k in range(200)]\n"
        "verify_many(jobs, workers=2, progress=False, batch_size=1)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        workers: list[str] = []
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            listed = subprocess.run(
                ["ps", "--ppid", str(parent.pid), "-o", "pid="], capture_output=True, text=True
            )
            workers = listed.stdout.split()
        assert len(workers) >= 2, "the pool never started"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    assert not alive


def _state(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def test_no_run_leaves_a_zombie_for_the_host_to_reap():
    """A container's init may never reap: every sandbox process must be reaped by the sandbox's own parent.

    The runs happen in a child subreaper, so anything they orphan comes back to it instead of PID 1: after
    normal exits, background children, timeouts (also while bwrap is still starting) and floods it must have
    no children left, dead or alive.
    """
    code = (
        "import ctypes, os, subprocess, time\n"
        "ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER\n"
        "from salv_trl.hdl.sandbox import Sandbox, SandboxLimits, isolation_problem\n"
        "assert isolation_problem() is None\n"
        "with Sandbox(limits=SandboxLimits(output_bytes=10_000)) as box:\n"
        "    for _ in range(3):\n"
        "        assert box.run(['true'], timeout=10).ok\n"
        "        assert box.run(['sh', '-c', 'sleep 30 & echo hi'], timeout=10).ok\n"
        "        assert box.run(['sh', '-c', 'sleep 30 & sleep 30'], timeout=0.5).timed_out\n"
        "        assert box.run(['yes'], timeout=10).output_exceeded\n"
        "        for stop in [0.001, 0.002, 0.004, 0.008] * 5:  # stopped while bwrap makes the sandbox\n"
        "            assert box.run(['sleep', '30'], timeout=stop).timed_out\n"
        "time.sleep(0.5)\n"
        "ps = subprocess.run(['ps', '-o', 'pid=,stat=,args=', '--ppid', str(os.getpid())],\n"
        "                    capture_output=True, text=True).stdout.splitlines()\n"
        "print([row for row in ps if ' ps -o ' not in row])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_a_folder_named_while_a_cleaner_lists_them_is_skipped(tmp_path, monkeypatch):
    """A live process renames its `.new-*` folder at any moment, also between another process's listing and
    its look at the folder's age: that cleaner goes on (it used to fail its whole chunk of verdicts)."""
    real_glob = Path.glob

    def glob_that_lists_a_renamed_folder(self, pattern):
        yield from real_glob(self, pattern)
        if pattern == ".new-*":
            yield self / ".new-renamed-since"

    old = tmp_path / ".new-dead"
    old.mkdir()
    os.utime(old, (time.time() - 7200,) * 2)
    monkeypatch.setattr(Path, "glob", glob_that_lists_a_renamed_folder)
    assert clean_leftovers(tmp_path) == [old] and not old.exists()


def test_a_folder_being_created_is_never_taken_for_a_leftover(monkeypatch):
    """Another process's cleaner may run at any moment, also between the creation of a process's folder and
    its lock: the folder must survive it (a removed folder would fail every later run of its owner)."""
    real_flock = sandbox.fcntl.flock
    seen: list[list[Path]] = []

    def flock_after_a_cleaner(fd, operation):
        if operation == fcntl.LOCK_EX and not seen:  # the owner's lock, about to be taken
            seen.append(clean_leftovers())
        return real_flock(fd, operation)

    monkeypatch.setattr(sandbox, "_owned", None)
    monkeypatch.setattr(sandbox.fcntl, "flock", flock_after_a_cleaner)
    with Sandbox({"a.txt": "kept\n"}) as box:
        monkeypatch.setattr(sandbox.fcntl, "flock", real_flock)
        assert seen and box.path.parent not in seen[0]
        assert box.run(["cat", "a.txt"], timeout=10).stdout == "kept\n"
