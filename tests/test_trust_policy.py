"""The AWS role trust policy in docs/aws/: only this repository's main branch may assume the role."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

POLICY = Path(__file__).resolve().parent.parent / "docs" / "aws" / "trust-policy.json"
ISSUER = "token.actions.githubusercontent.com"
PROVIDER = re.compile(rf"^arn:aws:iam::\d{{12}}:oidc-provider/{re.escape(ISSUER)}$")
# OWNER/REPO are the placeholders readers replace; the shape must stay an exact branch ref.
SUB = re.compile(r"^repo:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:ref:refs/heads/main$")

Weaken = Callable[[dict[str, Any]], None]


def trust_problems(policy: dict[str, Any]) -> list[str]:
    """Every way ``policy`` lets more than GitHub Actions on main assume the role."""
    found: list[str] = []
    statements = policy.get("Statement", [])
    if policy.get("Version") != "2012-10-17":
        found.append("Version must be 2012-10-17")
    if len(statements) != 1:
        return [*found, "exactly one statement expected"]
    (statement,) = statements
    if statement.get("Effect") != "Allow":
        found.append("Effect must be Allow")
    if set(statement.get("Principal", {})) != {"Federated"}:
        found.append("Principal must be Federated only")
    if not PROVIDER.match(str(statement.get("Principal", {}).get("Federated", ""))):
        found.append("Federated principal must be the GitHub OIDC provider")
    if statement.get("Action") not in ("sts:AssumeRoleWithWebIdentity", ["sts:AssumeRoleWithWebIdentity"]):
        found.append("Action must be sts:AssumeRoleWithWebIdentity only")

    condition = statement.get("Condition", {})
    if set(condition) != {"StringEquals"}:
        found.append(f"Condition must use StringEquals only, not {sorted(set(condition) - {'StringEquals'})}")
    equals = condition.get("StringEquals", {})
    if equals.get(f"{ISSUER}:aud") != "sts.amazonaws.com":
        found.append("aud must equal sts.amazonaws.com")
    sub = equals.get(f"{ISSUER}:sub")
    if not isinstance(sub, str):
        found.append("sub must be one string (a list would allow several subjects)")
    elif any(wildcard in sub for wildcard in "*?"):
        found.append("sub must not contain wildcards")
    elif not SUB.match(sub):
        found.append("sub must be repo:OWNER/REPO:ref:refs/heads/main")
    return found


def committed() -> dict[str, Any]:
    """The policy as committed."""
    policy: dict[str, Any] = json.loads(POLICY.read_text(encoding="utf-8"))
    return policy


def test_committed_policy_allows_only_main_of_one_repo() -> None:
    assert trust_problems(committed()) == []


def test_committed_policy_uses_the_documented_placeholders() -> None:
    (statement,) = committed()["Statement"]
    assert statement["Principal"]["Federated"] == f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}"
    assert statement["Condition"]["StringEquals"][f"{ISSUER}:sub"] == "repo:OWNER/REPO:ref:refs/heads/main"


def _statement(policy: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = policy["Statement"][0]
    return statement


def _set_sub(value: object) -> Weaken:
    def change(policy: dict[str, Any]) -> None:
        _statement(policy)["Condition"]["StringEquals"][f"{ISSUER}:sub"] = value

    return change


def _like_sub(policy: dict[str, Any]) -> None:
    condition = _statement(policy)["Condition"]
    sub = condition["StringEquals"].pop(f"{ISSUER}:sub")
    condition["StringLike"] = {f"{ISSUER}:sub": sub}


def _drop_aud(policy: dict[str, Any]) -> None:
    del _statement(policy)["Condition"]["StringEquals"][f"{ISSUER}:aud"]


def _other_provider(policy: dict[str, Any]) -> None:
    _statement(policy)["Principal"]["Federated"] = "arn:aws:iam::123456789012:oidc-provider/gitlab.com"


def _any_principal(policy: dict[str, Any]) -> None:
    _statement(policy)["Principal"] = {"AWS": "*"}


def _more_actions(policy: dict[str, Any]) -> None:
    _statement(policy)["Action"] = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]


@pytest.mark.parametrize(
    ("weaken", "expected"),
    [
        pytest.param(_set_sub("repo:OWNER/REPO:*"), "sub must not contain wildcards", id="any-ref"),
        pytest.param(_set_sub("repo:OWNER/*"), "sub must not contain wildcards", id="any-repo"),
        pytest.param(
            _set_sub("repo:OWNER/REPO:pull_request"),
            "sub must be repo:OWNER/REPO:ref:refs/heads/main",
            id="pull-requests",
        ),
        pytest.param(
            _set_sub("repo:OWNER/REPO:ref:refs/heads/dev"),
            "sub must be repo:OWNER/REPO:ref:refs/heads/main",
            id="other-branch",
        ),
        pytest.param(
            _set_sub(["repo:OWNER/REPO:ref:refs/heads/main", "repo:OWNER/OTHER:ref:refs/heads/main"]),
            "sub must be one string (a list would allow several subjects)",
            id="several-subjects",
        ),
        pytest.param(_like_sub, "Condition must use StringEquals only, not ['StringLike']", id="string-like"),
        pytest.param(_drop_aud, "aud must equal sts.amazonaws.com", id="no-audience"),
        pytest.param(_other_provider, "Federated principal must be the GitHub OIDC provider", id="other-provider"),
        pytest.param(_any_principal, "Principal must be Federated only", id="any-aws-principal"),
        pytest.param(_more_actions, "Action must be sts:AssumeRoleWithWebIdentity only", id="extra-action"),
    ],
)
def test_checker_catches_a_weakened_policy(weaken: Weaken, expected: str) -> None:
    policy = copy.deepcopy(committed())
    weaken(policy)

    assert expected in trust_problems(policy)


def test_docs_show_the_committed_policy() -> None:
    docs = (POLICY.parent.parent / "aws.md").read_text(encoding="utf-8")
    section = docs.split("<!-- section: oidc", 1)[1].split("<!-- /section: oidc -->", 1)[0]
    shown = re.search(r"```json\n(.*?)```", section, re.S)
    assert shown is not None, "the oidc section of docs/aws.md should show the trust policy"
    assert json.loads(shown.group(1)) == committed()
