"""``notify`` reporter: a message through apprise when a run fails, and optionally a digest when it succeeds.

apprise speaks Slack, Discord, e-mail, ntfy, Telegram, Matrix, plain JSON webhooks and a hundred
more, each chosen by one URL (https://github.com/caronc/apprise/wiki). The URL carries its
service's secrets (tokens, passwords), so it is kept in a secret and given as ``${NOTIFY_URL}``:
every part of it that could be a secret is registered with ``pipeline.redact`` before anything is
sent or logged, and the messages are built from redacted text only. An empty URL turns the
reporter off, so a config can name it while only some deployments set the secret.

Failure: the runner calls ``on_failure`` with the run's one-line error (redacted, ending with what
happened to the lake), after the stages are closed. Success: with ``on_success: true``,
``report`` sends the top ``top`` titles (default 3) and the biggest climber.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, field_validator

from pipeline.errors import ConfigError, ReportError
from pipeline.redact import redact, register_secret
from pipeline.stage import Check, Reporter, RunContext, RunLake, RunResult
from stages.reporters import report_model as rm

if TYPE_CHECKING:
    import apprise

logger = logging.getLogger(__name__)

INSTALL_HINT = "the notify reporter needs apprise: run `make run EXTRAS=notify` (or use .venv/bin/python)"
_MIN_SECRET = 6  # shorter path parts ("json", "hook", a port) are not secrets and would mask common words


class NotifyOptions(rm.ReportOptions):
    """Options of the ``notify`` reporter: where to send, and whether to send a digest on success."""

    url: str = ""
    """An apprise URL, usually ``${NOTIFY_URL}``; empty turns the reporter off."""
    title: str = Field(default="TMDB trending", min_length=1, max_length=200)
    on_success: bool = False
    """Also send a short digest after a successful run: the top titles and the biggest climber."""
    top: int = Field(default=3, ge=1, le=20)
    climbers: int = Field(default=1, ge=1, le=20)

    @field_validator("url")
    @classmethod
    def _apprise_understands(cls, value: str) -> str:
        value = value.strip()
        if value:
            register_url_secrets(value)  # before any message about it can be built
            _target(value)
        return value


def register_url_secrets(url: str) -> None:
    """Register the URL and each of its parts that may be a secret: password, user, path segments, query values."""
    register_secret(url)
    parts = urlsplit(url)
    candidates = [parts.password, parts.username, *parts.path.split("/"), *(v for _, v in parse_qsl(parts.query))]
    if "@" not in parts.netloc and parts.scheme not in ("http", "https", "json", "jsons", "form", "forms"):
        candidates.append(parts.hostname)  # slack://TokenA/..., discord://webhook_id/...: the "host" is a token
    for candidate in candidates:
        if candidate and len(unquote(candidate)) >= _MIN_SECRET:
            register_secret(candidate)
            register_secret(unquote(candidate))


def _target(url: str) -> apprise.Apprise:
    """An apprise object holding ``url``; a ``ConfigError`` naming only the scheme when apprise refuses it."""
    try:
        import apprise
    except ModuleNotFoundError:
        raise ConfigError(INSTALL_HINT) from None
    target = apprise.Apprise()
    if not target.add(url):
        scheme = urlsplit(url).scheme or "(none)"
        raise ValueError(f"apprise does not understand this URL (scheme {scheme!r}); see the apprise wiki")
    return target


class NotifyReporter(Reporter[NotifyOptions]):
    """Sends the failure line, and optionally a success digest, to one apprise URL."""

    Options = NotifyOptions

    async def preflight(self, connect: bool) -> list[Check]:
        """Options valid; says whether a URL is set (without showing it). Sends nothing, even with ``connect``."""
        checks = await super().preflight(connect)
        url = self.options.url
        if not url:
            return [*checks, self.preflight_check("url", "empty: notifications are off")]
        return [*checks, self.preflight_check("url", f"set ({urlsplit(url).scheme}://…); nothing sent by check")]

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        """Send the digest when ``on_success`` is set and a URL is configured; otherwise do nothing."""
        if not (self.options.url and self.options.on_success):
            return {}
        model = await rm.build_report(result, lake, self.options, stage=self.name)
        title = f"{self.options.title}: {result.trend_date} committed"
        if not await self._send(title, digest(model), "success"):
            raise ReportError(f"could not deliver the digest to {self._where()}", stage=self.name)
        return {f"report:{self.name}": self._where()}

    async def on_failure(self, context: RunContext, message: str) -> None:
        """Send one message: the run's date and its one-line error."""
        if not self.options.url:
            return
        title = f"{self.options.title}: {context.trend_date} failed"
        if not await self._send(title, message, "failure"):
            logger.warning("could not deliver the failure message to %s", self._where())

    async def _send(self, title: str, body: str, kind: str) -> bool:
        import apprise

        target = _target(self.options.url)
        notify_type = apprise.NotifyType.FAILURE if kind == "failure" else apprise.NotifyType.SUCCESS
        sent: Any = await target.async_notify(
            body=redact(body), title=redact(title), notify_type=notify_type, body_format=apprise.NotifyFormat.TEXT
        )
        logger.info("%s message %s to %s", kind, "sent" if sent else "NOT sent", self._where())
        return bool(sent)

    def _where(self) -> str:
        return f"{urlsplit(self.options.url).scheme}://…"


def digest(report: rm.Report) -> str:
    """Plain text: the top titles, then the biggest climber (or why there is none)."""
    movement = report.movement
    lines = [f"{report.total} titles in {report.result.feed.label}. Top {len(movement.top)}:"]
    lines += [f"{entry.rank}. {_plain(entry.title)}{_year(entry)}" for entry in movement.top]
    if not movement.compared:
        lines.append("Biggest climber: none yet (the first day in the lake)")
    elif movement.climbers:
        best = movement.climbers[0]
        lines.append(
            f"Biggest climber: {_plain(best.title)}, #{best.previous_rank} → #{best.rank} "
            f"(+{best.change} since {movement.previous_date})"
        )
    else:
        lines.append(f"Biggest climber: none (no title climbed since {movement.previous_date})")
    return "\n".join(lines)


def _plain(title: str) -> str:
    """A title on one line: TMDB text is untrusted, and a line break would forge a line of the message."""
    return " ".join(title.split()) or "(untitled)"


def _year(entry: rm.Entry) -> str:
    year = rm.year(entry.release_date)
    return "" if year == rm.NO_VALUE else f" ({year})"
