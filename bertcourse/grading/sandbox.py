"""A submission's kernel, contained: fresh folder, scrubbed environment, own process group, resource limits.

:class:`Sandbox` makes a temporary folder (``work/`` holds the copy of the submission and is the
kernel's working directory; ``home/`` and ``tmp/`` are its HOME and TMPDIR), starts an IPython kernel
there under ``nanny.py`` (see that file) with the limits of :class:`Limits`, and talks to it over
IPC sockets on the shell channel only: nothing the kernel prints or displays is ever read. At the
end it kills the nanny, the whole process group, and any process still carrying the sandbox's
marker in its environment, then deletes the folder.

Two modes (:func:`sandbox_mode`). **bubblewrap** (``bwrap`` on PATH and working): the nanny and the
kernel run in their own user, PID, network, IPC and UTS namespaces as uid 65534 without
capabilities; they see only the system directories, the virtual environment and this checkout,
all read-only, with ``solutions/``, ``tests/`` and every grading source but the modules the kernel
needs (:data:`~bertcourse.grading.driver.KERNEL_MODULES`) replaced by empty folders, a private
``/tmp``, and the sandbox folder; they cannot see or signal the grader. **process** (no working
bubblewrap): the kernel runs as the grader's user (as uid 65534 when the grader is root), sees the
whole file system that user can see, can reach the network and can signal that user's processes;
the grade command says so in every record and on stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from bertcourse.grading import nanny
from bertcourse.grading.driver import KERNEL_MODULES

__all__ = [
    "GRADING_FILES_IN_KERNEL",
    "KernelDiedError",
    "Limits",
    "Sandbox",
    "SandboxError",
    "become_subreaper",
    "kill_descendants",
    "read_regular_file",
    "sandbox_mode",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
NANNY = Path(__file__).with_name("nanny.py")
MARKER = "BERTCOURSE_SANDBOX"
MiB = 1 << 20
NOBODY = 65534
GRADING_FILES_IN_KERNEL = ("__init__.py", *(f"{name}.py" for name in KERNEL_MODULES))
"""The grading sources a kernel may see (what :func:`~bertcourse.grading.driver.serve` imports); not the oracles."""
HIDDEN_IN_KERNEL = ("solutions", "tests", ".git")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's kernel (0 = no limit for memory, files, processes, CPU)."""

    timeout: float = 120.0  # seconds of wall time for running all of a notebook's cells and checks
    memory_mb: int = 4096  # address space of each kernel process (RLIMIT_AS)
    file_mb: int = 64  # largest file the kernel may write (RLIMIT_FSIZE)
    processes: int = 64  # processes and threads beyond those the user already runs (RLIMIT_NPROC; not for root)
    cpu_seconds: int = 300  # CPU time of each kernel process (RLIMIT_CPU)
    notebook_mb: int = 16  # largest submission the grader reads
    answer_mb: int = 64  # largest answer file the grader reads back from the kernel
    start_timeout: float = 120.0  # seconds for the kernel to start (not counted in ``timeout``)
    task_timeout: float = 30.0  # seconds for one task's calls (within ``timeout``): a slow task costs only itself
    sandbox: str = "auto"  # "auto" (bubblewrap where it works), "bubblewrap" (required) or "process"

    def nanny_json(self) -> str:
        return json.dumps(
            {
                "memory_bytes": self.memory_mb * MiB,
                "file_bytes": self.file_mb * MiB,
                "cpu_seconds": self.cpu_seconds,
                "processes": self.processes,
            }
        )


class SandboxError(Exception):
    """The sandbox could not be set up (the kernel did not start)."""


