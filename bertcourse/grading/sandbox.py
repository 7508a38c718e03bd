"""A submission's kernel, contained: fresh folder, scrubbed environment, own process group, resource limits.

:class:`Sandbox` makes a temporary folder (``work/`` holds the copy of the submission and is the
kernel's working directory; ``home/`` and ``tmp/`` are its HOME and TMPDIR), starts an IPython kernel
there under ``nanny.py`` (see that file) with the limits of :class:`Limits`, and talks to it over
IPC sockets on the shell channel only: nothing the kernel prints or displays is ever read. At the
end it kills the nanny, the whole process group, and any process still carrying the sandbox's
marker in its environment, then deletes the folder.

What this is not: a container. The kernel runs as the grader's user, sees the whole file system
that user can see, can reach the network, and can signal any process of that user. For a class you
do not trust, run the grade command itself inside a container (README, "Exercises and grading").
"""

from __future__ import annotations

import contextlib
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from bertcourse.grading import nanny

__all__ = [
    "KernelDiedError",
    "Limits",
    "Sandbox",
    "SandboxError",
    "become_subreaper",
    "kill_descendants",
    "read_regular_file",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
NANNY = Path(__file__).with_name("nanny.py")
MARKER = "BERTCOURSE_SANDBOX"
MiB = 1 << 20


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
        self.root = Path(tempfile.mkdtemp(prefix="bertcourse-grade-"))
        self.token = secrets.token_hex(16)
        for sub in ("work", "home", "tmp", "io"):
            (self.root / sub).mkdir(mode=0o700)
        (self.root / "work" / name).write_bytes(notebook_bytes)
        self.io = self.root / "io"
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
        if len(str(self.io / "ipc")) < 90:  # IPC sockets: no ports, and no kernel warning about plain TCP
            write_connection_file(connection, ip=str(self.io / "ipc"), transport="ipc", key=key)
        else:  # a socket path this long would not fit the OS limit of ~107 characters
            write_connection_file(connection, ip="127.0.0.1", transport="tcp", key=key)
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", connection, "--HistoryManager.enabled=False"]
        self.process = subprocess.Popen(
            [sys.executable, str(NANNY), self.limits.nanny_json(), *kernel],
            cwd=self.root / "work",
            env=_environment(self.root, self.token),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own session and process group, killed whole at the end
            close_fds=True,
        )
        self.client = BlockingKernelClient(connection_file=connection)
        self.client.load_connection_file()
        self.client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        msg_id = self.client.kernel_info()
        try:
            self._reply(msg_id, time.monotonic() + self.limits.start_timeout)
        except (TimeoutError, KernelDiedError) as exc:
            raise SandboxError(f"the kernel did not start ({exc})") from exc

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
