"""The registry: lookup by entry-point name, clear errors, only the named stage imported."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from pipeline import registry
from pipeline.errors import StageLoadError, UnknownStageError
from stages.local import LocalLoader


def ep(name: str, value: str, group: str = "pipeline.loaders") -> EntryPoint:
    return EntryPoint(name=name, value=value, group=group)


def test_loads_the_class_registered_under_the_name() -> None:
    eps = [ep("local", "stages.local:LocalLoader"), ep("other", "stages.local:LocalOptions")]
    assert registry.load("loader", "local", eps) is LocalLoader


def test_unknown_name_lists_every_registered_name_of_that_kind() -> None:
    eps = [
        ep("local", "stages.local:LocalLoader"),
        ep("s3", "stages.s3:S3Loader"),
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
        registry.load("loader", "odd", [ep("odd", "stages.local:LocalOptions")])


def test_only_the_named_stage_is_imported() -> None:
    sys.modules.pop("tests.never_imported_stage", None)
    eps = [ep("local", "stages.local:LocalLoader"), ep("lazy", "tests.never_imported_stage:Nope")]
    registry.load("loader", "local", eps)
    assert "tests.never_imported_stage" not in sys.modules


def test_installed_metadata_registers_the_built_ins_and_the_test_plugin() -> None:
    names = {(info.kind, info.name) for info in registry.describe()}
    assert {("extractor", "replay"), ("transformer", "standardize"), ("loader", "local")} <= names
    assert ("reporter", "row-count") in names, "tests/plugin_pkg must be installed (make test does it)"
    plugin = next(i for i in registry.describe() if i.name == "row-count")
    assert plugin.distribution.startswith("pipeline-plugin-demo")