class KernelDiedError(Exception):
    """The kernel ended while the grader was waiting for it."""


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link, FIFO, device) of at most ``max_bytes``."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        kind = "a symbolic link" if os.path.islink(path) else exc.strerror
        raise ValueError(f"cannot open {path}: {kind}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"{path} is {info.st_size / MiB:.1f} MiB, over the limit of {max_bytes / MiB:g} MiB")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"{path} grew over the limit of {max_bytes / MiB:g} MiB while being read")
    return data


@functools.cache
def _probe_bubblewrap() -> str:
    """ "" if bubblewrap runs a namespaced command here, else why not."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    probe = [bwrap, *_BWRAP_NAMESPACES, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        run = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap does not run: {exc}"
    return "" if run.returncode == 0 else f"bwrap does not run here: {run.stderr.strip()[:200]}"


def sandbox_mode(wanted: str = "auto") -> tuple[str, str]:
    """The mode a kernel will run in, ``("bubblewrap" | "process", why)``; ValueError if ``wanted`` cannot be had."""
    if wanted not in ("auto", "bubblewrap", "process"):
        raise ValueError(f"sandbox must be auto, bubblewrap or process, got {wanted!r}")
    if wanted == "process":
        return "process", "asked for with --sandbox process"
    why = _probe_bubblewrap()
    if not why:
        return "bubblewrap", "own user, PID and network namespaces; course and venv read-only"
    if wanted == "bubblewrap":
        raise ValueError(f"--sandbox bubblewrap: {why}")
    return "process", why


_BWRAP_NAMESPACES = ("--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                     "--uid", str(NOBODY), "--gid", str(NOBODY))  # fmt: skip


def _bubblewrap_command(root: Path, sockets: Path) -> list[str]:
    """bwrap's arguments: what the kernel sees (read-only system, venv and course; no solutions, no oracles)."""
    args = [shutil.which("bwrap") or "bwrap", *_BWRAP_NAMESPACES, "--die-with-parent", "--new-session"]
    for system in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"):
        args += ["--ro-bind-try", system, system]
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    for prefix in sorted(prefixes):
        args += ["--ro-bind", prefix, prefix]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", str(REPO_ROOT), str(REPO_ROOT)]
    for hidden in HIDDEN_IN_KERNEL:
        if (REPO_ROOT / hidden).is_dir():
            args += ["--tmpfs", str(REPO_ROOT / hidden)]
        elif (REPO_ROOT / hidden).exists():
            args += ["--ro-bind", "/dev/null", str(REPO_ROOT / hidden)]
    grading = Path(__file__).parent
    args += ["--tmpfs", str(grading)]
    for name in GRADING_FILES_IN_KERNEL:
        args += ["--ro-bind", str(grading / name), str(grading / name)]
    args += [
        "--remount-ro",
        str(grading),
        "--bind",
        str(root),
        str(root),
        "--bind",
        str(sockets),
        str(sockets),
        "--chdir",
        str(root / "work"),
    ]
    return [*args, "--"]


def _nobody_can_run() -> bool:
    """Whether uid 65534 may run this Python and read the course: every folder on the way open to others."""
    paths = [os.path.realpath(sys.executable), os.path.realpath(sys.prefix), str(REPO_ROOT)]
    for path in paths:
        for parent in [*Path(path).parents, Path(path)]:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
    return True


def _drop_to_nobody(root: Path) -> None:
    """Process mode as root: hand the sandbox folder to uid 65534, whom the nanny becomes."""
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.chown(name, NOBODY, NOBODY)


on_start: Callable[[Sandbox], None] | None = None
"""Called with each sandbox once its kernel process exists (the grade command's workers report it home)."""


def clean_up(info: dict[str, Any]) -> None:
    """Kill and delete what a sandbox left, from its :meth:`Sandbox.cleanup_info` (its owner was killed)."""
    with contextlib.suppress(OSError, TypeError):
        os.killpg(int(info["pgid"]), signal.SIGKILL)
    _sweep(str(info["token"]))
    for folder in info["folders"]:
        if os.path.isdir(folder) and Path(folder).name.startswith(("bertcourse-grade-", "bcg-")):
            _remove(Path(folder))


def _environment(root: Path, token: str) -> dict[str, str]:
    """What the kernel may see of the environment: nothing inherited but PATH and the locale."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        "IPYTHONDIR": str(root / "home" / ".ipython"),
        "MPLCONFIGDIR": str(root / "tmp" / "matplotlib"),
        "PYTHONPATH": str(REPO_ROOT),  # the course package of this checkout
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # grading runs on the CPU, the same everywhere
        "TQDM_DISABLE": "1",  # no progress bars (nor tqdm's IProgress warning) in grading runs
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        MARKER: token,
    }


def _sweep(token: str) -> None:
    """SIGKILL every process of ours whose environment carries this sandbox's marker (those that escaped)."""
    needle = f"{MARKER}={token}".encode()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                found = needle in f.read().split(b"\0")
        except OSError:
            continue
        if found:
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)


