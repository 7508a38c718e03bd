"""The learner's side of a check: call their function on each query and bring back only plain data.

The same :func:`answer_queries` runs in two places: in the notebook, when a check cell calls
``check_<fn>(fn)``, and inside a submission's kernel, where ``python -m bertcourse.grade`` runs
:func:`serve` (the grader writes the queries to a file, :func:`serve` writes the answers to another).
Either way each call gets fresh copies of its inputs and a fixed global seed, its warnings and
stderr are captured, and its return value goes through :mod:`~bertcourse.grading.codec`, so the
property code that judges it sees exactly the same data in both places.

A query is ``{"name", "inputs", "keep_inputs"}``, its inputs a codec blob of ``(args, kwargs)``
held as a uint8 tensor (so a model in them is rebuilt afresh for every call). An outcome (one per
query) is a dict: ``{"value": v}``; ``{"raised": {"type", "message", "where"}}`` for an exception;
``{"not_attempted": message}`` for ``NotImplementedError``; ``{"unsupported": why}`` for a value
that cannot cross the boundary; plus ``"inputs_after"`` (the arguments after the call) when the
query asks for them and ``"output"`` (captured warnings and stderr) when there was any.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import inspect
import io
import os
import signal
import sys
import sysconfig
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from bertcourse.grading import codec

__all__ = ["answer_queries", "describe_exception", "forbid", "run_cells", "serve"]

MAX_CAPTURED = 2000  # characters of warnings and stderr kept per call
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
_LIBRARY_DIRS = tuple(
    str(Path(p).resolve()) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]} if p
)


def _is_learner_frame(filename: str) -> bool:
    """A frame of the learner's code: not the course package, not the standard library, not an installed package."""
    if filename.startswith("<frozen"):
        return False
    path = str(Path(filename).resolve()) if not filename.startswith("<") else filename
    return not path.startswith((_PACKAGE_DIR, *_LIBRARY_DIRS)) and "site-packages" not in path


def describe_exception(exc: BaseException) -> dict[str, str]:
    """The learner's exception as they want to see it: type, message and the line of *their* code that raised."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_frame(f.filename)]
    where = ""
    if frames:
        frame = frames[-1]
        where = f"in {frame.name}, line {frame.lineno}:" + (f"\n    {frame.line.strip()}" if frame.line else "")
    try:
        message = str(exc)
    except Exception:  # an exception whose __str__ raises
        message = "<unprintable message>"
    return {"type": type(exc).__name__, "message": message[:MAX_CAPTURED], "where": where[:MAX_CAPTURED]}


class _TaskTimeUp(BaseException):
    """The task's time budget ran out during a call (raised by the alarm in :func:`_call`)."""


def _alarm(signum: int, frame: object) -> None:
    raise _TaskTimeUp


