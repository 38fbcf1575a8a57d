"""Mutation testing of ``pipeline/`` and ``stages/``, one module at a time (``make mutation``).

Why not mutmut 3: it has no statement-deletion operator, so the mutants that matter most
here (a deleted ``raise``, ``_secrets.add(...)``, ``await window.acquire()``, ``task.cancel()``)
cannot even be generated; it reads its settings only from ``setup.cfg``/``pyproject.toml``;
and it files a hung mutant as "timeout", not killed. This script is small and does what we need:

* **Mutants** (inside function bodies only, as mutmut does): delete a simple statement
  (replaced by ``pass``), swap a comparison, ``and``/``or`` or an arithmetic operator,
  drop a ``not``, take either arm of a conditional expression, bump a number, flip a
  boolean, and garble a short identifier-like string (a key, a header name, a status word;
  prose messages and f-strings are left alone). Docstrings and logging calls are not mutated.
* **Tests per mutant**: one baseline run of the module's tests under coverage, with one
  coverage context per test, tells which tests execute each line; a mutant runs only those.
  A mutant no test executes is reported as ``uncovered`` (a survivor).
* **Isolation**: the parent imports pytest and the heavy third-party libraries once, then
  forks one child per mutant; the child serves the mutated source for the module through
  an import hook (nothing is written to the source tree) and runs ``pytest -x``.
* **Hangs count as killed**: every test runs under ``pytest --timeout`` (short, 10 s by
  default), and a child still running after ``--hard-limit`` seconds is killed (``timeout``).

Only in-process code is mutated: a test that runs the CLI in a subprocess sees the original.
Results go to ``mutants/<module>.json`` and ``mutants/<module>.txt`` (survivors with diffs).

Usage: ``python tools/mutate.py [--jobs N] [--timeout S] [--tests PATH ...] [MODULE ...]``
(default: every module of ``pipeline/`` and ``stages/``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import dataclasses
import difflib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "mutants"
PACKAGES = ("pipeline", "stages")
# Third-party libraries imported once in the parent, so each forked child starts warm.
WARM = (
    "pytest",
    "pandas",
    "numpy",
    "aiohttp",
    "yaml",
    "tenacity",
    "aioresponses",
    "hypothesis",
    "pyarrow",
    "multidict",
)
# The tests of a module, where grepping for its imports would pull in slow end-to-end files (CLI, S3) that add
# time but no kills. Unlisted modules get every test file importing them; ``test_*<stem>*.py`` (the module's
# behaviour files: ``test_layout.py``, ``test_tmdb_client.py``, ``test_local_loader.py``, ...) always.
TESTS: dict[str, tuple[str, ...]] = {
    "pipeline/redact.py": (
        "tests/stages/extractors/test_tmdb_secrets.py",
        "tests/pipeline/test_runner.py",
        "tests/stages/extractors/test_fidelity_extractor.py",
    ),
    "pipeline/config.py": ("tests/pipeline/test_config.py",),
    "stages/extractors/tmdb/ratelimit.py": (
        "tests/stages/extractors/test_tmdb_ratelimit.py",
        "tests/stages/extractors/test_tmdb_extractor.py",
    ),
    "stages/extractors/tmdb/client.py": (
        "tests/stages/extractors/test_tmdb_extractor.py",
        "tests/stages/extractors/test_tmdb_secrets.py",
        "tests/stages/extractors/test_fidelity_extractor.py",
    ),
    "stages/extractors/tmdb/extractor.py": (
        "tests/stages/extractors/test_tmdb_extractor.py",
        "tests/stages/extractors/test_fidelity_extractor.py",
    ),
}
_LOGGERS = {"logger", "logging", "log", "_log"}
_SHORT_STRING = re.compile(r"^[\w.:/%*+-]{0,40}$")


# -- mutants ---------------------------------------------------------------------------
@dataclasses.dataclass
class Mutant:
    """One mutation: its index in the module's walk order, what it does and where."""

    index: int
    description: str
    line: int
    end_line: int
    status: str = "pending"
    tests: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


