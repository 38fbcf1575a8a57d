"""The registry: lookup by entry-point name, clear errors, only the named stage imported."""

from __future__ import annotations

import json
import textwrap
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from pipeline import registry, stage
from pipeline.errors import StageLoadError, UnknownStageError
from pipeline.kinds import KINDS
from stages.loaders.local import LocalLoader
from tests.support.cli import run_python


def ep(name: str, value: str, group: str = "pipeline.loaders") -> EntryPoint:
    return EntryPoint(name=name, value=value, group=group)


def test_loads_the_class_registered_under_the_name() -> None:
    eps = [ep("local", "stages.loaders.local:LocalLoader"), ep("other", "stages.loaders.local:LocalOptions")]
    assert registry.load("loader", "local", eps) is LocalLoader


def test_unknown_name_lists_every_registered_name_of_that_kind() -> None:
    eps = [
        ep("local", "stages.loaders.local:LocalLoader"),
        ep("s3", "stages.loaders.s3:S3Loader"),
        ep("x", "a:B", "pipeline.reporters"),
    ]
    with pytest.raises(UnknownStageError) as caught:
        registry.load("loader", "ftp", eps)
    assert str(caught.value) == "unknown loader 'ftp'; registered loaders: local, s3"


def test_import_failure_names_the_entry_point_and_keeps_the_cause() -> None:
    with pytest.raises(StageLoadError) as caught:
        registry.load("loader", "broken", [ep("broken", "no_such_module_xyz:Loader")])
    assert "loader 'broken'" in str(caught.value)
    assert "ModuleNotFoundError" in str(caught.value)
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_an_object_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(StageLoadError, match=r"not a subclass of pipeline\.Loader"):
        registry.load("loader", "odd", [ep("odd", "stages.loaders.local:LocalOptions")])


def test_an_unknown_kind_is_a_programming_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^unknown stage kind 'sink'$"):
        registry.load("sink", "local", [ep("local", "stages.loaders.local:LocalLoader")])


def test_describe_lists_the_entry_points_it_is_given_instead_of_the_installed_ones() -> None:
    eps = [ep("ftp", "somewhere:FtpLoader"), ep("x", "a:B", "pipeline.reporters")]
    described = [(info.kind, info.name, info.target) for info in registry.describe(eps)]
    assert described == [("loader", "ftp", "somewhere:FtpLoader"), ("reporter", "x", "a:B")]


def test_the_installed_entry_points_of_each_kind_are_found_in_one_scan() -> None:
    found = {kind: set(registry.find(kind)) for kind in registry.GROUPS}
    assert {"local", "s3"} <= found["loader"] and "standardize" in found["transformer"]
    assert registry._installed_stages.cache_info().misses <= 1  # four kinds asked for, metadata read once
    assert {ep.group for ep in registry._installed_stages()} == set(registry.GROUPS.values())


def test_each_kind_has_one_group_and_one_base_class_in_run_order() -> None:
    assert KINDS == ("extractor", "transformer", "loader", "reporter")
    assert list(registry.GROUPS.items()) == [(kind, f"pipeline.{kind}s") for kind in KINDS]
    assert [(kind, base.kind) for kind, base in stage.BASES.items()] == [(kind, kind) for kind in KINDS]
    assert [base.__name__ for base in stage.BASES.values()] == ["Extractor", "Transformer", "Loader", "Reporter"]


def in_fresh_interpreter(code: str) -> Any:
    """Run ``code`` where no stage is imported yet (this process imported them all long ago); its last line is JSON."""
    done = run_python("-c", textwrap.dedent(code), timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_only_the_named_stage_is_imported() -> None:
    imported = in_fresh_interpreter(
        """
        import json, sys
        from importlib.metadata import EntryPoint
        from pipeline import registry
        eps = [
            EntryPoint("local", "stages.loaders.local:LocalLoader", "pipeline.loaders"),
            EntryPoint("s3", "stages.loaders.s3:S3Loader", "pipeline.loaders"),
        ]
        registry.load("loader", "local", eps)
        print(json.dumps({name: name in sys.modules for name in ("stages.loaders.local", "stages.loaders.s3")}))
        """
    )
    assert imported == {"stages.loaders.local": True, "stages.loaders.s3": False}


@pytest.mark.parametrize(
    "call",
    [
        pytest.param("from pipeline import registry; registry.describe()", id="registry.describe"),
        pytest.param("import pipeline.cli; pipeline.cli.main(['stages'])", id="pipeline-stages"),
    ],
)
def test_listing_stages_imports_no_stage_module(call: str) -> None:
    seen = in_fresh_interpreter(
        f"""
        import json, sys
        {call}
        from pipeline import registry
        modules = {{info.name: info.target.partition(":")[0] for info in registry.describe()}}
        print(json.dumps({{"modules": modules, "imported": sorted(m for m in modules.values() if m in sys.modules)}}))
        """
    )
    assert {"s3", "tmdb-trending", "local"} <= set(seen["modules"]), seen["modules"]
    assert seen["imported"] == []


def test_installed_metadata_registers_the_built_ins_and_the_test_plugin() -> None:
    names = {(info.kind, info.name) for info in registry.describe()}
    assert {("extractor", "replay"), ("transformer", "standardize"), ("loader", "local")} <= names
    assert ("reporter", "row-count") in names, "tests/plugin_pkg must be installed (make test does it)"
    plugin = next(i for i in registry.describe() if i.name == "row-count")
    assert plugin.distribution.startswith("pipeline-plugin-demo")
