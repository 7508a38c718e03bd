"""The check framework: an exercise's checks as data (queries, then properties judged in the grader).

HOW TO WRITE AN EXERCISE ON THIS FRAMEWORK. Write ``bertcourse/grading/exNN_<name>.py`` for
``solutions/NN_<name>.ipynb`` (the number must match). In it, make ``EXERCISE = Exercise("NN_<name>.ipynb")``
and, for each task, a builder decorated with ``@EXERCISE.task("<function>", points=P)`` that receives a
fresh :class:`Task` ``t``. In the builder, first ``t.query("<name>", *args, **kwargs)`` once per call of the
learner's function you need (inputs: seeded tensors from :func:`randn`, ints, floats, bools, None,
lists/tuples/dicts of those, and :class:`~bertcourse.grading.codec.Seed`, a course model, or a
:class:`~bertcourse.grading.codec.ModelFunction`; ``keep_inputs=True`` also brings back the arguments
after the call); then declare properties with ``@t.property("<what holds>", on="<the input, in words>")``
on a function ``(a: Answers) -> str | None`` that reads outputs as ``a["<query>"]`` and returns None if
the property holds, else a hint that names the mistake, never the fix (:func:`compare` with a list of
``(hint, what that mistake returns)`` pairs, computed with framework oracles on the same inputs, does
most of this). One property per thing that can go wrong: a bug should fail the properties it breaks,
not all of them (so check shape and dtype in one property, and judge values apart from the shape in
the others; :func:`expect_tensor` is the shape-and-dtype property). The one-line forms
``t.equals``, ``t.shape``, ``t.same`` and ``t.unchanged`` cover most properties (:mod:`~bertcourse.grading.kit`
has them, and the shared oracles); declare a property that a constant answer could pass (a shape,
a type, an invariance) with ``gated=True``: it then counts only beside a value property that passed.
``t.error_hint(regex, hint)`` adds a hint when the function raises and the regex matches its
exception, line or warnings (e.g. ``k.T`` on a 4-D tensor). A ``ModelFunction("model_functions",
name, model)`` is rebuilt in the kernel as ``MODEL_FUNCTIONS[name](model)`` of
:mod:`~bertcourse.grading.model_functions` (the kernel cannot see the exercise modules). Behaviour (perturb a
future token, rates over many seeds) is just more queries. Then
``check_<function> = EXERCISE.check("<function>")`` at module level; the solution's check cell is
``from bertcourse.grading import check_<function>`` and ``check_<function>(<function>)``, with nbgrader
metadata ``grade_id: "check_<function>"``, ``points: P``. A property must never call the learner's
code: it only sees returned data. Tests: put the correct answers (``CORRECT``) and the typical
mistakes (``MUTANTS``) in ``tests/mutants/exNN_<name>.py``; ``tests/test_grading_exercises.py`` finds
the new module and runs the shared tests on it (``ex01_attention.py`` is the module to copy).

What happens where. In the notebook, ``check_<function>(fn)`` builds the task, calls ``fn`` on every
query (:func:`~bertcourse.grading.driver.answer_queries`: fresh inputs, a fixed global seed,
warnings and stderr captured, the return value converted to plain data), judges the properties,
prints the report and evaluates to the points earned, so nbgrader gives partial credit and Run All
goes on. ``python -m bertcourse.grade`` builds the same task in its own process, sends the same
queries to the submission's kernel, gets the outcomes back as plain data and judges them with the
same property code; it never runs the learner's code in its own process, and the notebook's printed
output counts for nothing.

A worked example, the first task of exercise 01 (see ``ex01_attention.py`` for all four)::

    EXERCISE = Exercise("01_attention.ipynb")

    @EXERCISE.task("softmax", points=2)
    def softmax_task(t: Task) -> None:
        x = randn(2, 3, 5, seed=0) * 3
        t.query("rows", x, dim=-1)

        @t.property("equals torch.softmax along the last axis", on="x (2, 3, 5), float64")
        def rows(a: Answers) -> str | None:
            wrong = [("normalised along axis 0 instead of along dim", torch.softmax(x, dim=0))]
            return compare(a["rows"], torch.softmax(x, dim=-1), wrong)

    check_softmax = EXERCISE.check("softmax")
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import itertools
import math
import pkgutil
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch
from torch import Tensor

from bertcourse.grading import codec
from bertcourse.grading.driver import answer_queries
from bertcourse.grading.report import CheckResult, PropertyResult, Status, clean

__all__ = [
    "Answers",
    "Exercise",
    "Mistake",
    "Task",
    "compare",
    "exercise_for",
    "expect_tensor",
    "judge",
    "randn",
]

Mistake = tuple[str, Any]
"""A typical mistake: the hint to give, and what the learner's function returns when it makes it."""


