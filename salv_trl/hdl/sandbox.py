"""Run untrusted tool processes (compilers, simulators) in a namespace sandbox with hard limits.

Every candidate module is model output written by an optimiser rewarded for passing, and is treated as
hostile: the compiler parses it and the simulator executes it. Isolation, not the screen, is the boundary. A
[`Sandbox`] is a fresh work folder in which every command runs under bubblewrap (`bwrap`):

- its own PID, mount, network, IPC, UTS and cgroup namespaces (`--unshare-all`): `/proc` shows only the
  sandbox's own processes, so no run can read another run's files through `/proc/<pid>/cwd` or write into its
  pipes through `/proc/<pid>/fd`; there is no network interface but loopback;
- an unprivileged uid: as root the sandbox first drops to `nobody` (`setpriv`), so the kernel's process limit
  applies and nothing the candidate creates belongs to root;
- a file system of its own: `/usr` read-only (with the `/bin`, `/lib*` links), a fresh `/proc` and `/dev`, and
  the work folder at `/sandbox`, the only writable place, with `TMPDIR`, `HOME` and the working directory
  inside it. The host's `/tmp`, `/root`, `/home`, `/etc`, the project and its virtual environment are not
  there at all;
- a new session (no terminal to inject keystrokes into) and `--die-with-parent`: the sandbox dies with the
  process that started it;
- nothing left in the host's process table: the command is PID 1 of its namespace (`--as-pid-1`), so bwrap
  reaps it itself, and a run is stopped by killing that PID 1 first ([`_SandboxInit`]). A sandbox whose
  init is orphaned instead would become a zombie of the host's PID 1, which in a container often never reaps;
  owned by the sandbox's uid, such zombies count against every later sandbox's process limit until none can
  start (found in CI: a test run's timeouts starved the next tests' simulations);
- resource limits set by `prlimit` before anything else: CPU seconds, address space, size of any file written,
  process count; stdout and stderr captured up to a byte cap (a flood is killed once it exceeds it); a
  wall-clock timeout that kills the whole process tree; a minimal environment.

Work folders live under `$TMPDIR/salv-trl-<uid>/`, one folder per Python process holding a lock for the
process's lifetime. A process killed with SIGKILL cannot clean up; the next process that opens a sandbox
removes every folder whose owner's lock is free ([`clean_leftovers`]).

Where the host grants no namespaces (or `bwrap` is missing), running model code raises [`IsolationError`] with
what to install, unless the user sets `SALV_TRL_UNSAFE_NO_ISOLATION=1` (then only the limits apply).
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import resource
import secrets
import select
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SandboxLimits",
    "SandboxResult",
    "Sandbox",
    "run_sandboxed",
    "IsolationError",
    "isolation_problem",
    "require_isolation",
    "clean_leftovers",
    "UNSAFE_ENV",
    "INSIDE",
    "die_with_parent",
]

#: Set to `"1"` to run model code without namespace isolation (resource limits only), where the host has none.
UNSAFE_ENV = "SALV_TRL_UNSAFE_NO_ISOLATION"
#: Where the work folder appears inside the sandbox.
INSIDE = "/sandbox"
_NOBODY = 65534


class IsolationError(OSError):
    """Model code was about to run on a host that cannot isolate it."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits applied to every process started in a [`Sandbox`].

    Args:
        cpu_seconds: `RLIMIT_CPU` (the kernel kills with SIGXCPU/SIGKILL past it).
        memory_bytes: `RLIMIT_AS`, the address space of each process.
        file_bytes: `RLIMIT_FSIZE`, the largest file a process may write.
        processes: `RLIMIT_NPROC`, processes of the sandbox's uid.
        output_bytes: cap on captured stdout + stderr; past it the process tree is killed.
        network: share the host's network namespace (default False: loopback only).
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
        timed_out: the wall-clock timeout fired and the process tree was killed.
        output_exceeded: the output cap was exceeded and the process tree was killed.
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


def _limit(kind: int, value: int) -> int:
    # Never ask for more than the current hard limit (raising it fails for non-root users).
    _, hard = resource.getrlimit(kind)
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def _prlimit(limits: SandboxLimits) -> list[str]:
    values = {
        "cpu": _limit(resource.RLIMIT_CPU, limits.cpu_seconds),
        "as": _limit(resource.RLIMIT_AS, limits.memory_bytes),
        "fsize": _limit(resource.RLIMIT_FSIZE, limits.file_bytes),
        "nproc": _limit(resource.RLIMIT_NPROC, limits.processes),
        "core": 0,
    }
    return ["prlimit"] + [f"--{name}={value}" for name, value in values.items()] + ["--"]