_SWAPS: dict[type[ast.AST], type[ast.AST]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.And: ast.Or,
    ast.Or: ast.And,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.Div,
    ast.Pow: ast.Mult,
}


def _is_logging_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    target = node.func.value
    return isinstance(target, ast.Name) and target.id in _LOGGERS


class Mutator(ast.NodeTransformer):
    """Walks a module in a fixed order; lists its mutants, or applies the one at ``target``."""

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.found: list[Mutant] = []
        self._count = 0
        self._in_function = 0

    def _offer(self, node: ast.AST, description: str, make: Callable[[], ast.AST]) -> ast.AST | None:
        index = self._count
        self._count += 1
        if self.target is None:
            line = getattr(node, "lineno", 0)
            self.found.append(Mutant(index, description, line, getattr(node, "end_lineno", line) or line))
        elif index == self.target:
            return make()
        return None

    # functions: only their bodies are mutated, never signatures, defaults or decorators
    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        self._in_function += 1
        body = node.body
        start = 1 if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else 0
        node.body = body[:start] + self._statements(body[start:])
        self._in_function -= 1
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._function(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.body = [self.visit(s) for s in node.body]
        return node

    def _statements(self, body: list[ast.stmt]) -> list[ast.stmt]:
        return [self.visit(statement) for statement in body]

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if not self._in_function:
            if isinstance(node, ast.Module):
                node.body = [self.visit(s) for s in node.body]
            return node
        if isinstance(node, ast.stmt) and not isinstance(
            node,
            ast.FunctionDef
            | ast.AsyncFunctionDef
            | ast.ClassDef
            | ast.If
            | ast.For
            | ast.AsyncFor
            | ast.While
            | ast.With
            | ast.AsyncWith
            | ast.Try
            | ast.Match
            | ast.Pass
            | ast.Global
            | ast.Nonlocal
            | ast.Import
            | ast.ImportFrom,
        ):
            if isinstance(node, ast.Expr) and _is_logging_call(node.value):
                return node
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                return node
            deleted = self._offer(node, f"delete `{_short(node)}`", lambda: ast.copy_location(ast.Pass(), node))
            if deleted is not None:
                return deleted
        return super().generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if not self._in_function or node.value is None:
            return node  # a bare annotation does nothing at run time
        deleted = self._offer(node, f"delete `{_short(node)}`", lambda: ast.copy_location(ast.Pass(), node))
        if deleted is not None:
            return deleted
        node.value = self.visit(node.value)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        return node if _is_logging_call(node) else self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return node  # messages

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        if self._in_function:
            for i, op in enumerate(node.ops):
                if type(op) in _SWAPS:

                    def make(i: int = i, op: ast.cmpop = op) -> ast.AST:
                        new = copy.deepcopy(node)
                        swapped: Any = _SWAPS[type(op)]()
                        new.ops[i] = swapped
                        return new

                    replaced = self._offer(node, f"`{_op(op)}` -> `{_op(_SWAPS[type(op)]())}`", make)
                    if replaced is not None:
                        return replaced
        return self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        if self._in_function:
            swapped: Any = _SWAPS[type(node.op)]()
            replaced = self._offer(
                node, f"`{_op(node.op)}` -> `{_op(swapped)}`", lambda: ast.BoolOp(swapped, copy.deepcopy(node.values))
            )
            if replaced is not None:
                return ast.copy_location(replaced, node)
        return self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        if self._in_function and type(node.op) in _SWAPS:
            swapped: Any = _SWAPS[type(node.op)]()
            replaced = self._offer(
                node,
                f"`{_op(node.op)}` -> `{_op(swapped)}`",
                lambda: ast.BinOp(copy.deepcopy(node.left), swapped, copy.deepcopy(node.right)),
            )
            if replaced is not None:
                return ast.copy_location(replaced, node)
        return self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if self._in_function and isinstance(node.op, ast.Not):
            replaced = self._offer(node, f"drop `not` in `{_short(node)}`", lambda: copy.deepcopy(node.operand))
            if replaced is not None:
                return replaced
        return self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        if self._in_function:
            for arm in ("body", "orelse"):

                def make(arm: str = arm) -> ast.AST:
                    chosen: ast.AST = copy.deepcopy(getattr(node, arm))
                    return chosen

                replaced = self._offer(node, f"always the {arm} arm of `{_short(node)}`", make)
                if replaced is not None:
                    return replaced
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if not self._in_function:
            return node
        value = node.value
        new: Any
        if isinstance(value, bool):
            new = not value
        elif isinstance(value, int | float):
            new = value + 1
        elif isinstance(value, str) and _SHORT_STRING.match(value):
            new = f"XX{value}XX"
        else:
            return node
        replaced = self._offer(node, f"{value!r} -> {new!r}", lambda: ast.copy_location(ast.Constant(new), node))
        return node if replaced is None else replaced


def _op(op: ast.AST) -> str:
    symbols = {
        ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
        ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or",
        ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
    }  # fmt: skip
    return symbols.get(type(op), type(op).__name__)


def _short(node: ast.AST, width: int = 60) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def list_mutants(source: str) -> list[Mutant]:
    """Every mutant of ``source``, in walk order."""
    mutator = Mutator()
    mutator.visit(ast.parse(source))
    return mutator.found


def mutated_source(source: str, index: int) -> str:
    """``source`` with mutant ``index`` applied (re-rendered from the AST: comments are gone)."""
    tree = Mutator(index).visit(ast.parse(source))
    return ast.unparse(ast.fix_missing_locations(tree))


def diff(source: str, index: int) -> str:
    """The mutant as a unified diff against the same module re-rendered without it."""
    before = ast.unparse(ast.parse(source)).splitlines()
    after = mutated_source(source, index).splitlines()
    return "\n".join(difflib.unified_diff(before, after, "original", f"mutant {index}", n=1, lineterm=""))


# -- running -----------------------------------------------------------------------------
class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module's mutated source in place of its file."""

    def __init__(self, name: str, path: Path, source: str) -> None:
        self.name, self.path, self.source = name, path, source

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path, loader=self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        exec(compile(self.source, str(self.path), "exec"), module.__dict__)


def _pytest_args(tests: Sequence[str], timeout: float) -> list[str]:
    return ["-x", "-q", "-p", "no:randomly", f"--timeout={timeout:g}", "-W", "ignore::DeprecationWarning", *tests]


def _in_child(body: Callable[[], int], log: Path) -> int:
    """Fork; the child runs ``body`` with its output in ``log`` and exits with its return value."""
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = body()
    except BaseException:  # the child must never return into the parent's loop
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def baseline(
    module: str, tests: Sequence[str], timeout: float, work: Path
) -> tuple[dict[int, list[str]], dict[str, float], float]:
    """Run the module's tests once under coverage: the tests that run each line, their durations, the wall time."""
    import coverage
    import pytest

    path = str(ROOT / module)
    result = work / "baseline.json"

    def body() -> int:
        cov = coverage.Coverage(data_file=None, include=[path], config_file=False)

        durations: dict[str, float] = {}
        failed: set[str] = set()

        class Contexts:
            @pytest.hookimpl(hookwrapper=True)
            def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Iterator[None]:
                cov.switch_context(item.nodeid)
                yield

            def pytest_runtest_logreport(self, report: Any) -> None:
                durations[report.nodeid] = durations.get(report.nodeid, 0.0) + report.duration
                if report.failed:
                    failed.add(report.nodeid)

        cov.start()
        args = [a for a in _pytest_args(tests, timeout * 3) if a != "-x"]
        code = int(pytest.main(args, plugins=[Contexts()]))
        cov.stop()
        lines = cov.get_data().contexts_by_lineno(path)
        by_line = {str(k): sorted(c for c in v if c and c not in failed) for k, v in lines.items()}
        result.write_text(json.dumps({"lines": by_line, "durations": durations, "failed": sorted(failed)}))
        return 0 if code == 1 and failed else code

    started = time.monotonic()
    pid = _in_child(body, work / "baseline.log")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{module}: the tests fail without any mutant (exit {code}); see {work / 'baseline.log'}")
    data = json.loads(result.read_text())
    for test in data["failed"]:
        say(f"  warning: {test} fails without any mutant; it is left out")
    return {int(k): v for k, v in data["lines"].items()}, data["durations"], time.monotonic() - started


def run_module(
    module: str,
    tests: Sequence[str],
    jobs: int,
    timeout: float,
    hard_limit: float,
    only: set[int] | None = None,
) -> list[Mutant]:
    """Every mutant of ``module`` (or those numbered in ``only``) against the tests that execute its lines."""
    import pytest

    source = (ROOT / module).read_text(encoding="utf-8")
    name = module.removesuffix(".py").replace("/", ".")
    mutants = [m for m in list_mutants(source) if only is None or m.index in only]
    work = Path(tempfile.mkdtemp(prefix="mutate-"))
    by_line, durations, seconds = baseline(module, tests, timeout, work)
    say(f"{module}: {len(mutants)} mutants; baseline {seconds:.1f}s over {len(tests)} test files")

    running: dict[int, tuple[Mutant, float]] = {}
    queue = list(mutants)
    for mutant in mutants:
        covering: set[str] = set()
        for line in range(mutant.line, mutant.end_line + 1):
            covering.update(by_line.get(line, ()))
        # Quickest first, so that a mutant dies as early as it can (pytest -x stops at the first failure).
        mutant.tests = sorted(covering, key=lambda test: (durations.get(test, 0.0), test))
    done = 0
    while queue or running:
        while queue and len(running) < jobs:
            mutant = queue.pop(0)
            if not mutant.tests:
                mutant.status = "uncovered"
                done += 1
                continue
            text = mutated_source(source, mutant.index)

            def body(text: str = text, tests: list[str] = mutant.tests) -> int:
                sys.meta_path.insert(0, _MutantFinder(name, ROOT / module, text))
                return int(pytest.main(_pytest_args(tests, timeout)))

            pid = _in_child(body, work / f"{mutant.index}.log")
            running[pid] = (mutant, time.monotonic())
        if not running:  # the last of the queue was uncovered: no child to wait for
            continue
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            now = time.monotonic()
            for child, (mutant, started) in list(running.items()):
                if now - started > hard_limit:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child, signal.SIGKILL)
                    mutant.status = "timeout"
            time.sleep(0.02)
            continue
        mutant, started = running.pop(pid)
        mutant.seconds = round(time.monotonic() - started, 2)
        code = os.waitstatus_to_exitcode(status)
        if mutant.status != "timeout":
            # pytest: 0 all passed, 1 a test failed (a --timeout too), 2 interrupted, 3 internal error
            # 4: pytest found nothing to collect, because the mutant broke a test module's import: killed too
            outcomes = {0: "survived", 1: "killed", 2: "killed", 3: "killed", 4: "killed"}
            mutant.status = outcomes.get(code, f"error {code}")
        done += 1
        if done % 25 == 0:
            say(f"  {done}/{len(mutants)} done")
        if mutant.status == "survived":
            say(f"  survived #{mutant.index} line {mutant.line}: {mutant.description}")
    _report(module, source, mutants, suffix=".only" if only is not None else "")
    shutil.rmtree(work, ignore_errors=True)
    return mutants


