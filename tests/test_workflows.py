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
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

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


def test_scheduler_runs_daily_at_noon_utc() -> None:
    assert triggers(load(SCHEDULER))["schedule"] == [{"cron": "0 12 * * *"}]
    assert "- cron: '0 12 * * *'" in SCHEDULER.read_text(encoding="utf-8")


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
        "test": {"contents": "read"},
        "etl": {"contents": "write", "id-token": "write"},
    }


def test_scheduler_etl_runs_only_after_the_tests() -> None:
    jobs = load(SCHEDULER)["jobs"]
    assert jobs["etl"]["needs"] == "test"
    assert [step.get("run") for step in jobs["test"]["steps"] if "run" in step] == ["make test"]


def test_scheduler_aws_uses_oidc_role_not_keys() -> None:
    job = load(SCHEDULER)["jobs"]["etl"]
    (aws,) = [step for step in job["steps"] if step.get("uses", "").startswith(f"{AWS_CREDENTIALS}@")]
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
    assert "python -m pipeline" in etl["run"]
    assert "run --config config/aws.yml" in etl["run"]


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
    assert aws_at < etl_at < commit_at == len(job["steps"]) - 1
    assert "success()" in commit["if"] and "always()" not in commit["if"]
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


@pytest.mark.parametrize(
    ("date", "pages", "expected"),
    [
        pytest.param("", "", {"trend_date": TODAY, "pages": ""}, id="scheduled-defaults"),
        pytest.param(YESTERDAY, "3", {"trend_date": YESTERDAY, "pages": "3"}, id="yesterday"),
        pytest.param("2024-02-29", "3", None, id="past-days-are-for-reprocess"),
        pytest.param("", "500", {"trend_date": TODAY, "pages": "500"}, id="max-pages"),
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
    ("pages", "dry_run", "expected"),
    [
        pytest.param("", "", "run --config config/aws.yml --date 2026-11-25", id="scheduled"),
        pytest.param(
            "2", "false", "run --config config/aws.yml --date 2026-11-25 --set extractor.options.pages=2", id="pages"
        ),
        pytest.param("", "true", "run --config config/aws.yml --date 2026-11-25 --dry-run", id="dry-run"),
    ],
)
def test_etl_step_arguments(tmp_path: Path, pages: str, dry_run: str, expected: str) -> None:
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nshift 2\necho "$*"\n')  # drops "-m pipeline"
    fake.chmod(0o755)
    env = {
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "TREND_DATE": "2026-11-25",
        "PAGES": pages,
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


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A checkout of a bare "origin" whose main already has yesterday's report."""
    origin, seed, work = tmp_path / "origin.git", tmp_path / "seed", tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--bare", str(origin))
    git(tmp_path, "init", "--quiet", str(seed))
    (seed / "LATEST_UPDATE.md").write_text("old report\n")
    git(seed, "add", "LATEST_UPDATE.md")
    git(seed, "commit", "--quiet", "-m", "seed")
    git(seed, "push", "--quiet", str(origin), "HEAD:refs/heads/main")
    git(tmp_path, "clone", "--quiet", "--depth=1", f"file://{origin}", str(work))
    return work


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


@pytest.mark.parametrize("path", ["/etc", "../outside"])
def test_commit_step_refuses_paths_outside_the_repository(clone: Path, path: str) -> None:
    proc = commit_step(clone, f"LATEST_UPDATE.md {path}")

    assert proc.returncode == 1 and "relative paths inside the repository" in proc.stdout


def test_scheduler_commits_the_rank_chart_with_the_report_and_installs_matplotlib() -> None:
    job = load(SCHEDULER)["jobs"]["etl"]
    _, commit = step_named(job, "Commit and push LATEST_UPDATE.md")
    assert commit["env"]["COMMIT_PATHS"].split() == ["LATEST_UPDATE.md", "LATEST_UPDATE.movies.svg"]
    runtime = (ROOT / "requirements" / "runtime.lock").read_text(encoding="utf-8")
    assert re.search(r"^matplotlib==", runtime, re.M), "the ETL job draws the chart: the charts extra is in its lock"