@functools.lru_cache(maxsize=1)
def _system_mounts() -> tuple[str, ...]:
    """`/usr` read-only, and `/bin`, `/sbin`, `/lib*` as the host has them (merged-/usr links or folders).
    Looked up once per process: the host's layout does not change under it."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


def _isolation_argv(work: Path, network: bool, info_fd: int | None = None) -> list[str]:
    """`[setpriv ...] bwrap ...`: the prefix that isolates a command with `work` as its only folder.

    With `info_fd`, bwrap writes `{"child-pid": N}` there: N is the sandbox's init, the process to kill first.
    """
    drop = []
    if os.geteuid() == 0:  # never run model code as root, even inside a namespace
        drop = ["setpriv", f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups", "--"]
    argv = ["bwrap", "--unshare-all", "--as-pid-1", "--die-with-parent", "--new-session"]
    argv += ["--share-net"] if network else []
    argv += ["--info-fd", str(info_fd)] if info_fd is not None else []
    argv += _system_mounts()
    argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(work), INSIDE, "--chdir", INSIDE]
    argv += [
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "LANG",
        "C",
        "--setenv",
        "LC_ALL",
        "C",
    ]
    argv += ["--setenv", "HOME", INSIDE, "--setenv", "TMPDIR", INSIDE, "--"]
    return drop + argv


def _unsafe() -> bool:
    return os.environ.get(UNSAFE_ENV) == "1"


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    missing = [
        exe
        for exe in ("bwrap", "prlimit") + (("setpriv",) if os.geteuid() == 0 else ())
        if not shutil.which(exe)
    ]
    if missing:
        return f"{', '.join(missing)} not found on PATH"
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=_process_folder()))
    try:
        _own(probe)
        result = subprocess.run(
            _isolation_argv(probe, False) + ["sh", "-c", "echo ok > probe; ls /proc"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        pids = [name for name in result.stdout.split() if name.isdigit()]
        if result.returncode != 0 or (probe / "probe").read_text().strip() != "ok" or len(pids) > 3:
            return (
                f"bwrap could not start an isolated process: {(result.stderr or result.stdout).strip()[:300]}"
            )
    except (OSError, subprocess.SubprocessError) as error:
        return f"bwrap could not start an isolated process: {error}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return None


def isolation_problem() -> str | None:
    """Why this host cannot isolate model code (None: it can). Checked once per process."""
    return _probe()


def require_isolation() -> None:
    """Raise [`IsolationError`] unless model code can run isolated here, or the unsafe opt-out is set."""
    problem = None if _unsafe() else isolation_problem()
    if problem:
        raise IsolationError(
            "salv-trl runs model-written Verilog only inside a namespace sandbox, and this host cannot make "
            f"one ({problem}). Install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`) and allow "
            "user namespaces (sysctl kernel.unprivileged_userns_clone=1 or user.max_user_namespaces > 0), or "
            f"set {UNSAFE_ENV}=1 to run it with resource limits only, at your own risk."
        )


def _own(path: Path) -> None:
    """Give the sandbox's uid its work folder (as root the sandbox runs as `nobody`)."""
    if os.geteuid() == 0:
        os.chown(path, _NOBODY, _NOBODY)


# ------------------------------------------------------------------------------------------------------------
# Work folders: one locked folder per process, leftovers of dead processes removed at the next start


def _root() -> Path:
    base = Path(tempfile.gettempdir())
    # As root the sandbox runs as `nobody`, which must be able to reach its work folder.
    if os.geteuid() == 0 and not all(os.stat(p).st_mode & 0o001 for p in (base, *base.parents)):
        base = Path("/tmp")
    return base / f"salv-trl-{os.geteuid()}"


_owned: tuple[int, Path, int] | None = None  # (pid, folder, lock fd) of this process