def say(text: str) -> None:
    """One line to stdout, flushed (the children's output goes to their logs)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _report(module: str, source: str, mutants: list[Mutant], suffix: str = "") -> None:
    """``mutants/<module>.json`` and ``.txt`` (``<module>.only.*`` for a ``--only`` run, so a full report stays)."""
    OUT.mkdir(exist_ok=True)
    slug = module.removesuffix(".py").replace("/", ".") + suffix
    (OUT / f"{slug}.json").write_text(json.dumps([dataclasses.asdict(m) for m in mutants], indent=1))
    killed = sum(m.status in ("killed", "timeout") for m in mutants)
    lines = [f"{module}: {killed}/{len(mutants)} killed", ""]
    for mutant in mutants:
        if mutant.status not in ("killed", "timeout"):
            lines += [
                f"#{mutant.index} {mutant.status}, line {mutant.line}: {mutant.description}",
                diff(source, mutant.index),
                "",
            ]
    (OUT / f"{slug}.txt").write_text("\n".join(lines), encoding="utf-8")
    timeouts = sum(m.status == "timeout" for m in mutants)
    survivors = len(mutants) - killed
    say(f"{module}: {killed}/{len(mutants)} killed ({timeouts} by timeout), {survivors} left; see {OUT / slug}.txt")


def tests_for(module: str) -> list[str]:
    """The test files for ``module``: its listed ones (else those importing it) and ``test_*<stem>*.py``."""
    found = set(TESTS.get(module, ()))
    if not found:
        dotted = module.removesuffix(".py").replace("/", ".")
        pattern = re.compile(rf"(from|import)\s+{re.escape(dotted)}\b")
        for path in sorted((ROOT / "tests").rglob("test_*.py")):
            if pattern.search(path.read_text(encoding="utf-8")):
                found.add(str(path.relative_to(ROOT)))
    stem = Path(module).stem
    found.update(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob(f"test_*{stem}*.py"))
    return sorted(found) or ["tests"]


def _ensure_coverage() -> None:
    if importlib.util.find_spec("coverage") is not None:
        return
    say("installing coverage into this venv (mutation testing only, not in the test lock)")
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", "coverage"], check=False).returncode == 0:
        return
    sys.path.insert(0, str(ROOT / "requirements"))
    from deps import find_uv  # type: ignore[import-not-found]

    uv = find_uv(bootstrap=False)
    if uv is None:
        raise SystemExit("cannot install coverage: no pip and no uv in this venv")
    subprocess.run([*uv, "pip", "install", "-q", "--python", sys.executable, "coverage"], check=True)


def _numbers(text: str) -> set[int]:
    """``"3,11,20-40"`` as a set of numbers."""
    found: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found


def main(argv: list[str] | None = None) -> int:
    """Mutate the named modules (default: all of pipeline/ and stages/), one at a time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="e.g. pipeline/redact.py (default: every module)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-test timeout in seconds (default 10)")
    parser.add_argument("--hard-limit", type=float, default=120.0, help="kill a mutant's run after this many seconds")
    parser.add_argument(
        "--tests",
        action="append",
        default=None,
        help="a test path to use instead of the per-module selection (repeat it; put modules before it)",
    )
    parser.add_argument("--list", action="store_true", help="only list each module's mutants")
    parser.add_argument(
        "--only",
        default=None,
        help="run only these mutant numbers, e.g. 3,11,20-40 (one module; the report covers just them)",
    )
    args = parser.parse_args(argv)
    only = _numbers(args.only) if args.only else None
    if only is not None and len(args.modules) != 1:
        parser.error("--only needs exactly one module")
    for module in args.modules:  # a test path given before --tests, or a typo, is not mutated (nor forked for)
        path = (ROOT / module).resolve()
        inside = path.is_relative_to(ROOT) and path.relative_to(ROOT).parts[0] in PACKAGES
        if path.suffix != ".py" or not path.is_file() or not inside:
            where = " or ".join(f"{package}/" for package in PACKAGES)
            parser.error(f"{module}: not a module of {where} (test paths go after --tests)")
    os.chdir(ROOT)
    skip = ("__main__.py", "__init__.py")
    modules = args.modules or sorted(
        str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if p.name not in skip
    )
    if args.list:
        for module in modules:
            for m in list_mutants((ROOT / module).read_text(encoding="utf-8")):
                say(f"{module}:{m.line} #{m.index} {m.description}")
        return 0
    _ensure_coverage()
    for name in WARM:
        with contextlib.suppress(ImportError):
            __import__(name)
    if any(name.split(".")[0] in PACKAGES for name in sys.modules):
        raise SystemExit("the project was imported before forking: mutants would not be loaded")
    totals = []
    for module in modules:
        mutants = run_module(module, args.tests or tests_for(module), args.jobs, args.timeout, args.hard_limit, only)
        totals.append((module, sum(m.status in ("killed", "timeout") for m in mutants), len(mutants)))
    say("\nmodule: killed/total")
    for module, killed, total in totals:
        say(f"  {module}: {killed}/{total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