class NotAttemptedError(Exception):
    """The query the property reads raised ``NotImplementedError``."""


class UnansweredError(Exception):
    """The query the property reads has no value: the function raised, or returned what cannot be read."""


_CLASS_SEED = 0


def set_class_seed(seed: int) -> None:
    """Draw every :func:`randn` input from ``seed`` too (0: the public inputs a notebook's checks use).

    The grade command sets a secret per-class seed, so a table of answers to the public inputs is
    worth nothing; the shapes, masks and other symmetry-breaking cases stay as written.
    """
    global _CLASS_SEED
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _CLASS_SEED = seed


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Standard normal entries from a generator of its own (the global generator is never touched).

    The generator's seed mixes ``seed`` with the class seed (:func:`set_class_seed`).
    """
    if _CLASS_SEED:
        digest = hashlib.sha256(f"{_CLASS_SEED}:{seed}".encode()).digest()
        seed = int.from_bytes(digest[:8], "little") & (2**63 - 1)
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class Property:
    name: str  # what holds, in words: "a boolean mask hides keys (True = may attend)"
    on: str  # the input, in words
    test: Callable[[Answers], str | None]
    gated: bool = False  # a constant answer can pass it: it counts only if some value property passed too


def _identity(value: Any) -> Any:
    return value


GATED = "counts only together with a property that checks values, and none of those passed"


@dataclass
class Task:
    """One graded function: the queries it is called on, and the properties its outputs must have."""

    function: str
    points: float
    grade_id: str
    queries: dict[str, tuple[tuple[Any, ...], dict[str, Any], bool]] = field(default_factory=dict)
    properties: list[Property] = field(default_factory=list)
    error_hints: list[tuple[str, str, str | None]] = field(default_factory=list)

    def query(self, name: str, *args: Any, keep_inputs: bool = False, **kwargs: Any) -> None:
        """Call the learner's function as ``fn(*args, **kwargs)``; its output is then ``answers[name]``."""
        if name in self.queries:
            raise ValueError(f"{self.function}: query {name!r} declared twice")
        self.queries[name] = (args, kwargs, keep_inputs)

    def property(
        self, name: str, on: str = "", gated: bool = False
    ) -> Callable[[Callable[[Answers], str | None]], Callable[..., Any]]:
        """Decorator: ``test(answers)`` returns None when the property holds, else what is wrong, with a hint.

        ``gated=True`` for a property that a constant or input-independent answer can pass (a shape, a
        type, leaving the inputs alone): it earns points only together with a value property that passed.
        """

        def register(test: Callable[[Answers], str | None]) -> Callable[[Answers], str | None]:
            self.properties.append(Property(name, on, test, gated))
            return test

        return register

    def equals(
        self,
        name: str,
        query: str,
        expected: Any,
        mistakes: Sequence[Mistake] | Callable[[], Sequence[Mistake]] = (),
        on: str = "",
        read: Callable[[Any], Any] = _identity,
        rtol: float = 1e-6,
        atol: float = 1e-8,
        hint: str = "",
        gated: bool = False,
    ) -> None:
        """Property ``name``: the output of ``query`` (through ``read``) equals the oracle's ``expected``.

        With ``hint``, any difference reads as that hint (for an invariance: "padding leaks into the mean").
        """

        def test(a: Answers) -> str | None:
            problem = compare(read(a[query]), expected, mistakes, rtol=rtol, atol=atol)
            return hint if problem and hint else problem

        self.properties.append(Property(name, on, test, gated))

    def same(
        self, name: str, query: str, like: str, hint: str, on: str = "", read: Callable[[Any], Any] = _identity
    ) -> None:
        """Gated property ``name``, an invariance: the output of ``query`` equals that of ``like``, else ``hint``."""

        def test(a: Answers) -> str | None:
            reference = read(a[like])
            return None if compare(read(a[query]), reference) is None else hint

        self.properties.append(Property(name, on, test, gated=True))

    def shape(
        self,
        name: str,
        query: str,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        hints: dict[tuple[int, ...], str] | None = None,
        on: str = "",
    ) -> None:
        """Property ``name``: the output of ``query`` is a tensor of this shape and dtype (:func:`expect_tensor`)."""
        self.properties.append(Property(name, on, lambda a: expect_tensor(a[query], shape, dtype, hints), gated=True))

    def unchanged(self, query: str, before: dict[str, Any], on: str = "", hint: str = "") -> None:
        """Property "leaves its input(s) unchanged": the arguments of ``query`` after the call equal ``before``.

        ``before`` maps each argument's name to its value before the call, in the order of the call's
        positional arguments (the query must be declared with ``keep_inputs=True``).
        """

        def test(a: Answers) -> str | None:
            after = a.inputs_after(query)
            for (argument, value), now in zip(before.items(), after, strict=False):
                if compare(now, value) is not None:
                    return f"your function modified {argument} in place" + (f" ({hint})" if hint else "")
            return None

        plural = "s" if len(before) > 1 else ""
        self.properties.append(Property(f"leaves its input{plural} unchanged", on, test, gated=True))

    def error_hint(self, pattern: str, hint: str, query: str | None = None) -> None:
        """Add ``hint`` when the learner's function raises (on ``query``, or any) and ``pattern`` matches.

        The regex is searched in the exception's type, message and line of code, and in the warnings
        the call emitted (e.g. torch's warning about ``x.T`` on a 4-D tensor).
        """
        re.compile(pattern)
        self.error_hints.append((pattern, hint, query))

    def request(self) -> list[dict[str, Any]]:
        """The queries as plain data for :func:`~bertcourse.grading.driver.answer_queries`."""
        return [
            {"name": name, "inputs": _blob(codec.dumps((list(args), kwargs), allow_objects=True)), "keep_inputs": keep}
            for name, (args, kwargs, keep) in self.queries.items()
        ]


