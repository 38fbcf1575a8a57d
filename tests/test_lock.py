"""The hash-locked locks in requirements/ follow setup.cfg, pin everything with hashes, and agree with each other.

No network: staleness is a fingerprint of setup.cfg's dependency lists, recorded in each lock by ``make lock``.
The installer choice of requirements/deps.py (uv on PATH, .tools/, or pip) is checked without bootstrapping.
"""

from __future__ import annotations

import configparser
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>\S+)")
REQUIREMENT_NAME = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)")


def _load_deps() -> ModuleType:
    spec = importlib.util.spec_from_file_location("requirements_deps", ROOT / "requirements" / "deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


deps = _load_deps()
LOCKS: dict[str, Path] = deps.LOCKS


def canonical(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> dict[str, str]:
    """``name -> version`` for every pin in a lock."""
    return {
        canonical(m["name"]): m["version"]
        for line in lock.read_text(encoding="utf-8").splitlines()
        if (m := PIN.match(line))
    }


def requirement_names(text: str) -> set[str]:
    """The distribution names in a setup.cfg requirement list."""
    return {canonical(m["name"]) for line in text.splitlines() if (m := REQUIREMENT_NAME.match(line.split("#")[0]))}


SETUP = """\
[options]
python_requires = >=3.11
install_requires =
    aiohttp>=3.10
    pandas>=2.2
[options.extras_require]
parquet =
    pyarrow>=17
test =
    pytest>=8.3
[options.entry_points]
console_scripts =
    tmdb-pipeline = pipeline.cli:main
"""


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_lock_matches_setup_cfg(kind: str) -> None:
    lock = LOCKS[kind]
    assert lock.is_file(), f"{lock.relative_to(ROOT)} is missing: run `make lock`"
    assert deps.recorded_fingerprint(lock) == deps.fingerprint(), (
        f"{lock.relative_to(ROOT)} is stale: setup.cfg's dependencies changed since it was compiled. "
        "Run `make lock` and commit requirements/*.lock."
    )


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_every_pin_carries_a_hash(kind: str) -> None:
    text = LOCKS[kind].read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    pinned = [entry for entry in entries if PIN.match(entry)]
    assert pinned
    for entry in pinned:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_runtime_pins_are_the_test_pins() -> None:
    """The ETL runs exactly the versions the tests ran with (the runtime lock is compiled against the test lock)."""
    runtime, test = pins(LOCKS["run"]), pins(LOCKS["test"])
    assert runtime
    assert {name: test.get(name) for name in runtime} == runtime


def test_runtime_lock_holds_no_test_tooling() -> None:
    runtime = pins(LOCKS["run"])
    assert not {"pytest", "moto", "mypy", "ruff", "zizmor", "duckdb"} & set(runtime)


@pytest.mark.parametrize(
    ("section", "kind"),
    [
        pytest.param("install_requires", "run", id="runtime"),
        pytest.param("install_requires", "test", id="runtime-in-test"),
        pytest.param("test", "test", id="test-extra"),
    ],
)
def test_every_direct_dependency_is_pinned(section: str, kind: str) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    where = "options" if section == "install_requires" else "options.extras_require"
    wanted = requirement_names(parser.get(where, section))
    assert wanted
    missing = wanted - set(pins(LOCKS[kind]))
    assert not missing, f"{sorted(missing)} not in {LOCKS[kind].relative_to(ROOT)}: run `make lock`"


@pytest.mark.parametrize(
    ("old", "new", "changes"),
    [
        pytest.param("    pandas>=2.2\n", "    pandas>=2.2\n    rich>=13\n", True, id="dependency-added"),
        pytest.param("    pandas>=2.2\n", "", True, id="dependency-removed"),
        pytest.param("aiohttp>=3.10", "aiohttp>=3.11", True, id="bound-raised"),
        pytest.param("    pytest>=8.3\n", "    pytest>=8.3\n    pytest-xdist>=3\n", True, id="test-extra-grew"),
        pytest.param(">=3.11\n", ">=3.12\n", True, id="python-requires"),
        pytest.param(
            "    aiohttp>=3.10\n    pandas>=2.2\n", "    pandas>=2.2\n    aiohttp>=3.10\n", False, id="reordered"
        ),
        pytest.param("    pandas>=2.2\n", "    pandas >= 2.2  # why\n\n", False, id="spacing-and-comment"),
        pytest.param("    pyarrow>=17\n", "    pyarrow>=18\n", False, id="other-extra"),
        pytest.param("pipeline.cli:main", "pipeline.cli:run", False, id="entry-points"),
    ],
)
def test_fingerprint_covers_the_dependency_lists_only(tmp_path: Path, old: str, new: str, changes: bool) -> None:
    before, after = tmp_path / "before.cfg", tmp_path / "after.cfg"
    before.write_text(SETUP, encoding="utf-8")
    assert old in SETUP
    after.write_text(SETUP.replace(old, new, 1), encoding="utf-8")

    assert (deps.fingerprint(before) != deps.fingerprint(after)) is changes


def test_a_lock_without_a_fingerprint_is_stale(tmp_path: Path) -> None:
    lock = tmp_path / "hand-written.lock"
    lock.write_text("pandas==2.2.3\n", encoding="utf-8")

    assert deps.recorded_fingerprint(lock) is None
    assert deps.recorded_fingerprint(tmp_path / "missing.lock") is None


# --- which installer `make` uses (no network: nothing is bootstrapped here) ----------------------------


def fake_uv(directory: Path) -> Path:
    """An executable called uv."""
    directory.mkdir(parents=True, exist_ok=True)
    uv = directory / "uv"
    uv.write_text("#!/bin/sh\necho fake\n")
    uv.chmod(0o755)
    return uv


@pytest.mark.parametrize(
    ("use_uv", "on_path", "in_tools", "expected"),
    [
        pytest.param("auto", True, True, "path", id="uv-on-path-wins"),
        pytest.param("auto", False, True, "tools", id="then-tools"),
        pytest.param("auto", False, False, None, id="nothing-without-bootstrap"),
        pytest.param("no", True, True, None, id="use-uv-no-forces-pip"),
    ],
)
def test_find_uv_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_uv: str, on_path: bool, in_tools: bool, expected: str | None
) -> None:
    path_uv = fake_uv(tmp_path / "bin") if on_path else None
    tools_uv = fake_uv(tmp_path / "tools" / "bin") if in_tools else None
    monkeypatch.setenv("USE_UV", use_uv)
    monkeypatch.setenv("PATH", str(tmp_path / "bin") if on_path else str(tmp_path / "empty"))
    monkeypatch.setattr(deps, "TOOLS", tmp_path / "tools")
    monkeypatch.setattr(deps, "_runs", lambda argv: False)  # no `pip install --user uv` from an earlier run

    found = deps.find_uv(bootstrap=False)

    wanted = {"path": [str(path_uv)], "tools": [str(tools_uv)], None: None}[expected]
    assert found == wanted


@pytest.mark.parametrize(
    ("env", "pip_config", "expected"),
    [
        pytest.param({}, None, None, id="pypi-by-default"),
        pytest.param({}, "https://mirror.example/simple", "https://mirror.example/simple", id="pip-config"),
        pytest.param({"PIP_INDEX_URL": "https://env.example/simple"}, None, "https://env.example/simple", id="pip-env"),
        pytest.param(
            {"UV_DEFAULT_INDEX": "https://uv.example/simple", "PIP_INDEX_URL": "https://env.example/simple"},
            None,
            "https://uv.example/simple",
            id="uv-setting-wins",
        ),
    ],
)
def test_uv_uses_pips_index(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], pip_config: str | None, expected: str | None
) -> None:
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(deps, "_pip_config", lambda key: pip_config)

    assert deps.uv_env().get("UV_DEFAULT_INDEX") == expected
