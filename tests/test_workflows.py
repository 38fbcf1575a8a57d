"""The GitHub Actions workflows and Dependabot: zizmor finds nothing medium or worse, and the structure holds.

zizmor runs ``--offline``, so its online audits (impostor commits, known-vulnerable actions,
ref/version mismatch) are not run here; the structural checks below cover the pins themselves.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import CliRunner

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
DEPENDABOT = GITHUB / "dependabot.yml"
SCHEDULER = WORKFLOWS / "scheduler.yml"
CI = WORKFLOWS / "ci.yml"
ZIZMOR = Path(sys.executable).parent / "zizmor"

SEVERITY = {"informational": 0, "low": 1, "medium": 2, "high": 3}
FAILING_SEVERITY = SEVERITY["medium"]
TODAY = dt.datetime.now(dt.UTC).date().isoformat()
YESTERDAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()

CHECKOUT = "actions/checkout"
SETUP_PYTHON = "actions/setup-python"
SETUP_UV = "astral-sh/setup-uv"
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials"
PINS = {
    CHECKOUT: ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    SETUP_PYTHON: ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    SETUP_UV: ("20cfd1bf945f4377ade1205e4dbc17946fc9a30d", "v10.0.1"),
    AWS_CREDENTIALS: ("e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"),
}
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^\s+#\s*(?P<version>v\d+(?:\.\d+){0,2})\s*$")


def zizmor(*inputs: Path, persona: str = "regular") -> list[dict[str, Any]]:
    """Run zizmor offline and return its findings, minus those ignored by an inline comment."""
    assert ZIZMOR.is_file(), f"zizmor is not installed next to {sys.executable}; install the test extra"
    proc = subprocess.run(
        [
            str(ZIZMOR),
            "--offline",
            "--no-progress",
            "--no-exit-codes",
            "--format=json",
            f"--persona={persona}",
            *map(str, inputs),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # With --no-exit-codes any non-zero status is the tool failing, not a finding.
    assert proc.returncode == 0, f"zizmor failed ({proc.returncode}):\n{proc.stderr}"
    findings: list[dict[str, Any]] = json.loads(proc.stdout)
    return [finding for finding in findings if not finding.get("ignored")]


def serious(findings: list[dict[str, Any]]) -> list[str]:
    """One line per finding of medium severity or worse."""
    return [
        f"{f['ident']} ({f['determinations']['severity']}): {f['desc']} at "
        + ", ".join(loc["concrete"]["feature"] for loc in f["locations"])
        for f in findings
        if SEVERITY[f["determinations"]["severity"].lower()] >= FAILING_SEVERITY
    ]


def load(path: Path) -> dict[Any, Any]:
    """A workflow as data (keys are not all strings: see ``triggers``); a copy of its one parse per text."""
    return copy.deepcopy(_parsed(path, path.read_text(encoding="utf-8")))


@functools.cache
def _parsed(path: Path, text: str) -> dict[Any, Any]:
    """PyYAML in pure Python takes ~10 ms a workflow, and some forty tests read the same two."""
    data = yaml.safe_load(text)
    assert isinstance(data, dict), path
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    """The ``on:`` mapping; YAML 1.1 reads the bare key ``on`` as the boolean True."""
    on = workflow.get("on", workflow.get(True))
    assert isinstance(on, dict), "`on:` must be a mapping of events"
    return on


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every step of every job, with its job id."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def step_named(job: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    """The index and body of the step called ``name``."""
    for index, step in enumerate(job["steps"]):
        if step.get("name") == name:
            return index, step
    raise AssertionError(f"no step named {name!r}; steps: {[s.get('name') for s in job['steps']]}")


ALL_WORKFLOWS = pytest.mark.parametrize("path", [SCHEDULER, CI], ids=lambda p: p.name)


# --- zizmor ------------------------------------------------------------------------------------


def test_zizmor_finds_nothing_medium_or_worse() -> None:
    findings = zizmor(WORKFLOWS, DEPENDABOT)
    assert serious(findings) == []


def test_zizmor_pedantic_finds_nothing_medium_or_worse() -> None:
    findings = zizmor(WORKFLOWS, DEPENDABOT, persona="pedantic")
    assert serious(findings) == []


@pytest.mark.parametrize(
    ("old", "new", "audit"),
    [
        pytest.param('--date "$TREND_DATE"', '--date "${{ inputs.date }}"', "template-injection", id="inlined-input"),
        pytest.param(f"@{PINS[CHECKOUT][0]}", "@v7.0.1", "unpinned-uses", id="tag-instead-of-sha"),
        pytest.param("        with:\n          persist-credentials: false\n", "", "artipacked", id="persisted-token"),
        pytest.param(
            "  workflow_dispatch:\n",
            "  pull_request_target:\n  workflow_dispatch:\n",
            "dangerous-triggers",
            id="pull-request-target",
        ),
    ],
)
def test_zizmor_flags_a_weakened_scheduler(tmp_path: Path, old: str, new: str, audit: str) -> None:
    """Proves the audit is live: one weakening of the real workflow must produce a serious finding."""
    text = SCHEDULER.read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / ".github" / "workflows" / "scheduler.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")

    flagged = serious(zizmor(bad))

    assert any(line.startswith(f"{audit} ") for line in flagged), flagged


# --- structure shared by every workflow -----------------------------------------------------------


@ALL_WORKFLOWS
def test_permissions_are_empty_at_the_top(path: Path) -> None:
    assert load(path)["permissions"] == {}


@ALL_WORKFLOWS
def test_every_job_declares_permissions_and_a_timeout(path: Path) -> None:
    for job_id, job in load(path)["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{job_id}: no explicit permissions"
        assert isinstance(job.get("timeout-minutes"), int), f"{job_id}: no timeout-minutes"
        assert 0 < job["timeout-minutes"] <= 60, job_id


@ALL_WORKFLOWS
def test_no_expression_inside_a_run_script(path: Path) -> None:
    for job_id, step in steps(load(path)):
        if "run" in step:
            assert "${{" not in step["run"], f"{job_id}/{step.get('name')}: pass values through env: instead"


@ALL_WORKFLOWS
def test_every_uses_is_pinned_to_a_sha_with_its_version(path: Path) -> None:
    parsed = [step["uses"] for _, step in steps(load(path)) if "uses" in step]
    lines = [m for line in path.read_text(encoding="utf-8").splitlines() if (m := USES_LINE.match(line))]
    assert [m["ref"] for m in lines] == parsed, "every uses: must sit on its own line"
    assert parsed, "expected at least one action"

    for match in lines:
        pinned = PINNED.match(match["ref"])
        assert pinned, f"{match['ref']}: pin to a full 40-hex commit SHA"
        comment = VERSION_COMMENT.match(match["rest"])
        assert comment, f"{match['ref']}: add the release as a comment, e.g. '# v1.2.3'"
        expected = PINS.get(pinned["action"])
        assert expected, f"{pinned['action']}: not one of the reviewed actions {sorted(PINS)}"
        assert (pinned["sha"], comment["version"]) == expected, pinned["action"]


@ALL_WORKFLOWS
def test_checkouts_never_persist_the_token(path: Path) -> None:
    checkouts = [step for _, step in steps(load(path)) if step.get("uses", "").startswith(f"{CHECKOUT}@")]
    assert checkouts
    for step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False


@ALL_WORKFLOWS
def test_python_is_311_without_a_pip_cache(path: Path) -> None:
    """uv installs everything, so pip's cache would only be saved and never used."""
    setups = [step for _, step in steps(load(path)) if step.get("uses", "").startswith(f"{SETUP_PYTHON}@")]
    assert setups
    for step in setups:
        assert step["with"] == {"python-version": "3.11"}