def _raised_elsewhere(fn: Callable[..., Any], exc: BaseException) -> str:
    """The name of the learner's function that raised ``exc`` if it is not ``fn`` itself (one ``fn`` calls)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = getattr(inspect.unwrap(fn), "__code__", None)  # through decorators such as @torch.no_grad()
    if tb is None or code is None or tb.tb_frame.f_code is code or tb.tb_frame.f_code.co_name == code.co_name:
        return ""
    return tb.tb_frame.f_code.co_name if _is_learner_frame(tb.tb_frame.f_code.co_filename) else ""


def _call(fn: Callable[..., Any], query: dict[str, Any], deadline: float | None = None) -> dict[str, Any]:
    """One call of the learner's function on fresh inputs; never raises.

    With a ``deadline`` (the task's time budget, in the grading kernel's main thread) an alarm ends a
    call that runs past it, and calls after it are not made: a slow task costs only itself.
    """
    if deadline is not None and time.monotonic() >= deadline:
        message = "not called: the task's time limit ran out on an earlier call"
        return {"raised": {"type": "TimeoutError", "message": message, "where": ""}}
    args, kwargs = codec.loads(query["inputs"].numpy().tobytes(), allow_objects=True)
    stderr = io.StringIO()
    outcome: dict[str, Any]
    with (
        torch.random.fork_rng(devices=[]),
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("always")
        torch.default_generator.manual_seed(0)  # a function drawing from the global generator is deterministic
        previous = None
        if deadline is not None:
            previous = signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.001))
        try:
            value = fn(*args, **kwargs)
        except _TaskTimeUp:
            message = "this call ran past the task's time limit and was stopped"
            outcome = {"raised": {"type": "TimeoutError", "message": message, "where": ""}}
        except NotImplementedError as exc:
            other = _raised_elsewhere(fn, exc)
            if other:  # the function is written, but one it calls is not: a failure, not "not attempted"
                exc_info = describe_exception(exc)
                exc_info["message"] = f"{other}, which this function calls, is not written yet ({exc_info['message']})"
                outcome = {"raised": exc_info}
            else:
                outcome = {"not_attempted": str(exc)[:200]}
        except BaseException as exc:  # SystemExit, KeyboardInterrupt or a home-made BaseException: all theirs
            outcome = {"raised": describe_exception(exc)}
        else:
            try:
                outcome = {"value": codec.plain_copy(value, where="the returned value")}
            except codec.CodecError as exc:
                outcome = {"unsupported": str(exc)}
        finally:
            if deadline is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
    if query.get("keep_inputs") and "not_attempted" not in outcome:
        try:
            outcome["inputs_after"] = codec.plain_copy(list(args), where="the arguments")
        except codec.CodecError as exc:
            outcome["unsupported"] = str(exc)
    output = "".join(f"{w.category.__name__}: {w.message}\n" for w in caught) + stderr.getvalue()
    if output:
        outcome["output"] = output[:MAX_CAPTURED]
    return outcome


def answer_queries(fn: object, queries: list[dict[str, Any]], budget: float | None = None) -> dict[str, Any]:
    """Outcomes by query name; ``{"missing": why}`` if ``fn`` is not a function. ``budget``: seconds for all."""
    if not callable(fn):
        return {"missing": f"not a function but {type(fn).__name__}"}
    deadline = None if budget is None else time.monotonic() + budget
    return {"outcomes": {q["name"]: _call(fn, q, deadline) for q in queries}}


def serve(namespace: dict[str, Any], function: str, request: str, response: str, budget: float | None = None) -> None:
    """Run in the submission's kernel by the grader: answer the queries in ``request``, write ``response``.

    The grader never trusts what comes back: it reads ``response`` as plain data only. ``budget``:
    the task's time limit in seconds.
    """
    with open(request, "rb") as f:
        queries = codec.loads(f.read())
    if function not in namespace:
        answers: dict[str, Any] = {"missing": f"the notebook defines no function named {function}"}
    else:
        answers = answer_queries(namespace[function], queries, budget)
    blob = codec.dumps(answers, where="the answers")
    tmp = f"{response}.part"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, response)
    sys.stdout.flush()


def run_cells(path: str) -> None:
    """Run by the grader in the kernel: each source in the JSON list at ``path`` as its own IPython cell.

    One round trip for a run of plain cells (a notebook of 10,000 cells is not 10,000 messages); an
    error in one cell is shown in the kernel and the next cell runs, as in Run All with errors allowed.
    """
    import json

    from IPython import get_ipython

    shell = get_ipython()
    with open(path, encoding="utf-8") as f:
        sources = json.load(f)
    for source in sources:
        shell.run_cell(source, store_history=True)


# ------------------------------------------------------------------------------ the course's references


class ReferenceUnavailableError(RuntimeError):
    """The learner's code called the course's own version of a function the exercise asks them to write."""


def _guard(original: Callable[..., Any], message: str) -> Callable[..., Any]:
    """``original`` for the course's own code; :class:`ReferenceUnavailableError` for any other caller."""

    @functools.wraps(original)
    def guard(*args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_code.co_filename
        if caller.startswith(_PACKAGE_DIR) and not caller.startswith(_GRADING_DIR):
            return original(*args, **kwargs)
        raise ReferenceUnavailableError(message)

    del guard.__wrapped__  # type: ignore[attr-defined]
    guard._bertcourse_guard = True  # type: ignore[attr-defined]
    return guard


class _GuardLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, apply: Callable[[ModuleType], None]) -> None:
        self.loader, self.apply = loader, apply

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.apply(module)


class _GuardFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of every ``bertcourse`` module so that its references are guarded once it has run."""

    def __init__(self, apply: Callable[[ModuleType], None]) -> None:
        self.apply = apply

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name.startswith("bertcourse.grading.") and name.split(".")[2] not in KERNEL_MODULES:
            raise ImportError(f"{name} holds the grader's oracles: it is not available while grading", name=name)
        if name.split(".")[0] != "bertcourse" or name.startswith("bertcourse.grading"):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _GuardLoader(spec.loader, self.apply)
                return spec
        return None


_GRADING_DIR = str(Path(__file__).resolve().parent)
KERNEL_MODULES = ("codec", "driver", "model_functions", "nanny", "report")
"""The grading modules a kernel may import while it is graded (no oracles among them)."""


def forbid(exercise: str, functions: list[str]) -> None:
    """Run by the grader in the kernel before the submission: the course's own ``functions`` refuse the learner.

    Every ``bertcourse`` module attribute named like a function the exercise asks for (the reference
    in ``bertcourse.attention``, and its re-exports) becomes a guard that still serves the course's
    own code (a model calling its attention) but raises :class:`ReferenceUnavailableError`, with a
    message naming the exercise, for any other caller; modules imported later (or reloaded) are
    guarded as they load.
    """
    names = set(functions)

    def apply(module: ModuleType) -> None:
        name = getattr(module, "__name__", "")
        if name.split(".")[0] != "bertcourse" or name.startswith("bertcourse.grading"):
            return
        for attribute in names & set(vars(module)):
            original = vars(module)[attribute]
            ours = callable(original) and str(getattr(original, "__module__", "")).startswith("bertcourse")
            if ours and not getattr(original, "_bertcourse_guard", False):
                where = f"{original.__module__}.{attribute}"
                message = (
                    f"exercise {exercise} asks you to write {attribute} yourself: the course's {where} "
                    "is not available while grading"
                )
                setattr(module, attribute, _guard(original, message))

    for module in list(sys.modules.values()):
        if isinstance(module, ModuleType):
            apply(module)
    sys.meta_path.insert(0, _GuardFinder(apply))