def become_subreaper() -> bool:
    """Make this process adopt every orphan below it (Linux), so :func:`kill_descendants` finds them all.

    The grade command does this: then even a process that killed its nanny, left the process group
    and cleared its environment is still the grader's descendant, and is killed after its notebook.
    """
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(nanny.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def kill_descendants() -> None:
    """SIGKILL and reap every descendant of this process (see :func:`become_subreaper`)."""
    nanny.kill_descendants()


def _remove(root: Path) -> None:
    """Delete the sandbox folder, also where the submission took away permissions."""

    def retry(function: Any, path: str, exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            function(path)

    shutil.rmtree(root, onerror=retry)


class Sandbox:
    """A running, contained kernel for one submission; use as a context manager."""

    def __init__(self, notebook_bytes: bytes, name: str, limits: Limits) -> None:
        self.limits = limits
        self.mode, self.why = sandbox_mode(limits.sandbox)
        self.root = Path(tempfile.mkdtemp(prefix="bertcourse-grade-"))
        self.token = secrets.token_hex(16)
        for sub in ("work", "home", "tmp", "io"):
            (self.root / sub).mkdir(mode=0o700)
        (self.root / "work" / name).write_bytes(notebook_bytes)
        self.io = self.root / "io"
        self.sockets = self.io  # where the kernel's IPC sockets live (a short path of its own if need be)
        self.process: subprocess.Popen[bytes] | None = None
        self.client: BlockingKernelClient | None = None

    def __enter__(self) -> Sandbox:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        connection, key = str(self.io / "kernel.json"), secrets.token_hex(16).encode()
        if len(str(self.io / "ipc")) >= 90 and self.mode == "bubblewrap":  # no TCP across network namespaces
            self.sockets = Path(tempfile.mkdtemp(prefix="bcg-", dir="/tmp"))
        if len(str(self.sockets / "ipc")) < 90:  # IPC sockets: no ports, and no kernel warning about plain TCP
            write_connection_file(connection, ip=str(self.sockets / "ipc"), transport="ipc", key=key)
        else:  # a socket path this long would not fit the OS limit of ~107 characters
            write_connection_file(connection, ip="127.0.0.1", transport="tcp", key=key)
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", connection, "--HistoryManager.enabled=False"]
        command = [sys.executable, str(NANNY), self.limits.nanny_json(), *kernel]
        if self.mode == "bubblewrap":
            command = [*_bubblewrap_command(self.root, self.sockets), *command]
        elif os.getuid() == 0 and _nobody_can_run():
            _drop_to_nobody(self.root)
            command.insert(3, f"--uid={NOBODY}")
        self.process = subprocess.Popen(
            command,
            cwd=self.root / "work",
            env=_environment(self.root, self.token),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own session and process group, killed whole at the end
            close_fds=True,
        )
        if on_start is not None:
            on_start(self)
        self.client = BlockingKernelClient(connection_file=connection)
        self.client.load_connection_file()
        self.client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        msg_id = self.client.kernel_info()
        try:
            self._reply(msg_id, time.monotonic() + self.limits.start_timeout)
        except (TimeoutError, KernelDiedError) as exc:
            raise SandboxError(f"the kernel did not start ({exc})") from exc

    def cleanup_info(self) -> dict[str, Any]:
        """What another process needs to kill and delete this sandbox: process group, marker, folders."""
        pgid = self.process.pid if self.process is not None else None
        return {"pgid": pgid, "token": self.token, "folders": sorted({str(self.root), str(self.sockets)})}

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _reply(self, msg_id: str, deadline: float) -> dict[str, Any]:
        assert self.client is not None
        while True:
            if not self.alive():
                raise KernelDiedError("kernel died")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            try:
                msg = self.client.get_shell_msg(timeout=min(0.2, remaining))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg.get("content", {})

    def execute(self, code: str, deadline: float, silent: bool = False) -> dict[str, Any]:
        """Run ``code`` in the kernel; its reply content (status, and ename/evalue on error).

        Raises TimeoutError at ``deadline`` and :class:`KernelDiedError` if the kernel ends first.
        """
        assert self.client is not None
        msg_id = self.client.execute(
            code, silent=silent, store_history=not silent, allow_stdin=False, stop_on_error=False
        )
        return self._reply(msg_id, deadline)

    def close(self) -> None:
        """Kill everything the submission started and delete the sandbox folder."""
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)  # the nanny kills its descendants, then exits
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=5)
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None
        _sweep(self.token)
        _remove(self.root)
        if self.sockets != self.io:
            _remove(self.sockets)