def lock_of(job_id: str) -> str:
    """The lock a job installs from: the ETL job runs without test tooling."""
    return "requirements/runtime.lock" if job_id == "etl" else "requirements/test.lock"


@ALL_WORKFLOWS
def test_every_job_sets_up_uv_after_python_with_its_cache_keyed_on_the_lock(path: Path) -> None:
    for job_id, job in load(path)["jobs"].items():
        uses = [step.get("uses", "").split("@")[0] for step in job["steps"]]
        assert uses.count(SETUP_UV) == 1, job_id
        assert uses.index(SETUP_PYTHON) < uses.index(SETUP_UV), f"{job_id}: uv should find the 3.11 just set up"
        step = job["steps"][uses.index(SETUP_UV)]
        assert step["with"] == {"enable-cache": True, "cache-dependency-glob": lock_of(job_id)}, job_id
        assert (ROOT / lock_of(job_id)).is_file()


@ALL_WORKFLOWS
def test_secrets_appear_only_in_step_env(path: Path) -> None:
    """A secret in job or workflow env would reach every step, including the test suite."""
    workflow = load(path)
    assert "secrets." not in json.dumps(workflow.get("env", {}))
    for job_id, job in workflow["jobs"].items():
        assert "secrets." not in json.dumps(job.get("env", {})), job_id
        for step in job.get("steps", []):
            outside_env = {key: value for key, value in step.items() if key != "env"}
            assert "secrets." not in json.dumps(outside_env), f"{job_id}/{step.get('name')}"


