"""Every install command in README.md and docs/*.md works as written, and none calls a bare ``pip``.

The docs' install commands are collected from their code blocks and inline code: ``make run`` and
``make test`` (any arguments), ``python -m venv``, ``pip install`` in any form, uv's ``venv``/``pip``/
``sync``/``add``, and ``requirements/deps.py``. Each one is run by a scenario below or excused with a
reason (``EXCUSED``); the fast tests fail when a doc gains, loses or changes one.

The scenarios themselves are slow (fresh venvs, a package index): they carry the ``install_docs``
marker, which ``setup.cfg`` deselects, and ``make docs-check`` runs them. Each runs the exact
command text in a scratch copy of the checkout (what ``git clone`` would give: tracked and
unignored files, no ``.venv`` or ``.tools``), against the package index pip and uv are configured with.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# A fenced block right after this comment is about another tool or machine (a Dockerfile, someone else's
# CI); it may call `pip` bare. Everywhere else pip runs as `<python> -m pip`, so it installs into that python.
OTHER_TOOL = "<!-- other-tool: "
FENCE = re.compile(r"^(?P<marker><!-- other-tool: [^>]*-->\n)?```[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
INSTALL = re.compile(
    r"""^(?:[A-Z_]+=\S*\s+)*(?:
        make\s+(?:run|test)(?:\s|$)
      | \S*python[\d.]*\s+(?:-m\s+(?:venv|pip\s+install)|requirements/deps\.py\s+(?:install|extras))\s
      | \S*pip3?\s+install\s
      | \S*uv\s+(?:venv|pip\s+install|sync|add|tool\s+install)(?:\s|$)
    )""",
    re.X,
)
# pip run as a command of its own: not `python -m pip`, not `uv pip`.
BARE_PIP = re.compile(r"(?<![\w./-])(?<!-m )(?<!uv )pip3?\s+install\b")
TRAILING_COMMENT = re.compile(r"\s+#\s.*$")


def install_commands(markdown: str) -> set[str]:
    """The install commands in one page: lines of its fenced blocks and its inline code spans."""
    found: set[str] = set()
    prose = FENCE.sub("", markdown)
    for block in FENCE.finditer(markdown):
        body = block["body"].replace("\\\n", " ")
        for line in body.splitlines():
            for part in re.split(r"\s*(?:&&|;)\s+", TRAILING_COMMENT.sub("", line).strip()):
                found.add(" ".join(part.split()))
    found.update(" ".join(span.split()) for span in INLINE.findall(prose))
    return {command for command in found if INSTALL.match(command)}


def bare_pip_calls(markdown: str) -> list[str]:
    """Each line that runs pip bare, outside a block marked as about another tool."""
    kept = FENCE.sub(lambda block: "" if block["marker"] else block[0], markdown)
    return [line.strip() for line in kept.splitlines() if BARE_PIP.search(line)]


def doc_commands() -> set[str]:
    """Every install command of README.md and docs/*.md."""
    return set().union(*(install_commands(page.read_text(encoding="utf-8")) for page in PAGES))


@dataclass(frozen=True)
class Step:
    """One shell command run in the scratch checkout; ``expect`` is a regex its stdout must match.

    ``{root}`` in ``expect`` stands for the scratch checkout's path.
    """

    command: str
    expect: str = ""


def check(command: str, expect: str = "") -> Step:
    """A step of the test's own (not a doc command): it checks what the doc commands before it left."""
    return Step(command, expect)


VENV_PIP = r"^pip \S+ from {root}/\.venv/lib/python3\.\d+/site-packages/pip "
WORKS = (
    check(".venv/bin/python -m pipeline --version", r"\d+\.\d+"),
    check(".venv/bin/python -m pip --version", VENV_PIP),
)

SCENARIOS: dict[str, tuple[Step, ...]] = {
    # README.md; then the extras, the plugin guide, DuckDB and moto on that venv, as their pages say.
    "make-run": (
        Step("make run"),
        *WORKS,
        # Activated, `pip` and `python -m pip` are the venv's own (a uv venv without --seed had neither).
        check(". .venv/bin/activate && pip --version", VENV_PIP),
        check('.venv/bin/python -c "import duckdb"; test $? = 1'),
        Step(". .venv/bin/activate && python -m pip install duckdb"),  # docs/operations.md
        check('.venv/bin/python -c "import duckdb"'),
        Step(".venv/bin/python -m pip install duckdb"),  # docs/lake.md
        Step("make run EXTRAS=parquet"),
        check('.venv/bin/python -c "import pyarrow.parquet"'),
        Step("make run EXTRAS=notify"),
        check('.venv/bin/python -c "import apprise"'),
        Step(".venv/bin/python -m pip install -e ./tests/plugin_pkg"),
        check(".venv/bin/python -m pipeline stages", r"row-count\s+pipeline_plugin_demo:RowCountReporter"),
        Step(".venv/bin/python -m pip install 'moto[server]'"),
        check('.venv/bin/python -c "import moto.server"'),
        *WORKS,
    ),
    # docs/development.md, installing without make: newest versions setup.cfg allows.
    "venv-pip": (
        Step("python3.11 -m venv .venv"),
        Step(".venv/bin/python -m pip install -e ."),
        *WORKS,
        Step(".venv/bin/python -m pip install -e '.[test]' ./tests/plugin_pkg"),
        check(".venv/bin/python -m pytest --version", r"pytest \d"),
        check(".venv/bin/python -m pipeline stages", r"row-count\s+pipeline_plugin_demo:RowCountReporter"),
        *WORKS,
    ),
    # docs/development.md, the locked variant: exactly CI's versions, hash-checked.
    "venv-pip-locked": (
        Step("python3.11 -m venv .venv"),
        Step(".venv/bin/python -m pip install --require-hashes -r requirements/test.lock"),
        Step(".venv/bin/python -m pip install --no-deps -e . ./tests/plugin_pkg"),
        check(".venv/bin/python -m pipeline stages", r"row-count\s+pipeline_plugin_demo:RowCountReporter"),
        *WORKS,
    ),
    # README.md: deps.py's second way to uv. A scratch user base keeps it out of the real ~/.local.
    "uv-user": (
        Step("python3 -m pip install --user uv"),
        check("python3 -m uv --version", r"^uv \d"),
    ),
}

EXCUSED = {
    "make test": ".ci/run runs exactly this on a fresh clone, right before `make docs-check`",
    "make test USE_UV=no": (
        "the whole suite once more (minutes); the pip path it forces runs the commands of the "
        "venv-pip-locked scenario (requirements/deps.py)"
    ),
    "uv venv --seed": "names what `make run` runs to create .venv; the make-run scenario checks that venv's pip",
}


def scenario_commands() -> set[str]:
    """The doc commands the scenarios run (their own checks are not install commands)."""
    return {
        step.command.removeprefix(". .venv/bin/activate && ")
        for steps in SCENARIOS.values()
        for step in steps
        if INSTALL.match(step.command.removeprefix(". .venv/bin/activate && "))
    }


def test_every_install_command_in_the_docs_is_run_or_excused() -> None:
    documented = doc_commands()

    assert documented - scenario_commands() - EXCUSED.keys() == set(), "add it to a scenario, or excuse it"
    assert scenario_commands() - documented == set(), "a scenario runs a command no doc shows any more"
    assert EXCUSED.keys() - documented == set(), "an excuse for a command no doc shows any more"
    assert EXCUSED.keys() & scenario_commands() == set()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_doc_calls_a_bare_pip(page: Path) -> None:
    # A bare `pip` is whichever comes first on PATH; inside a venv without pip (uv's default), the global one.
    assert bare_pip_calls(page.read_text(encoding="utf-8")) == [], "write `.venv/bin/python -m pip install ...`"


SAMPLE_PAGE = """\
Set up with `make run`, or `make run EXTRAS=parquet` for Parquet; `make lock` and `ruff check` are no set-up.

```sh
python3.11 -m venv .venv      # a comment, dropped
.venv/bin/python -m pip install \\
  -e '.[test]'
.venv/bin/python -m pipeline run --config c.yml
cd x && uv pip install --python .venv/bin/python -e .
```

<!-- other-tool: a Dockerfile -->
```dockerfile
RUN pip install tmdb-trending-pipeline
```
"""


def test_the_collector_finds_block_lines_continuations_and_inline_spans() -> None:
    assert install_commands(SAMPLE_PAGE) == {
        "make run",
        "make run EXTRAS=parquet",
        "python3.11 -m venv .venv",
        ".venv/bin/python -m pip install -e '.[test]'",
        "uv pip install --python .venv/bin/python -e .",
    }


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("Install it: `pip install duckdb`.", True),
        ("```sh\npip3 install -e .\n```\n", True),
        ("```sh\ngit clone x && pip install duckdb\n```\n", True),
        ("`.venv/bin/python -m pip install duckdb`", False),
        ("`python -m pip install duckdb` after activation", False),
        ("`uv pip install --python .venv/bin/python -e .`", False),
        ("<!-- other-tool: a Dockerfile -->\n```dockerfile\nRUN pip install x\n```\n", False),
        ("A Dockerfile:\n```dockerfile\nRUN pip install x\n```\n", True),
    ],
)
def test_the_bare_pip_check(text: str, flagged: bool) -> None:
    assert bool(bare_pip_calls(text)) is flagged


def test_the_venv_running_the_tests_has_its_own_pip() -> None:
    """`make test` built this venv with requirements/deps.py: `python -m pip` and an activated `pip` are its own."""
    if Path(sys.prefix) != ROOT / ".venv":
        pytest.skip("the suite runs outside the checkout's .venv")
    done = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f" from {sys.prefix}/" in done.stdout
    assert (ROOT / ".venv" / "bin" / "pip").is_file(), "an activated venv would run another pip"


# --- the slow part: `make docs-check` ---------------------------------------------------------------


def scratch_env(home: Path) -> dict[str, str]:
    """This environment, as a new shell in the scratch checkout would see it: no venv, no enclosing make."""
    own = {"VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHONPATH", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in own}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix))
    env["PYTHONUSERBASE"] = str(home / "user-base")  # `pip install --user` stays in the scratch folder
    return env


@pytest.fixture
def scratch_checkout() -> Iterator[Path]:
    """The checkout as a fresh clone of it would be, tracked and new files alike; removed afterwards."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    with tempfile.TemporaryDirectory(prefix="install-docs-") as folder:
        checkout = Path(folder) / "checkout"
        for name in filter(None, listed.split("\0")):
            source = ROOT / name
            if source.exists() or source.is_symlink():
                (checkout / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, checkout / name, follow_symlinks=False)
        yield checkout


@pytest.mark.install_docs
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", SCENARIOS)
def test_the_docs_install_commands_work_on_a_fresh_checkout(name: str, scratch_checkout: Path) -> None:
    env = scratch_env(scratch_checkout.parent)
    for step in SCENARIOS[name]:
        done = subprocess.run(
            ["bash", "-c", step.command],
            cwd=scratch_checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        said = f"$ {step.command}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        assert done.returncode == 0, said
        expect = step.expect.replace("{root}", re.escape(str(scratch_checkout)))
        assert re.search(expect, done.stdout, re.M), said
