"""The S3 policy files in docs/aws/ parse, and the IAM policy names only the project's prefix."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.datalake import Layout
from pipeline.stage import Feed
from tests.support.fakes import TREND_DATE

DOCS = Path(__file__).resolve().parent.parent / "docs"
POLICY = DOCS / "aws" / "iam-policy.json"
BUCKET = "YOUR_BUCKET"  # the placeholder readers replace
OBJECT_ACTIONS = {
    "s3:PutObject",
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
}
BUCKET_ACTIONS = {"s3:ListBucket", "s3:ListBucketMultipartUploads"}


def project_prefix() -> str:
    """The prefix ``config/aws.yml`` writes under by default."""
    text = (DOCS.parent / "config" / "aws.yml").read_text(encoding="utf-8")
    match = re.search(r"^\s+prefix: \$\{S3_PREFIX:-([^}]+)\}$", text, re.MULTILINE)
    assert match, "config/aws.yml must set prefix: ${S3_PREFIX:-...}"
    return match.group(1)


def as_list(value: Any) -> list[Any]:
    """A policy field that may be a string or a list, as a list."""
    return value if isinstance(value, list) else [value]


def problems(policy: dict[str, Any], prefix: str) -> list[str]:
    """Every way ``policy`` grants more than the loader needs, or anything outside ``prefix``."""
    found: list[str] = []
    if policy.get("Version") != "2012-10-17":
        found.append("Version must be 2012-10-17")
    granted: set[str] = set()
    for statement in policy.get("Statement", []):
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
            found.append(f"{statement.get('Sid')}: only plain Allow statements are expected")
            continue
        actions = set(as_list(statement.get("Action", [])))
        resources = as_list(statement.get("Resource", []))
        granted |= actions
        if actions <= OBJECT_ACTIONS:
            for resource in resources:
                if resource != f"arn:aws:s3:::{BUCKET}/{prefix}/*":
                    found.append(f"object actions on {resource!r}, outside the prefix {prefix}/")
            if statement.get("Condition"):
                found.append("object statement should need no condition")
        elif actions == {"s3:ListBucket"}:
            if resources != [f"arn:aws:s3:::{BUCKET}"]:
                found.append(f"s3:ListBucket on {resources!r}, expected the bucket ARN only")
            allowed = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            if as_list(allowed or []) != [f"{prefix}/*"]:
                found.append(f"s3:ListBucket must be limited to s3:prefix {prefix}/*, got {allowed!r}")
            if set(statement.get("Condition", {})) != {"StringLike"}:
                found.append("s3:ListBucket condition must be StringLike on s3:prefix only")
        elif actions == {"s3:ListBucketMultipartUploads"}:
            if resources != [f"arn:aws:s3:::{BUCKET}"]:
                found.append(f"s3:ListBucketMultipartUploads on {resources!r}, expected the bucket ARN only")
        else:
            found.append(f"unexpected actions {sorted(actions)}")
    if granted != OBJECT_ACTIONS | BUCKET_ACTIONS:
        found.append(f"granted {sorted(granted)}, expected exactly {sorted(OBJECT_ACTIONS | BUCKET_ACTIONS)}")
    return found


@pytest.mark.parametrize("path", sorted((DOCS / "aws").glob("*.json")), ids=lambda p: p.name)
def test_every_json_file_under_docs_aws_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


def test_the_iam_policy_grants_exactly_what_the_loader_needs_under_the_prefix() -> None:
    assert problems(json.loads(POLICY.read_text(encoding="utf-8")), project_prefix()) == []


def test_the_policy_covers_every_key_the_loader_writes_and_nothing_beside_it() -> None:
    policy = json.loads(POLICY.read_text(encoding="utf-8"))
    pattern = policy["Statement"][0]["Resource"].removeprefix(f"arn:aws:s3:::{BUCKET}/")
    prefix = project_prefix()
    for style in ("monthly", "hive"):
        layout = Layout(prefix, style)
        keys = [
            *layout.keys(TREND_DATE, Feed(), "run00000001").values(),
            layout.run_key("version", TREND_DATE, Feed(), "run00000001"),
            layout.lock_key(TREND_DATE, Feed()),
        ]
        for key in keys:
            assert fnmatch.fnmatchcase(key, pattern), key
    for outside in (Layout().key("cleaned", TREND_DATE, Feed()), f"{prefix}-other/x.csv", "LATEST_UPDATE.md"):
        assert not fnmatch.fnmatchcase(outside, pattern), outside


Weaken = Callable[[dict[str, Any]], None]


def _set(path: tuple[Any, ...], value: Any) -> Weaken:
    def weaken(policy: dict[str, Any]) -> None:
        node: Any = policy
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return weaken


def _drop_condition(policy: dict[str, Any]) -> None:
    del policy["Statement"][1]["Condition"]


@pytest.mark.parametrize(
    ("weaken", "problem"),
    [
        (_set(("Statement", 0, "Resource"), "arn:aws:s3:::YOUR_BUCKET/*"), "outside the prefix"),
        (_set(("Statement", 0, "Resource"), "*"), "outside the prefix"),
        (_set(("Statement", 0, "Action"), [*sorted(OBJECT_ACTIONS), "s3:PutObjectAcl"]), "unexpected actions"),
        (_set(("Statement", 2, "Resource"), "*"), "expected the bucket ARN only"),
        (_set(("Statement", 0, "Action"), "s3:*"), "unexpected actions"),
        (_drop_condition, "must be limited to s3:prefix"),
        (_set(("Statement", 1, "Condition", "StringLike", "s3:prefix"), ["*"]), "must be limited to s3:prefix"),
        (_set(("Statement", 1, "Resource"), "*"), "expected the bucket ARN only"),
        (_set(("Statement", 0, "Effect"), "Deny"), "only plain Allow"),
    ],
)
def test_the_checker_catches_a_weakened_policy(weaken: Weaken, problem: str) -> None:
    policy = copy.deepcopy(json.loads(POLICY.read_text(encoding="utf-8")))
    weaken(policy)
    assert any(problem in p for p in problems(policy, project_prefix())), problems(policy, project_prefix())


def test_the_lifecycle_rule_aborts_incomplete_uploads_after_one_day() -> None:
    rules = json.loads((DOCS / "aws" / "lifecycle.json").read_text(encoding="utf-8"))["Rules"]
    aborting = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert len(aborting) == 1
    assert aborting[0]["Status"] == "Enabled"
    assert aborting[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_public_access_is_blocked_and_encryption_is_on_by_default() -> None:
    block = json.loads((DOCS / "aws" / "public-access-block.json").read_text(encoding="utf-8"))
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    encryption = json.loads((DOCS / "aws" / "encryption.json").read_text(encoding="utf-8"))
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")


def test_the_aws_guide_points_at_the_committed_files() -> None:
    text = (DOCS / "aws.md").read_text(encoding="utf-8")
    section = text.split("<!-- section: s3", 1)[1].split("<!-- /section: s3 -->", 1)[0]
    for name in ("iam-policy.json", "lifecycle.json", "encryption.json", "public-access-block.json"):
        assert f"docs/aws/{name}" in section, name