def _blob(blob: bytes) -> Tensor:
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8)


class Answers:
    """The learner's outputs, by query name, as a property sees them.

    ``answers[name]`` is the value query ``name`` returned; reading a query whose call raised
    ``NotImplementedError`` makes the property *not attempted*, and reading one whose call raised
    anything else makes it fail with the learner's own exception.
    """

    def __init__(self, answers: object, error_hints: Sequence[tuple[str, str, str | None]] = ()) -> None:
        self._error_hints = error_hints
        self._missing = ""
        self._outcomes: dict[str, Any] = {}
        if isinstance(answers, dict) and isinstance(answers.get("missing"), str):
            self._missing = clean(answers["missing"], 300)
        elif isinstance(answers, dict) and isinstance(answers.get("outcomes"), dict):
            self._outcomes = answers["outcomes"]
        else:
            self._missing = "the kernel sent back no answers the grader can read"

    def _outcome(self, name: str) -> dict[str, Any]:
        if self._missing:
            raise UnansweredError(self._missing)
        outcome = self._outcomes.get(name)
        if not isinstance(outcome, dict):
            raise UnansweredError(f"no answer for query {name!r}")
        if "not_attempted" in outcome:
            raise NotAttemptedError
        if isinstance(outcome.get("raised"), dict):
            raised = outcome["raised"]
            text = f"your function raised {raised.get('type', '?')}: {raised.get('message', '')}"
            if raised.get("where"):
                text += f"\n  {raised['where']}"
            text = clean(text, 1200)
            seen = f"{text}\n{outcome.get('output', '')}"
            for pattern, hint, query in self._error_hints:
                if query in (None, name) and re.search(pattern, seen):
                    text += f"\nhint: {hint}"
            raise UnansweredError(text)
        if "unsupported" in outcome:
            raise UnansweredError(clean(f"your function returned {outcome['unsupported']}", 600))
        if "value" not in outcome:
            raise UnansweredError(f"no answer for query {name!r}")
        return outcome

    def __getitem__(self, name: str) -> Any:
        return self._outcome(name)["value"]

    def inputs_after(self, name: str) -> list[Any]:
        """The arguments of query ``name`` after the call (declared with ``keep_inputs=True``)."""
        inputs = self._outcome(name).get("inputs_after")
        if not isinstance(inputs, list):
            raise UnansweredError(f"no inputs for query {name!r}")
        return inputs

    def output(self) -> str:
        """Warnings and stderr the function wrote, over all queries (each distinct text once)."""
        outcomes = [o for o in self._outcomes.values() if isinstance(o, dict)]
        texts = [o["output"] for o in outcomes if isinstance(o.get("output"), str)]
        return clean("".join(dict.fromkeys(texts)), 1500)


