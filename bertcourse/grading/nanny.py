"""Run a command as the root of a sandbox: ``python nanny.py LIMITS_JSON COMMAND...``.

The grader starts this script (by path, so it imports nothing of the course) in a new session and
process group. It becomes a child subreaper, so every process the command starts stays its
descendant even after a double fork or ``setsid``; it starts the command under the resource limits,
waits for it, and then (or on SIGTERM) kills every descendant that is left. The command is the
submission's kernel: if that kills its parent (this script), the grader, one level up, survives,
sees the kernel die and kills the process group itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc; empty where /proc is missing)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


def kill_descendants() -> None:
    """SIGKILL every descendant of this process and reap them, until none is left (or 5 s have passed)."""
    me, deadline = os.getpid(), time.monotonic() + 5
    while time.monotonic() < deadline:
        stack, tree = _children(me), []
        while stack:
            pid = stack.pop()
            tree.append(pid)
            stack += _children(pid)
        for pid in tree:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        while True:  # reap: our children and the orphans we adopted as subreaper
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                break
        if not tree:
            return
        time.sleep(0.05)


def _user_tasks(uid: int | None = None) -> int:
    """Processes and threads that this user runs now (RLIMIT_NPROC counts them all)."""
    uid, count = os.getuid() if uid is None else uid, 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                pass
    return count


def main() -> int:
    limits, command = json.loads(sys.argv[1]), sys.argv[2:]
    uid = None
    if command and command[0].startswith("--uid="):  # process mode as root: the kernel runs as this user
        uid, command = int(command[0].removeprefix("--uid=")), command[1:]
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the grader's sweep finds detached ones
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    caps = {
        resource.RLIMIT_AS: limits.get("memory_bytes"),
        resource.RLIMIT_FSIZE: limits.get("file_bytes"),
        resource.RLIMIT_CPU: limits.get("cpu_seconds"),
        resource.RLIMIT_CORE: 0,
    }
    if limits.get("processes"):
        caps[resource.RLIMIT_NPROC] = _user_tasks(uid) + int(limits["processes"])

    def apply_limits() -> None:
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        for which, value in caps.items():
            if value:
                _soft, hard = resource.getrlimit(which)
                margin = 5 if which == resource.RLIMIT_CPU else 0  # CPU: SIGXCPU at the soft limit, SIGKILL 5 s on
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard - margin)
                resource.setrlimit(which, (value, value + margin))  # hard too: the submission cannot raise it
            elif which == resource.RLIMIT_CORE:
                resource.setrlimit(which, (0, 0))

    def stop(signum: int, frame: object) -> None:
        kill_descendants()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt is for the kernel, not for us
    child = subprocess.Popen(command, preexec_fn=apply_limits)
    code = child.wait()
    kill_descendants()
    return code


if __name__ == "__main__":
    sys.exit(main())