@ALL_WORKFLOWS
def test_no_dangerous_triggers(path: Path) -> None:
    assert not {"pull_request_target", "workflow_run"} & set(triggers(load(path)))


# --- scheduler.yml --------------------------------------------------------------------------------


def test_scheduler_runs_at_noon_utc_with_two_catch_up_runs() -> None:
    crons = ["0 12 * * *", "0 18 * * *", "0 23 * * *"]
    assert triggers(load(SCHEDULER))["schedule"] == [{"cron": cron} for cron in crons]
    for cron in crons:
        assert f"- cron: '{cron}'" in SCHEDULER.read_text(encoding="utf-8")


def test_scheduler_dispatch_inputs_are_optional() -> None:
    inputs = triggers(load(SCHEDULER))["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"date", "pages", "dry_run"}
    assert not any(spec.get("required") for spec in inputs.values())
    assert inputs["dry_run"]["type"] == "boolean"


def test_scheduler_concurrency_never_cancels_a_run() -> None:
    assert load(SCHEDULER)["concurrency"] == {"group": "tmdb-trending-etl", "cancel-in-progress": False}


def test_scheduler_job_permissions_are_exact() -> None:
    jobs = load(SCHEDULER)["jobs"]
    assert {job_id: job["permissions"] for job_id, job in jobs.items()} == {
        "etl": {"contents": "write", "id-token": "write"},
    }


def test_scheduler_runs_no_test_suite_only_a_smoke_check_before_the_etl() -> None:
    """The suite ran on push (ci.yml); a flaky test or a test-tooling install must not cost a day."""
    workflow = load(SCHEDULER)
    (job,) = workflow["jobs"].values()
    assert "needs" not in job
    scripts = " ".join(step.get("run", "") for _, step in steps(workflow))
    assert "make test" not in scripts and "pytest" not in scripts
    install_at, _ = step_named(job, "Install the project")
    smoke_at, smoke = step_named(job, "Smoke check")
    etl_at, _ = step_named(job, "Run the ETL")
    assert install_at < smoke_at < etl_at
    assert 'python -m pipeline check --config "$CONFIG"' in smoke["run"]
    assert "--config config/demo.yml" in smoke["run"] and "tests/data/sample/" in smoke["run"]


def test_scheduler_aws_uses_oidc_role_not_keys() -> None:
    job = load(SCHEDULER)["jobs"]["etl"]
    (aws,) = [step for step in job["steps"] if step.get("uses", "").startswith(f"{AWS_CREDENTIALS}@")]
    assert aws["if"] == "${{ steps.inputs.outputs.storage == 's3' }}"
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert aws["with"]["aws-region"] == "${{ vars.AWS_REGION }}"
    assert not {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} & set(aws["with"])
    assert "AWS_ACCESS_KEY_ID" not in SCHEDULER.read_text(encoding="utf-8")


def test_scheduler_etl_installs_the_runtime_lock_with_hashes_and_nothing_unpinned() -> None:
    job = load(SCHEDULER)["jobs"]["etl"]
    install_at, install = step_named(job, "Install the project")
    etl_at, _ = step_named(job, "Run the ETL")
    assert install_at < etl_at
    assert install["run"].splitlines() == [
        "uv pip install --system --require-hashes -r requirements/runtime.lock",
        "uv pip install --system --no-deps .",
    ]
    scripts = " ".join(step.get("run", "") for step in job["steps"])
    assert "pip install" not in scripts.replace("uv pip install", ""), "every install goes through uv and the lock"


def test_scheduler_etl_step_gets_the_secret_and_the_bucket() -> None:
    job = load(SCHEDULER)["jobs"]["etl"]
    _, etl = step_named(job, "Run the ETL")
    assert etl["env"]["TMDB_ACCESS_TOKEN"] == "${{ secrets.TMDB_ACCESS_TOKEN }}"
    assert etl["env"]["S3_BUCKET"] == "${{ vars.S3_BUCKET }}"
    assert etl["env"]["NOTIFY_URL"] == "${{ secrets.NOTIFY_URL }}"
    assert etl["env"]["CONFIG"] == "${{ steps.inputs.outputs.config }}"
    assert "python -m pipeline" in etl["run"]
    assert 'run --config "$CONFIG"' in etl["run"]


def test_scheduler_validates_inputs_before_anything_uses_them() -> None:
    job = load(SCHEDULER)["jobs"]["etl"]
    validate_at, validate = step_named(job, "Validate inputs")
    assert validate["env"]["INPUT_DATE"] == "${{ inputs.date }}"
    assert validate["env"]["INPUT_PAGES"] == "${{ inputs.pages }}"
    for index, step in enumerate(job["steps"]):
        if index != validate_at:
            assert "inputs.date" not in json.dumps(step) and "inputs.pages" not in json.dumps(step), step.get("name")


def test_scheduler_commits_only_after_a_successful_etl() -> None:
    job = load(SCHEDULER)["jobs"]["etl"]
    aws_at = next(i for i, s in enumerate(job["steps"]) if s.get("uses", "").startswith(f"{AWS_CREDENTIALS}@"))
    etl_at, _ = step_named(job, "Run the ETL")
    commit_at, commit = step_named(job, "Commit and push LATEST_UPDATE.md")
    publish_at, publish = step_named(job, "Publish the lake to the data branch")
    assert aws_at < etl_at < commit_at < publish_at == len(job["steps"]) - 1
    for step, storage in ((commit, "s3"), (publish, "git")):
        assert "success()" in step["if"] and "always()" not in step["if"]
        assert f"steps.inputs.outputs.storage == '{storage}'" in step["if"]
    assert publish["run"] == 'tools/publish_lake.sh push data "$TREND_DATE"'
    _, pull = step_named(job, "Check out the data branch")
    assert pull["run"] == "tools/publish_lake.sh pull data"
    assert pull["if"] == "${{ steps.inputs.outputs.storage == 'git' }}"
    assert not any(step.get("continue-on-error") for step in job["steps"])
    script = commit["run"]
    assert "git diff --cached --quiet" in script, "commit only when the report changed"
    assert "github-actions[bot]" in script
    assert re.search(r'commit .*-m "[^"]*\$TREND_DATE[^"]*"', script), "the message names the trend date"
    (push,) = [line for line in script.splitlines() if line.startswith("git push")]
    assert push == 'git push origin "HEAD:$GITHUB_REF"', "fast-forward only, never forced"


# --- ci.yml ---------------------------------------------------------------------------------------


def test_ci_runs_make_test_on_push_and_pull_request() -> None:
    workflow = load(CI)
    assert {"push", "pull_request"} <= set(triggers(workflow))
    assert [step["run"] for _, step in steps(workflow) if "run" in step] == ["make test"]


def test_ci_is_read_only() -> None:
    jobs = load(CI)["jobs"]
    assert {job_id: job["permissions"] for job_id, job in jobs.items()} == {"test": {"contents": "read"}}


# --- dependabot.yml --------------------------------------------------------------------------------


def test_dependabot_updates_pip_and_actions_weekly_in_groups() -> None:
    config = yaml.safe_load(DEPENDABOT.read_text(encoding="utf-8"))
    assert config["version"] == 2
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(updates) == {"pip", "github-actions"}
    for ecosystem, update in updates.items():
        assert update["directory"] == "/", ecosystem
        assert update["schedule"] == {"interval": "weekly"}, ecosystem
        assert update["cooldown"]["default-days"] >= 7, ecosystem
        (group,) = update["groups"].values()
        assert group == {"patterns": ["*"]}, f"{ecosystem}: one grouped pull request"


# --- the scheduler's shell steps, run for real --------------------------------------------------------


def run_step(name: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one etl step's script the way the runner does (``shell: bash`` is ``bash -eo pipefail``)."""
    workflow = load(SCHEDULER)
    assert workflow["defaults"]["run"]["shell"] == "bash"
    _, step = step_named(workflow["jobs"]["etl"], name)
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env=base | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def manual(trend_date: str, pages: str) -> dict[str, str]:
    """The outputs of a valid manual run with the default storage (s3)."""
    return {
        "trend_date": trend_date,
        "pages": pages,
        "storage": "s3",
        "config": "config/aws.yml",
        "skip_committed": "false",
    }


@pytest.mark.parametrize(
    ("date", "pages", "expected"),
    [
        pytest.param("", "", manual(TODAY, ""), id="scheduled-defaults"),
        pytest.param(YESTERDAY, "3", manual(YESTERDAY, "3"), id="yesterday"),
        pytest.param("2024-02-29", "3", None, id="past-days-are-for-reprocess"),
        pytest.param("", "500", manual(TODAY, "500"), id="max-pages"),
        pytest.param("2023-02-29", "", None, id="not-a-date"),
        pytest.param("2024-2-01", "", None, id="not-iso"),
        pytest.param("2999-01-01", "", None, id="future"),
        pytest.param('2024-01-01"; id; "', "", None, id="injection-in-date"),
        pytest.param("", "0", None, id="zero-pages"),
        pytest.param("", "501", None, id="too-many-pages"),
        pytest.param("", "1; id", None, id="injection-in-pages"),
    ],
)
def test_validate_inputs(tmp_path: Path, date: str, pages: str, expected: dict[str, str] | None) -> None:
    output = tmp_path / "output"
    env = {
        "EVENT_NAME": "workflow_dispatch",
        "DEFAULT_BRANCH": "main",
        "GITHUB_REF": "refs/heads/main",
        "INPUT_DATE": date,
        "INPUT_PAGES": pages,
        "GITHUB_OUTPUT": str(output),
    }

    proc = run_step("Validate inputs", env, tmp_path)

    if expected is None:
        assert proc.returncode != 0 and "::error::" in proc.stdout
        assert not output.exists()
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert dict(line.split("=", 1) for line in output.read_text().splitlines()) == expected


@pytest.mark.parametrize(
    ("event", "storage", "expected"),
    [
        pytest.param("schedule", "", {"storage": "s3", "config": "config/aws.yml", "skip_committed": "true"}, id="s3"),
        pytest.param(
            "schedule", "s3", {"storage": "s3", "config": "config/aws.yml", "skip_committed": "true"}, id="s3-set"
        ),
        pytest.param(
            "schedule", "git", {"storage": "git", "config": "config/git.yml", "skip_committed": "true"}, id="git"
        ),
        pytest.param(
            "workflow_dispatch",
            "git",
            {"storage": "git", "config": "config/git.yml", "skip_committed": "false"},
            id="manual",
        ),
        pytest.param("schedule", "gcs", None, id="unknown-storage"),
        pytest.param("schedule", "git; id", None, id="injection-in-storage"),
    ],
)
def test_validate_inputs_picks_the_storage_and_the_catch_up_flag(
    tmp_path: Path, event: str, storage: str, expected: dict[str, str] | None
) -> None:
    output = tmp_path / "output"
    env = {
        "EVENT_NAME": event,
        "DEFAULT_BRANCH": "main",
        "GITHUB_REF": "refs/heads/main",
        "INPUT_DATE": "",
        "INPUT_PAGES": "",
        "LAKE_STORAGE": storage,
        "GITHUB_OUTPUT": str(output),
    }

    proc = run_step("Validate inputs", env, tmp_path)

    if expected is None:
        assert proc.returncode == 1 and "LAKE_STORAGE must be s3 (the default) or git" in proc.stdout
        assert not output.exists()
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
        assert {key: outputs[key] for key in expected} == expected


def test_validate_inputs_refuses_a_manual_run_off_the_default_branch(tmp_path: Path) -> None:
    env = {
        "EVENT_NAME": "workflow_dispatch",
        "DEFAULT_BRANCH": "main",
        "GITHUB_REF": "refs/heads/feature",
        "INPUT_DATE": "",
        "INPUT_PAGES": "",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }

    proc = run_step("Validate inputs", env, tmp_path)

    assert proc.returncode == 1 and "default branch" in proc.stdout


@pytest.mark.parametrize(
    ("config", "pages", "skip", "dry_run", "expected"),
    [
        pytest.param("config/aws.yml", "", "false", "", "run --config config/aws.yml --date 2026-11-25", id="manual"),
        pytest.param(
            "config/aws.yml",
            "2",
            "false",
            "false",
            "run --config config/aws.yml --date 2026-11-25 --set extractor.options.pages=2",
            id="pages",
        ),
        pytest.param(
            "config/aws.yml",
            "",
            "false",
            "true",
            "run --config config/aws.yml --date 2026-11-25 --dry-run",
            id="dry-run",
        ),
        pytest.param(
            "config/git.yml",
            "",
            "true",
            "false",
            "run --config config/git.yml --date 2026-11-25 --skip-committed",
            id="scheduled-git",
        ),
    ],
)
def test_etl_step_arguments(tmp_path: Path, config: str, pages: str, skip: str, dry_run: str, expected: str) -> None:
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nshift 2\necho "$*"\n')  # drops "-m pipeline"
    fake.chmod(0o755)
    env = {
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "CONFIG": config,
        "TREND_DATE": "2026-11-25",
        "PAGES": pages,
        "SKIP_COMMITTED": skip,
        "DRY_RUN": dry_run,
    }

    proc = run_step("Run the ETL", env, tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a throwaway identity and no user config."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", "-c", "user.name=dev", "-c", "user.email=dev@example.com", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()


@pytest.fixture(scope="session")
def clone_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare "origin" whose main already has yesterday's report, and ``work``, a checkout of it: made once."""
    base = tmp_path_factory.mktemp("clone")
    origin, seed, work = base / "origin.git", base / "seed", base / "work"
    git(base, "init", "--quiet", "--bare", str(origin))
    git(base, "init", "--quiet", str(seed))
    (seed / "LATEST_UPDATE.md").write_text("old report\n")
    git(seed, "add", "LATEST_UPDATE.md")
    git(seed, "commit", "--quiet", "-m", "seed")
    git(seed, "push", "--quiet", str(origin), "HEAD:refs/heads/main")
    git(base, "clone", "--quiet", "--depth=1", f"file://{origin}", str(work))
    return base


@pytest.fixture
def clone(clone_template: Path, tmp_path: Path) -> Path:
    """A checkout of a bare "origin" whose main already has yesterday's report.

    A copy of ``clone_template`` whose checkout points at its own copy of origin: the same repositories as
    six git commands per test made (0.1-0.3 s of each test's set-up), in a few milliseconds.
    """
    for name in ("origin.git", "work"):
        shutil.copytree(clone_template / name, tmp_path / name, symlinks=True)
    config = tmp_path / "work" / ".git" / "config"
    config.write_text(config.read_text().replace(str(clone_template / "origin.git"), str(tmp_path / "origin.git")))
    assert git(tmp_path / "work", "remote", "get-url", "origin") == f"file://{tmp_path / 'origin.git'}"
    return tmp_path / "work"


def commit_step(work: Path, paths: str = "LATEST_UPDATE.md") -> subprocess.CompletedProcess[str]:
    """The commit step as the runner would run it after an ETL run on main."""
    runner_temp = work.parent / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    env = {
        "GITHUB_TOKEN": "ghs_not_a_real_token",
        "TREND_DATE": "2026-11-25",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SERVER_URL": "https://github.com",
        "RUNNER_TEMP": str(runner_temp),
        "COMMIT_PATHS": paths,
    }
    return run_step("Commit and push LATEST_UPDATE.md", env, work)


def origin_log(work: Path) -> list[str]:
    """``author|subject`` of origin's main, newest first."""
    return git(work.parent / "origin.git", "log", "--format=%an|%s", "main").splitlines()


def test_commit_step_pushes_a_changed_report(clone: Path) -> None:
    (clone / "LATEST_UPDATE.md").write_text("new report\n")

    proc = commit_step(clone)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert origin_log(clone)[0] == "github-actions[bot]|Daily report: TMDB trending for 2026-11-25"
    assert "ghs_not_a_real_token" not in (clone / ".git" / "config").read_text()


def test_commit_step_skips_an_unchanged_report(clone: Path) -> None:
    proc = commit_step(clone)

    assert proc.returncode == 0, proc.stderr
    assert "nothing to commit" in proc.stdout
    assert origin_log(clone) == ["dev|seed"]


def test_commit_step_lands_on_top_of_a_newer_main(clone: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", f"file://{tmp_path / 'origin.git'}", str(other))
    (other / "README.md").write_text("pushed while the ETL ran\n")
    git(other, "add", "README.md")
    git(other, "commit", "--quiet", "-m", "concurrent change")
    git(other, "push", "--quiet", "origin", "HEAD:main")
    (clone / "LATEST_UPDATE.md").write_text("new report\n")

    proc = commit_step(clone)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [line.split("|")[1] for line in origin_log(clone)] == [
        "Daily report: TMDB trending for 2026-11-25",
        "concurrent change",
        "seed",
    ]


def test_commit_step_fails_when_no_report_was_written(clone: Path) -> None:
    (clone / "LATEST_UPDATE.md").unlink()

    proc = commit_step(clone)

    assert proc.returncode == 1 and "did not write" in proc.stdout


def test_commit_step_commits_a_local_lake_too(clone: Path) -> None:
    """The local-lake set-up in docs/operations.md: COMMIT_PATHS names the lake folder as well."""
    (clone / "LATEST_UPDATE.md").write_text("new report\n")
    day = clone / "data" / "lake" / "cleaned_data" / "2026" / "11" / "2026-11-25_movies.csv"
    day.parent.mkdir(parents=True)
    day.write_text("rank,title\n1,A\n")

    proc = commit_step(clone, "LATEST_UPDATE.md data/lake")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = git(clone.parent / "origin.git", "show", "--name-only", "--format=", "main").splitlines()
    assert sorted(files) == ["LATEST_UPDATE.md", "data/lake/cleaned_data/2026/11/2026-11-25_movies.csv"]


def workflow_commit_paths() -> str:
    """The commit step's ``COMMIT_PATHS``, as the workflow sets it."""
    _, commit = step_named(load(SCHEDULER)["jobs"]["etl"], "Commit and push LATEST_UPDATE.md")
    return str(commit["env"]["COMMIT_PATHS"])


@pytest.mark.parametrize(
    "charts",
    [
        ["LATEST_UPDATE.movies.svg", "LATEST_UPDATE.people.svg", "LATEST_UPDATE.tv.svg"],  # config/aws.yml's feeds
        [],  # the chart turned off, or matplotlib not installed
    ],
)
def test_commit_step_commits_the_report_with_every_feeds_chart(clone: Path, charts: list[str]) -> None:
    (clone / "LATEST_UPDATE.md").write_text("new report\n")
    for name in charts:
        (clone / name).write_text("<svg/>\n")
    (clone / "LATEST_UPDATE.md.tmp").write_text("not a chart\n")  # a pattern takes only what it names

    proc = commit_step(clone, workflow_commit_paths())

    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = git(clone.parent / "origin.git", "show", "--name-only", "--format=", "main").splitlines()
    assert sorted(files) == sorted(["LATEST_UPDATE.md", *charts])


@pytest.mark.parametrize("path", ["/etc", "../outside", "../*.svg", "/tmp/*"])
def test_commit_step_refuses_paths_outside_the_repository(clone: Path, path: str) -> None:
    proc = commit_step(clone, f"LATEST_UPDATE.md {path}")

    assert proc.returncode == 1 and "relative paths inside the repository" in proc.stdout


def test_smoke_check_step_passes_offline_and_writes_nothing_to_the_lake(tmp_path: Path) -> None:
    """The step as the job runs it, with the installed pipeline: check of the git config, then the sample replay."""
    data = tmp_path / "data"
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "TMDB_ACCESS_TOKEN": "smoke-test-token-0123456789",
        "CONFIG": "config/git.yml",
        "DATA_DIR": str(data),
        "TMPDIR": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }

    proc = run_step("Smoke check", env, ROOT)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "config/git.yml: valid" in proc.stdout
    assert re.search(r"^wrote \d+ rows from 3 pages for 2026-11-25 ", proc.stdout, re.MULTILINE), proc.stdout
    assert not data.exists(), "the smoke check never touches the job's lake"
    assert not (tmp_path / "summary.md").exists(), "nor the job summary"
    assert list(tmp_path.iterdir()) == [], "its scratch lake is removed"
    assert "smoke-test-token-0123456789" not in proc.stdout + proc.stderr


# --- the git-backed lake: tools/publish_lake.sh against a bare repository ---------------------------------

PUBLISH = ROOT / "tools" / "publish_lake.sh"
SAMPLE = ROOT / "tests" / "data" / "sample"


def publish(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``tools/publish_lake.sh`` as the job runs it, from the checkout of main."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["bash", str(PUBLISH), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=False
    )


def scheduled_run(clone: Path, run_cli: CliRunner, day: str, pages: Path, *extra: str) -> tuple[int, str]:
    """One scheduled job of the git storage: pull the data branch into a fresh folder, run, publish on success."""
    data = clone.parent / f"job-{len(list(clone.parent.glob('job-*')))}"
    pulled = publish(clone, "pull", str(data))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    replay = ["--set", "extractor.type=replay", "--set", f"extractor.options={{path: {pages}}}"]
    done = run_cli("run", "--config", "config/git.yml", "--date", day, *replay, *extra, env={"DATA_DIR": str(data)})
    if done.returncode != 0:
        return done.returncode, done.stderr  # the workflow's publish step runs on success only
    pushed = publish(clone, "push", str(data), day)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    return 0, pushed.stdout


def data_log(clone: Path) -> list[str]:
    """``author|subject`` of origin's data branch, newest first, checked to be linear."""
    origin = clone.parent / "origin.git"
    merges = git(origin, "rev-list", "--merges", "data")
    assert merges == "", "the data branch stays linear"
    return git(origin, "log", "--format=%an|%s", "data").splitlines()


def test_the_git_lake_two_days_a_re_run_and_a_catch_up_give_one_commit_per_day(
    clone: Path, tmp_path: Path, run_cli: CliRunner
) -> None:
    broken = tmp_path / "outage"
    broken.mkdir()
    (broken / "page-001.json").write_text('{"page": 1, "results": [')  # TMDB down: the run fails mid-way

    assert scheduled_run(clone, run_cli, "2026-11-24", SAMPLE / "2026-11-24", "--skip-committed")[0] == 0
    assert scheduled_run(clone, run_cli, "2026-11-25", SAMPLE / "2026-11-25", "--skip-committed")[0] == 0
    rerun = scheduled_run(clone, run_cli, "2026-11-25", SAMPLE / "2026-11-25", "--skip-committed")
    noon = scheduled_run(clone, run_cli, "2026-11-26", broken, "--skip-committed")
    evening = scheduled_run(clone, run_cli, "2026-11-26", SAMPLE / "2026-11-25", "--skip-committed")
    night = scheduled_run(clone, run_cli, "2026-11-26", broken, "--skip-committed")  # would fail if it ran

    assert rerun == (0, "nothing changed in " + str(tmp_path / "job-2") + "; nothing to publish\n")
    assert noon[0] == 1
    assert evening[0] == 0 and evening[1].startswith("published 2026-11-26 to data at ")
    assert night == (0, "nothing changed in " + str(tmp_path / "job-5") + "; nothing to publish\n")
    bot = "github-actions[bot]"
    days = ("2026-11-26", "2026-11-25", "2026-11-24")
    assert data_log(clone) == [f"{bot}|Lake: TMDB trending for {day}" for day in days]
    assert origin_log(clone) == ["dev|seed"], "main is never touched"
    files = git(clone.parent / "origin.git", "ls-tree", "-r", "--name-only", "data").splitlines()
    manifests = sorted(f for f in files if f.startswith("lake/_manifests/"))
    assert [m.rsplit("/", 1)[-1] for m in manifests] == [f"{day}_movies.json" for day in sorted(days)], files
    assert "LATEST_UPDATE.md" in files
    assert not [f for f in files if f.startswith("lake/_locks/") or f.endswith(".tmp")], "no lock or temp file"
    report = git(clone.parent / "origin.git", "show", "data:LATEST_UPDATE.md")
    assert "2026-11-26" in report


def test_publish_refuses_a_bad_date_and_an_unknown_command(clone: Path, tmp_path: Path) -> None:
    pulled = publish(clone, "pull", str(tmp_path / "d"))
    assert pulled.returncode == 0 and "does not exist yet" in pulled.stdout

    bad_date = publish(clone, "push", str(tmp_path / "d"), "2026-11-25; id")
    unknown = publish(clone, "merge", str(tmp_path / "d"))
    again = publish(clone, "pull", str(tmp_path / "d"))
    (tmp_path / "d" / "x").write_text("x")
    not_empty = publish(clone, "pull", str(tmp_path / "d"))

    assert bad_date.returncode == 1 and "DATE must be YYYY-MM-DD" in bad_date.stdout
    assert unknown.returncode == 1 and "usage:" in unknown.stdout
    assert again.returncode == 1 or not_empty.returncode == 1
    assert not_empty.returncode == 1 and "not empty" in not_empty.stdout
    assert git(clone.parent / "origin.git", "branch", "--list", "data") == ""


def test_publish_authenticates_through_the_environment_only(clone: Path, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GITHUB_TOKEN": "ghs_not_a_real_token",
        "GITHUB_SERVER_URL": "https://github.com",
    }
    proc = subprocess.run(
        ["bash", str(PUBLISH), "pull", str(tmp_path / "d")],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ghs_not_a_real_token" not in proc.stdout + proc.stderr
    assert "ghs_not_a_real_token" not in (tmp_path / "d" / ".git" / "config").read_text()


def test_scheduler_commits_the_rank_chart_with_the_report_and_installs_matplotlib() -> None:
    job = load(SCHEDULER)["jobs"]["etl"]
    _, commit = step_named(job, "Commit and push LATEST_UPDATE.md")
    assert commit["env"]["COMMIT_PATHS"].split() == ["LATEST_UPDATE.md", "LATEST_UPDATE.*.svg"]
    runtime = (ROOT / "requirements" / "runtime.lock").read_text(encoding="utf-8")
    assert re.search(r"^matplotlib==", runtime, re.M), "the ETL job draws the chart: the charts extra is in its lock"