def judge(task: Task, answers: object) -> CheckResult:
    """Judge every property of ``task`` on the learner's outcomes (plain data only) and collect the results."""
    view = Answers(answers, task.error_hints)
    result = CheckResult(task.function, float(task.points), output=view.output())
    for prop in task.properties:
        try:
            detail = prop.test(view)
        except NotAttemptedError:
            result.properties.append(PropertyResult(prop.name, Status.NOT_ATTEMPTED, prop.on))
            continue
        except UnansweredError as why:
            detail = str(why)
        except Exception as exc:  # the output is so odd that the property code choked on it
            detail = f"the grader could not read your output ({type(exc).__name__}: {clean(exc, 200)})"
        if detail is not None and not isinstance(detail, str):
            raise TypeError(f"property {prop.name!r} of {task.function} returned {type(detail).__name__}")
        status = Status.PASSED if detail is None else Status.FAILED
        result.properties.append(PropertyResult(prop.name, status, prop.on, clean(detail or "", 1500)))
    pairs = list(zip(task.properties, result.properties, strict=True))
    values_passed = any(r.status is Status.PASSED for p, r in pairs if not p.gated)
    if not values_passed and any(p.gated for p in task.properties):
        result.properties = [
            PropertyResult(r.name, Status.FAILED, r.on, GATED) if p.gated and r.status is Status.PASSED else r
            for p, r in pairs
        ]
    return result


class Exercise:
    """The tasks of one exercise notebook, by grade_id; each is built afresh from its builder."""

    def __init__(self, notebook: str) -> None:
        self.notebook = notebook
        self.builders: dict[str, tuple[str, float, Callable[[Task], None]]] = {}

    def task(
        self, function: str, points: float, grade_id: str | None = None
    ) -> Callable[[Callable[[Task], None]], Callable[[Task], None]]:
        """Decorator for a builder ``(t: Task) -> None`` of the task whose check cell has ``grade_id``."""
        gid = grade_id or f"check_{function}"

        def register(build: Callable[[Task], None]) -> Callable[[Task], None]:
            if gid in self.builders:
                raise ValueError(f"{self.notebook}: grade_id {gid!r} declared twice")
            self.builders[gid] = (function, points, build)
            return build

        return register

    def build(self, grade_id: str) -> Task:
        function, points, build = self.builders[grade_id]
        task = Task(function, points, grade_id)
        build(task)
        return task

    def check(self, function: str) -> Callable[[object], float]:
        """The notebook's ``check_<function>(fn)``: prints the report and evaluates to the points earned."""
        (gid,) = [gid for gid, (name, _, _) in self.builders.items() if name == function]

        def check(fn: object) -> float:
            if not callable(fn):
                raise ValueError(
                    f"check_{function} expects your function itself, e.g. check_{function}({function}), "
                    f"got {type(fn).__name__} {fn!r:.60}"
                )
            task = self.build(gid)
            result = judge(task, answer_queries(fn, task.request()))
            sys.stdout.write(f"{result}\n")
            return result.points

        check.__name__ = check.__qualname__ = f"check_{function}"
        check.__doc__ = (
            f"Check your ``{function}``: print one line per property (ok, FAIL with a hint, or todo) and "
            f"evaluate to the points earned out of {self.builders[gid][1]:g}."
        )
        return check


@cache
def _exercise_modules() -> dict[str, str]:
    import bertcourse.grading as package

    return {m.name: f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)}


def exercise_for(notebook: str) -> Exercise | None:
    """The :class:`Exercise` of the source notebook named ``notebook`` (``NN_name.ipynb`` -> ``exNN_name.py``).

    Raises ValueError if two check modules carry the notebook's number (``ex01_a.py`` and ``ex01_b.py``).
    """
    stem = notebook.removesuffix(".ipynb")
    if not re.fullmatch(r"\d\d_\w+", stem):
        return None
    _exercise_module_names()  # refuses two modules with one number
    module = _exercise_modules().get(f"ex{stem}")
    if module is None:
        return None
    exercise = getattr(importlib.import_module(module), "EXERCISE", None)
    return exercise if isinstance(exercise, Exercise) and exercise.notebook == notebook else None


def _exercise_module_names() -> list[str]:
    """The exercise modules in number order; ValueError if two share a number (both would match one notebook)."""
    names = sorted(name for name in _exercise_modules() if re.fullmatch(r"ex\d\d_\w+", name))
    for first, second in itertools.pairwise(names):
        if first[:4] == second[:4]:
            raise ValueError(
                f"two check modules for exercise {first[2:4]}: bertcourse/grading/{first}.py and {second}.py; keep one"
            )
    return [_exercise_modules()[name] for name in names]


