"""Run untrusted simulator processes in a throw-away directory with hard limits.

Every candidate module is model output and is treated as hostile. A [`Sandbox`] is a fresh temporary directory
(removed on exit) in which commands run:

- in a new session (own process group), killed as a whole at the wall-clock timeout, and again after a normal
  exit so that no child is left behind;
- under resource limits set by `prlimit` before `exec`: CPU seconds, address space, size of any file written,
  process count;
- with stdout and stderr captured up to a byte cap (a `$display` flood is killed once it exceeds the cap);
- without network where the kernel allows it: simulations run under `unshare -n`, in a new, empty network
  namespace (needs root or user namespaces); [`network_isolated`] says whether this host grants it;
- with a minimal environment (`PATH`, `LANG=C`, `HOME` set to the sandbox directory).

Refusing host-touching system tasks (`$system`, `$fopen`, ...) before simulation is [`salv_trl.hdl.screen`]'s
job; the sandbox is the second line of defence.
"""

from __future__ import annotations

import functools
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SandboxLimits", "SandboxResult", "Sandbox", "run_sandboxed", "network_isolated"]


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits applied to every process started in a [`Sandbox`].

    Args:
        cpu_seconds: `RLIMIT_CPU` (the kernel kills with SIGXCPU/SIGKILL past it).
        memory_bytes: `RLIMIT_AS`, the address space of each process.
        file_bytes: `RLIMIT_FSIZE`, the largest file a process may write.
        processes: `RLIMIT_NPROC` (per user; the kernel does not enforce it for root).
        output_bytes: cap on captured stdout + stderr; past it the process group is killed.
        network: keep the host network (False: enter an empty network namespace where the host allows it).
    """

    cpu_seconds: int = 60
    memory_bytes: int = 4 << 30
    file_bytes: int = 256 << 20
    processes: int = 256
    output_bytes: int = 4 << 20
    network: bool = False


@dataclass
class SandboxResult:
    """Outcome of one sandboxed command.

    Attributes:
        returncode: exit status (negative: killed by that signal); None when killed by the harness.
        stdout: captured standard output (decoded as UTF-8 with replacement, at most `output_bytes` in all).
        stderr: captured standard error.
        timed_out: the wall-clock timeout fired and the process group was killed.
        output_exceeded: the output cap was exceeded and the process group was killed.
        elapsed: wall-clock seconds.
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    output_exceeded: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the command exited by itself with status 0."""
        return self.returncode == 0 and not self.timed_out and not self.output_exceeded


@functools.lru_cache(maxsize=1)
def network_isolated() -> bool:
    """Whether sandboxed processes on this host run without network (`unshare -n` can create a namespace)."""
    if not shutil.which("unshare"):
        return False
    try:
        result = subprocess.run(["unshare", "-n", "--", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def _limit(kind: int, value: int) -> int:
    # Never ask for more than the current hard limit (raising it fails for non-root users).
    _, hard = resource.getrlimit(kind)
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def _wrapper(limits: SandboxLimits, isolate: bool) -> list[str]:
    """`prlimit ... -- [unshare -n --]`: limits and network namespace set by small exec wrappers.

    Wrappers rather than a Python `preexec_fn`: that forces a full `fork()` of the (large) Python process,
    which costs more than the two extra `exec`s.
    """
    if not shutil.which("prlimit"):
        raise OSError("the sandbox needs `prlimit` (util-linux) on PATH")
    values = {
        "cpu": _limit(resource.RLIMIT_CPU, limits.cpu_seconds),
        "as": _limit(resource.RLIMIT_AS, limits.memory_bytes),
        "fsize": _limit(resource.RLIMIT_FSIZE, limits.file_bytes),
        "nproc": _limit(resource.RLIMIT_NPROC, limits.processes),
        "core": 0,
    }
    argv = ["prlimit"] + [f"--{name}={value}" for name, value in values.items()] + ["--"]
    return argv + (["unshare", "-n", "--"] if isolate else [])


class Sandbox:
    """A fresh temporary directory in which untrusted commands run with limits; removed on [`close`].

    Use as a context manager:

    ```python
    with Sandbox({"a.v": text}) as box:
        result = box.run(["iverilog", "-o", "sim", "a.v"], timeout=10)
    ```

    Args:
        files: files to create in the directory, name -> text (or bytes). Names must be plain file names.
        limits: resource limits for every command.
    """

    def __init__(self, files: Mapping[str, str | bytes] | None = None, limits: SandboxLimits | None = None):
        self.limits = limits or SandboxLimits()
        self.path = Path(tempfile.mkdtemp(prefix="salv-sandbox-"))
        for name, content in (files or {}).items():
            self.write(name, content)

    def write(self, name: str, content: str | bytes) -> Path:
        """Create file `name` (a plain name, no directories) in the sandbox."""
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"sandbox file names must be plain names, got {name!r}")
        target = self.path / name
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8", errors="surrogateescape")
        else:
            target.write_bytes(content)
        return target

    def run(
        self,
        argv: Sequence[str],
        timeout: float,
        *,
        untrusted: bool = True,
        idle_timeout: float | None = None,
    ) -> SandboxResult:
        """Run `argv` in the sandbox directory; kill its whole process group after `timeout` seconds.

        Args:
            argv: the command.
            timeout: wall-clock seconds.
            untrusted: the command executes candidate code (a simulation); False for a compiler, which
                skips the network namespace (creating one costs about 10 ms). Limits apply either way.
            idle_timeout: also kill (as a timeout) when nothing was printed for this many seconds; for
                commands that report progress.
        """
        isolate = untrusted and not self.limits.network and network_isolated()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C",
            "LC_ALL": "C",
            "HOME": str(self.path),
        }
        start = time.monotonic()
        proc = subprocess.Popen(
            _wrapper(self.limits, isolate) + list(argv),
            cwd=self.path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        total = 0
        timed_out = exceeded = False
        last_output = start
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
            selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
            while selector.get_map():
                now = time.monotonic()
                remaining = timeout - (now - start)
                if idle_timeout is not None:
                    remaining = min(remaining, idle_timeout - (now - last_output))
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in selector.select(remaining):
                    last_output = time.monotonic()
                    data = os.read(key.fileobj.fileno(), 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                        continue
                    keep = max(0, self.limits.output_bytes - total)
                    chunks[key.data].append(data[:keep])
                    total += len(data)
                if total > self.limits.output_bytes:
                    exceeded = True
                    break
        if timed_out or exceeded:
            _kill_group(proc.pid)
        try:
            returncode = proc.wait(timeout=max(0.1, timeout - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            returncode = proc.wait()
        _kill_group(proc.pid)  # whatever the command left running in its group
        proc.stdout.close()
        proc.stderr.close()
        return SandboxResult(
            returncode=None if (timed_out or exceeded) else returncode,
            stdout=b"".join(chunks["stdout"]).decode("utf-8", errors="replace"),
            stderr=b"".join(chunks["stderr"]).decode("utf-8", errors="replace"),
            timed_out=timed_out,
            output_exceeded=exceeded,
            elapsed=time.monotonic() - start,
        )

    def close(self) -> None:
        """Remove the sandbox directory and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_sandboxed(
    argv: Sequence[str],
    cwd_files: Mapping[str, str | bytes] | None = None,
    timeout: float = 30.0,
    limits: SandboxLimits | None = None,
) -> SandboxResult:
    """Run one command in a fresh [`Sandbox`] holding `cwd_files`, then remove the directory."""
    with Sandbox(cwd_files, limits) as box:
        return box.run(argv, timeout)
