"""Sets up ``.venv`` from the hash-locked locks, and regenerates them (``make lock``).

Stdlib only: it runs on the bare interpreter, before any environment exists.

    python3 requirements/deps.py install run|test   # what `make run` / `make test` call
    python3 requirements/deps.py extras parquet,notify   # `make run EXTRAS=parquet,notify`: optional extras
    python3 requirements/deps.py lock [--upgrade]   # `make lock`: both locks, from setup.cfg
    python3 requirements/deps.py check              # exit 1 when a lock is stale

The installer is uv when it can be had: on PATH, else bootstrapped into ``.tools/`` (or
``pip install --user``). Plain ``venv`` + pip is the last resort, and it installs from the
same locks (pip's hash-checking mode). ``USE_UV=no`` forces that last resort.

A lock records a fingerprint of setup.cfg's dependency lists. When they changed and the
lock did not, ``install`` warns and installs from setup.cfg unpinned, so work in progress
keeps running; ``tests/test_lock.py`` is what fails and says to run ``make lock``.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUP_CFG = ROOT / "setup.cfg"
LOCKS = {"run": ROOT / "requirements" / "runtime.lock", "test": ROOT / "requirements" / "test.lock"}
VENV = ROOT / ".venv"
TOOLS = ROOT / ".tools"
PYTHON_VERSION = "3.11"
FINGERPRINT_PREFIX = "# setup.cfg dependencies sha256: "
# Extras the runtime lock includes: the daily job (`make run`, the scheduler) installs them from that lock.
RUNTIME_EXTRAS = ("charts", "notify")
# The plugin under tests/ is a second distribution: it proves third-party entry points work.
TEST_EXTRAS = ("./tests/plugin_pkg",)


def fingerprint(setup_cfg: Path = SETUP_CFG) -> str:
    """A hash of what the locks are compiled from: python_requires, install_requires and the locked extras.

    Order, blank lines and comments do not count; any other edit does.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(setup_cfg, encoding="utf-8")

    def lines(section: str, key: str) -> list[str]:
        raw = parser.get(section, key, fallback="")
        return sorted(
            "".join(line.split("#", 1)[0].split()) for line in raw.splitlines() if line.split("#", 1)[0].strip()
        )

    inputs = {
        "python_requires": lines("options", "python_requires"),
        "install_requires": lines("options", "install_requires"),
        "test": lines("options.extras_require", "test"),
        **{extra: lines("options.extras_require", extra) for extra in RUNTIME_EXTRAS},
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_fingerprint(lock: Path) -> str | None:
    """The fingerprint written into ``lock`` by ``make lock``, or None when there is none."""
    if not lock.is_file():
        return None
    with lock.open(encoding="utf-8") as text:
        for line in text:
            if line.startswith(FINGERPRINT_PREFIX):
                return line.removeprefix(FINGERPRINT_PREFIX).strip()
    return None


def stale_locks() -> list[Path]:
    """The locks whose recorded fingerprint does not match setup.cfg today."""
    current = fingerprint()
    return [lock for lock in LOCKS.values() if recorded_fingerprint(lock) != current]


def say(message: str) -> None:
    """One line for the person running make."""
    sys.stderr.write(f"deps: {message}\n")
    sys.stderr.flush()


def run(*argv: str | Path, env: dict[str, str] | None = None) -> bool:
    """Run a command from the repository root; True when it succeeded."""
    return subprocess.run([str(a) for a in argv], cwd=ROOT, env=env, check=False).returncode == 0


def uv_env() -> dict[str, str]:
    """The environment for uv: pip's index and certificate settings carry over when uv has none of its own."""
    env = dict(os.environ)
    if not ({"UV_INDEX_URL", "UV_DEFAULT_INDEX"} & env.keys()):
        index = env.get("PIP_INDEX_URL") or _pip_config("global.index-url")
        if index:
            env["UV_DEFAULT_INDEX"] = index
    if "PIP_CERT" in env and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = env["PIP_CERT"]
    return env


def _pip_config(key: str) -> str | None:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", key], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value else None


def find_uv(bootstrap: bool = True) -> list[str] | None:
    """The command that runs uv: on PATH, in .tools/, or freshly bootstrapped; None when it cannot be had."""
    if os.environ.get("USE_UV", "auto").lower() in ("no", "0", "false"):
        return None
    on_path = shutil.which("uv")
    if on_path:
        return [on_path]
    tools_uv = TOOLS / "bin" / "uv"
    if tools_uv.is_file():
        return [str(tools_uv)]
    if _runs([sys.executable, "-m", "uv", "--version"]):  # an earlier `pip install --user uv`
        return [sys.executable, "-m", "uv"]
    if not bootstrap:
        return None
    say("uv is not on PATH; bootstrapping it into .tools/")
    quiet = subprocess.DEVNULL
    if (
        subprocess.run([sys.executable, "-m", "venv", TOOLS], stdout=quiet, check=False).returncode == 0
        and subprocess.run(
            [TOOLS / "bin" / "python", "-m", "pip", "install", "--quiet", "uv"], stdout=quiet, check=False
        ).returncode
        == 0
        and tools_uv.is_file()
    ):
        return [str(tools_uv)]
    shutil.rmtree(TOOLS, ignore_errors=True)
    say("could not bootstrap uv into .tools/; trying pip install --user uv")
    user = [sys.executable, "-m", "pip", "install", "--quiet", "--user", "uv"]
    if subprocess.run(user, stdout=quiet, check=False).returncode == 0 and _runs(
        [sys.executable, "-m", "uv", "--version"]
    ):
        return [sys.executable, "-m", "uv"]
    say("uv is not available; falling back to python -m venv and pip (slower, same locks)")
    return None


def _runs(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def install(target: str) -> int:
    """Create .venv if needed and install ``target``'s dependencies (from its lock), then the project."""
    lock = LOCKS[target]
    fresh = recorded_fingerprint(lock) == fingerprint()
    if not fresh:
        say(
            f"WARNING: {lock.relative_to(ROOT)} is stale (setup.cfg's dependencies changed); "
            "installing from setup.cfg unpinned this time. Run `make lock` and commit the locks."
        )
    extras = list(TEST_EXTRAS) if target == "test" else []
    python = VENV / "bin" / "python"
    uv = find_uv()
    if uv is not None:
        env = uv_env()
        pip = [*uv, "pip", "install", "--quiet", "--python", str(python)]
        # --seed puts pip in the venv, so `.venv/bin/python -m pip install ...` from the docs works there too.
        if not python.is_file() and not run(
            *uv, "venv", "--seed", "--quiet", "--python", sys.executable, VENV, env=env
        ):
            return 1
    else:
        env = None
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        if not python.is_file() and not run(sys.executable, "-m", "venv", VENV):
            return 1
    if fresh:
        ok = run(*pip, "--require-hashes", "-r", lock, env=env) and run(*pip, "--no-deps", "-e", ".", *extras, env=env)
    else:
        wanted = ",".join((*RUNTIME_EXTRAS, "test") if target == "test" else RUNTIME_EXTRAS)
        ok = run(*pip, "-e", f".[{wanted}]", *extras, env=env)
    if ok and target == "test":
        compile_for_tests(python)
    return 0 if ok else 1


# What a test run imports from the test environment (a test imports the rest lazily, at its first use).
TEST_IMPORTS = (
    *("pandas", "pyarrow.parquet", "duckdb", "yaml", "pydantic", "tenacity", "hypothesis.strategies"),
    *("aioboto3", "aiobotocore.session", "boto3", "botocore.parsers", "aiohttp.web", "aioresponses"),
    *("moto.server", "moto.s3.responses", "moto.iam.responses", "moto.sts.responses", "flask", "werkzeug.serving"),
    *("xdist.remote", "pytest_asyncio", "pytest_timeout"),
)


def compile_for_tests(python: Path) -> None:
    """Write the bytecode a test run needs, once, in one process; a failure here only costs speed.

    uv, unlike pip, installs no ``.pyc``. Without this, each pytest-xdist worker of the first run
    compiles pandas, botocore, moto and the rest from source, and rewrites every test module: both
    workers the same files: 4-6 s of that run on two cores. Here: an import of what the suite uses,
    beside a pytest collection that writes pytest's cache of rewritten test modules (about 5 s).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    imports = (
        "import contextlib, importlib\n"
        f"for name in {TEST_IMPORTS!r}:\n"
        "    with contextlib.suppress(Exception):\n"
        "        importlib.import_module(name)"
    )
    quiet = subprocess.DEVNULL
    argvs = ([python, "-c", imports], [python, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist"])
    # Side by side (two cores); a module both import is compiled twice at worst, and written atomically.
    children = [
        subprocess.Popen([str(a) for a in argv], cwd=ROOT, env=env, stdout=quiet, stderr=quiet) for argv in argvs
    ]
    for child in children:
        child.wait()


def lock(upgrade: bool) -> int:
    """Compile both locks from setup.cfg with hashes; the runtime lock is a subset of the test lock's pins."""
    uv = find_uv()
    if uv is None:
        say("`make lock` needs uv (pip install uv)")
        return 1
    env = uv_env()
    digest = fingerprint()
    common = ["pip", "compile", "setup.cfg", "--quiet", "--generate-hashes", "--python-version", PYTHON_VERSION]
    common += ["--upgrade"] if upgrade else []
    test_lock, run_lock = (LOCKS["test"].relative_to(ROOT), LOCKS["run"].relative_to(ROOT))
    # The runtime lock is constrained by the test lock, so the ETL runs the versions the tests ran.
    run_extras = [f"--extra={extra}" for extra in RUNTIME_EXTRAS]
    commands = [
        (test_lock, [*uv, *common, "--extra", "test", "--output-file", str(test_lock)]),
        (
            run_lock,
            [*uv, *common, *run_extras, "--constraint", str(test_lock), "--output-file", str(run_lock)],
        ),
    ]
    for path, argv in commands:
        if not run(*argv, env=env):
            return 1
        body = (ROOT / path).read_text(encoding="utf-8")
        header = "# Regenerate with `make lock`; tests/test_lock.py checks it against setup.cfg.\n"
        (ROOT / path).write_text(f"{header}{FINGERPRINT_PREFIX}{digest}\n{body}", encoding="utf-8")
        say(f"wrote {path}")
    return 0


def declared_extras() -> list[str]:
    """The extras setup.cfg declares."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(SETUP_CFG, encoding="utf-8")
    return sorted(parser.options("options.extras_require")) if parser.has_section("options.extras_require") else []


def install_extras(names: str) -> int:
    """Install optional extras into ``.venv`` (set up by ``install run`` first), at the test lock's versions."""
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    known = declared_extras()
    unknown = [name for name in wanted if name not in known]
    if unknown or not wanted:
        say(f"unknown extra(s) {', '.join(unknown) or '(none given)'}; setup.cfg declares: {', '.join(known)}")
        return 2
    python = VENV / "bin" / "python"
    if not python.is_file():
        say("no .venv yet: run `make run` first")
        return 1
    uv = find_uv()
    # The test lock pins every extra's packages (the test extra holds them all): the same versions CI tested.
    spec, constraint = f".[{','.join(wanted)}]", ["--constraint", str(LOCKS["test"])]
    if uv is not None:
        ok = run(*uv, "pip", "install", "--quiet", "--python", python, "-e", spec, *constraint, env=uv_env())
    else:
        ok = run(python, "-m", "pip", "install", "--quiet", "-e", spec, *constraint)
    if ok:
        say(f"installed the extra(s) {', '.join(wanted)} into .venv")
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    """``install run|test``, ``lock [--upgrade]`` or ``check``."""
    match argv:
        case ["install", ("run" | "test") as target]:
            return install(target)
        case ["extras", names]:
            return install_extras(names)
        case ["lock"]:
            return lock(upgrade=False)
        case ["lock", "--upgrade"]:
            return lock(upgrade=True)
        case ["check"]:
            stale = stale_locks()
            for path in stale:
                say(f"{path.relative_to(ROOT)} is stale: setup.cfg's dependencies changed; run `make lock`")
            return 1 if stale else 0
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