@cache
def _check_owners() -> dict[str, list[str]]:
    """Which exercise modules define each ``check_<function>`` (read from their source, importing nothing)."""
    owners: dict[str, list[str]] = {}
    for module in _exercise_module_names():
        spec = importlib.util.find_spec(module)
        source = open(spec.origin, encoding="utf-8").read() if spec and spec.origin else ""  # noqa: SIM115
        for name in re.findall(r"^(check_\w+)\s*=", source, flags=re.MULTILINE):
            owners.setdefault(name, []).append(module)
    return owners


def find_check(name: str) -> Callable[[object], float] | None:
    """``check_<function>`` of the exercise module that defines it; ValueError if two modules define it.

    Only that module is imported, so exercise 01's checks never depend on later exercises.
    """
    owners = _check_owners().get(name, [])
    if len(owners) > 1:
        raise ValueError(f"{name} is defined by two check modules, {' and '.join(owners)}: keep one")
    for module in owners:
        check = getattr(importlib.import_module(module), name, None)
        if callable(check):
            return check
    return None


def all_checks() -> dict[str, Callable[[object], float]]:
    """Every ``check_*`` function of every exercise module, by name."""
    checks = {}
    for module in _exercise_module_names():
        mod = importlib.import_module(module)
        checks.update({k: v for k, v in vars(mod).items() if k.startswith("check_") and callable(v)})
    return checks


# ------------------------------------------------------------------------------ comparing outputs


def _close(actual: Any, expected: Any, rtol: float, atol: float) -> bool:
    """Same shape and values (NaN where ``expected`` has NaN: a mistake may produce them); dtype is judged elsewhere."""
    if isinstance(expected, Tensor):
        if type(actual) is not Tensor or actual.shape != expected.shape:
            return False
        if expected.dtype == torch.bool or not expected.is_floating_point():
            return bool(torch.equal(actual.to(expected.dtype), expected))
        return bool(torch.allclose(actual.to(expected.dtype), expected, rtol=rtol, atol=atol, equal_nan=True))
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        ok_type = isinstance(actual, (int, float)) and not isinstance(actual, bool)
        return ok_type and math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol)
    return type(actual) is type(expected) and actual == expected


def compare(
    actual: Any,
    expected: Any,
    mistakes: Sequence[Mistake] | Callable[[], Sequence[Mistake]] = (),
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> str | None:
    """None if ``actual`` matches ``expected``; else the hint of the first mistake it matches, else what differs.

    ``expected`` is a tensor (compared with ``allclose`` after casting to its dtype; exact for bool and
    integer tensors), a number, or any plain value (compared with ``==``). ``mistakes`` may be a
    function that returns them, so that they are only computed for a wrong answer.
    """
    if isinstance(expected, Tensor) and type(actual) is not Tensor:
        return f"expected a torch.Tensor, got {type(actual).__name__}"
    if _close(actual, expected, rtol, atol):
        return None
    for hint, wrong in mistakes() if callable(mistakes) else mistakes:
        if _close(actual, wrong, rtol, atol):
            return hint
    if not isinstance(expected, Tensor):
        return f"expected {expected!r:.60}, got {actual!r:.60}"
    if actual.shape != expected.shape:
        return f"expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}"
    if actual.numel() == 0:
        return "values differ from the reference"
    if actual.is_floating_point() and not torch.isfinite(actual).all() and torch.isfinite(expected).all():
        return "the result holds NaN or inf where the reference is finite"
    error = (actual.double() - expected.double()).abs()
    index = tuple(int(i) for i in torch.unravel_index(error.nan_to_num(math.inf).argmax(), error.shape))
    return (
        f"values differ from the reference: largest |difference| {error[index].item():.3g} at index {index} "
        f"(got {actual[index].item():.4g}, expected {expected[index].item():.4g})"
    )


def expect_tensor(
    actual: Any, shape: tuple[int, ...], dtype: torch.dtype, hints: dict[tuple[int, ...], str] | None = None
) -> str | None:
    """None if ``actual`` is a tensor of this shape and dtype; else what is wrong (``hints`` by wrong shape)."""
    if type(actual) is not Tensor:
        return f"expected a torch.Tensor, got {type(actual).__name__}"
    if tuple(actual.shape) != tuple(shape):
        hint = (hints or {}).get(tuple(actual.shape), "")
        return f"expected shape {tuple(shape)}, got {tuple(actual.shape)}" + (f": {hint}" if hint else "")
    if actual.dtype != dtype:
        return f"expected dtype {dtype}, got {actual.dtype}"
    return None