def clean_leftovers(root: Path | None = None) -> list[Path]:
    """Remove the work folders whose owner died without cleaning up (its lock is free); return them."""
    root = root or _root()
    removed = []
    for folder in root.glob("proc-*"):
        try:
            fd = os.open(folder / "lock", os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its owner is alive
            os.close(fd)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)
        removed.append(folder)
    # A process killed between creating its folder and naming it leaves a `.new-*` one; an hour on, it is
    # nobody's.
    for staging in root.glob(".new-*"):
        try:
            age = time.time() - staging.stat().st_mtime
        except FileNotFoundError:  # its live owner named it after the listing (found by bench_verify)
            continue
        if age > 3600:
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed


def _process_folder() -> Path:
    """This process's folder for work folders (created, locked and leftovers cleaned on first use)."""
    global _owned
    if _owned is None or _owned[0] != os.getpid():  # a forked child gets its own
        root = _root()
        root.mkdir(mode=0o711, exist_ok=True)
        os.chmod(root, 0o711)  # traversable by the sandbox's uid, not listable
        clean_leftovers(root)
        # The folder is locked before it gets the name `clean_leftovers` looks for: under that name, a folder
        # whose lock is free is always a dead process's (found in CI: another process's cleaner took a
        # folder between its creation and its lock, and every later run of its owner failed).
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        staging = root / f".new-{name}"
        staging.mkdir(mode=0o711)
        fd = os.open(staging / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        folder = staging.rename(root / f"proc-{name}")
        _owned = (os.getpid(), folder, fd)
    return _owned[1]


# ------------------------------------------------------------------------------------------------------------


class Sandbox:
    """A fresh work folder in which untrusted commands run isolated and limited; removed on [`close`].

    Use as a context manager:

    ```python
    >>> with Sandbox({"a.v": 'module a; initial $display("hi"); endmodule'}) as box:
    ...     built = box.run(["iverilog", "-o", "sim", "a.v"], timeout=30)
    ...     box.run(["vvp", "-n", "sim"], timeout=30).stdout.strip()
    'hi'

    ```

    Args:
        files: files to create in the folder, name -> text (or bytes). Names must be plain file names.
        limits: resource limits for every command.

    Raises:
        IsolationError: the host cannot isolate processes (see the module docstring for the opt-out).
    """

    def __init__(self, files: Mapping[str, str | bytes] | None = None, limits: SandboxLimits | None = None):
        require_isolation()
        self.limits = limits or SandboxLimits()
        self.isolated = not _unsafe()
        self.path = Path(tempfile.mkdtemp(prefix="box-", dir=_process_folder()))
        _own(self.path)
        # Files with the same content are hard links to the first (a verification writes the same separator
        # before every candidate, and creating a file costs several times what linking one does).
        written: dict[bytes, Path] = {}
        for name, content in (files or {}).items():
            data = _encoded(content)
            if data in written:
                try:
                    os.link(written[data], self._target(name))
                    continue
                except OSError:  # a file system without hard links
                    pass
            written.setdefault(data, self.write(name, data))

    def _target(self, name: str) -> Path:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"sandbox file names must be plain names, got {name!r}")
        return self.path / name

    def write(self, name: str, content: str | bytes) -> Path:
        """Create file `name` (a plain name, no directories) in the work folder. An existing `name` is
        replaced, never written through: it may be a hard link, or a symbolic link a command made."""
        target = self._target(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(target, flags, 0o666)
        except FileExistsError:
            target.unlink()
            fd = os.open(target, flags, 0o666)
        try:
            view = memoryview(_encoded(content))
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return target

    def remove(self, *names: str) -> None:
        """Delete files from the work folder (e.g. sources a run no longer needs and should not read)."""
        for name in names:
            (self.path / name).unlink(missing_ok=True)

    def run(self, argv: Sequence[str], timeout: float, *, idle_timeout: float | None = None) -> SandboxResult:
        """Run `argv` in the sandbox; kill its whole process tree after `timeout` seconds.

        Args:
            argv: the command (found on the sandbox's `PATH`, `/usr/bin:/bin`).
            timeout: wall-clock seconds.
            idle_timeout: also kill (as a timeout) when nothing was printed for this many seconds; for
                commands that report progress.
        """
        info_read = info_write = None
        if self.isolated:
            info_read, info_write = os.pipe()
            isolation = _isolation_argv(self.path, self.limits.network, info_write)
            command = _prlimit(self.limits) + isolation + list(argv)
            env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        else:
            command = _prlimit(self.limits) + list(argv)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
            env.update(HOME=str(self.path), TMPDIR=str(self.path))
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                command,
                cwd=self.path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=() if info_write is None else (info_write,),
            )
        except BaseException:
            if info_read is not None:
                os.close(info_read)
            raise
        finally:
            if info_write is not None:
                os.close(info_write)
        init = _SandboxInit(info_read)
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
            init.kill(proc)
        try:
            returncode = proc.wait(timeout=max(0.1, timeout - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            timed_out = True
            init.kill(proc)
            returncode = proc.wait()
        init.close()
        _kill_group(proc.pid)  # whatever the command left running in its group
        proc.stdout.close()
        proc.stderr.close()
        if self.isolated and returncode > 128 and returncode - 128 in _SIGNALS:
            returncode = 128 - returncode  # bwrap reports a child killed by signal N as exit status 128 + N
        return SandboxResult(
            returncode=None if (timed_out or exceeded) else returncode,
            stdout=b"".join(chunks["stdout"]).decode("utf-8", errors="replace"),
            stderr=b"".join(chunks["stderr"]).decode("utf-8", errors="replace"),
            timed_out=timed_out,
            output_exceeded=exceeded,
            elapsed=time.monotonic() - start,
        )

    def close(self) -> None:
        """Remove the work folder and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SIGNALS = frozenset(int(s) for s in signal.Signals)
_CHILD_PID = re.compile(rb'"child-pid":\s*(\d+)')
_INFO_WAIT_S = 5.0  # bwrap's set-up before it writes the init's pid takes milliseconds


class _SandboxInit:
    """The sandbox's PID 1 (the command, `--as-pid-1`), learnt from bwrap's `--info-fd`.

    A run is stopped by killing this process first: the kernel then kills everything in its namespace, and the
    outer bwrap (our child) reaps it and exits. Killing the outer bwrap first would end the sandbox too
    (`--die-with-parent`), but would orphan its PID 1 to the host's init, which may never reap it (see the
    module docstring). The pid is read when the run must stop, while the outer bwrap that would reap it is
    still running, and the signal goes through a pidfd.
    """

    def __init__(self, info_fd: int | None):
        self._info_fd = info_fd
        self._pidfd: int | None = None

    def _open(self) -> int | None:
        # bwrap writes the JSON right after it clones the init, or exits without writing if it fails before.
        # Waiting for one or the other (never the candidate: it runs only later) closes the window in which
        # the init exists but its pid is unknown; killing the outer bwrap then would orphan the init.
        if self._pidfd is None and self._info_fd is not None:
            try:
                readable, _, _ = select.select([self._info_fd], [], [], _INFO_WAIT_S)
                # bwrap writes `{"child-pid": N` alone (atomic on a pipe) and the rest of the JSON later,
                # so the first read may not be a whole document.
                found = _CHILD_PID.search(os.read(self._info_fd, 4096) if readable else b"")
                self._pidfd = os.pidfd_open(int(found[1]))
            except (OSError, TypeError):
                pass  # bwrap failed before cloning, or the init is gone: the outer bwrap is all there is
        return self._pidfd

    def kill(self, proc: subprocess.Popen) -> None:
        """Kill the sandbox's init, let the outer bwrap reap it, then kill the outer one if it lingers."""
        pidfd = self._open()
        if pidfd is not None:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                proc.wait(timeout=5)
                return
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        _kill_group(proc.pid)

    def close(self) -> None:
        for fd in (self._pidfd, self._info_fd):
            if fd is not None:
                os.close(fd)
        self._pidfd = self._info_fd = None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _encoded(content: str | bytes) -> bytes:
    return content.encode("utf-8", errors="surrogateescape") if isinstance(content, str) else content


def run_sandboxed(
    argv: Sequence[str],
    cwd_files: Mapping[str, str | bytes] | None = None,
    timeout: float = 30.0,
    limits: SandboxLimits | None = None,
) -> SandboxResult:
    """Run one command in a fresh [`Sandbox`] holding `cwd_files`, then remove the folder."""
    with Sandbox(cwd_files, limits) as box:
        return box.run(argv, timeout)


def die_with_parent(parent: int) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux `PR_SET_PDEATHSIG`).

    The initializer of worker pools that run sandboxes: a parent killed with SIGKILL cannot stop its workers,
    and a worker left behind would go on simulating for nobody.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request
        os._exit(1)
