"""``notify`` reporter: a message through apprise when a run fails, and optionally a digest when it succeeds.

apprise speaks Slack, Discord, e-mail, ntfy, Telegram, Matrix, plain JSON webhooks and a hundred
more, each chosen by one URL (https://github.com/caronc/apprise/wiki). The URL carries its
service's secrets (tokens, passwords), so it is kept in a secret and given as ``${NOTIFY_URL}``:
every part of it that could be a secret is registered with ``pipeline.redact`` before anything is
sent or logged, and the messages are built from redacted text only. An empty URL turns the
reporter off, so a config can name it while only some deployments set the secret.

Failure: the runner calls ``on_failure`` with the run's one-line error (redacted, ending with what
happened to the lake), after the stages are closed; that covers a run of several feeds that all
failed too. A run of several feeds where some committed and some failed reaches ``report``: it
sends the same failure message (the CLI's ``N of M feeds failed: ...`` line), whether or not
``on_success`` is set. Success: with ``on_success: true``, ``report`` sends a digest with a
paragraph per feed: its top ``top`` (default 3) and its biggest climber, or, for a feed that
failed, that it failed. Every name is cut to one short line and the body to ``MAX_BODY``
characters, so a message stays within what chat services take.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, field_validator

from pipeline.errors import ConfigError, ReportError
from pipeline.redact import redact, register_secret
from pipeline.runner import feeds_failure_line
from pipeline.stage import Check, Feed, Reporter, RunContext, RunLake, RunResult
from stages.reporters import report_model as rm

if TYPE_CHECKING:
    import apprise

logger = logging.getLogger(__name__)

INSTALL_HINT = "the notify reporter needs apprise: run `make run EXTRAS=notify` (or use .venv/bin/python)"
_MIN_SECRET = 6  # shorter path parts ("json", "hook", a port) are not secrets and would mask common words
NAME_WIDTH = 60
"""A title or name in a message is cut to this many characters."""
ERROR_WIDTH = 200
"""A failed feed's error in a digest is cut to this many characters (the failure line above it has it whole)."""
MAX_BODY = 1900
"""A message's body is cut to this many characters: under Discord's 2,000, far under Slack's and Telegram's limits."""


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
        """Send the failure line when some feed of the run failed, with the digest when ``on_success`` is set;
        the digest alone when every feed committed and ``on_success`` is set; otherwise nothing."""
        if not self.options.url or not (self.options.on_success or result.failed):
            return {}
        parts = []
        if result.failed:
            parts.append(feeds_failure_line(result))
        if self.options.on_success:
            parts.append(digest(await rm.build_report(result, lake, self.options, stage=self.name)))
        outcome = "failed" if result.failed else "committed"
        kind = "failure" if result.failed else "success"
        if not await self._send(f"{self.options.title}: {result.trend_date} {outcome}", "\n\n".join(parts), kind):
            what = "failure message" if result.failed else "digest"
            raise ReportError(f"could not deliver the {what} to {self._where()}", stage=self.name)
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
            body=_cut(redact(body), MAX_BODY),
            title=redact(title),
            notify_type=notify_type,
            body_format=apprise.NotifyFormat.TEXT,
        )
        logger.info("%s message %s to %s", kind, "sent" if sent else "NOT sent", self._where())
        return bool(sent)

    def _where(self) -> str:
        return f"{urlsplit(self.options.url).scheme}://…"


def digest(report: rm.Report) -> str:
    """Plain text, a paragraph per feed of the run: its top entries and its biggest climber, or that it failed.

    A one-feed run's digest is that feed's paragraph alone.
    """
    if not report.parts:  # a report built by hand, without sections: the one feed of its movement
        return "\n".join(_paragraph(report.result.feed, report.total, report.movement))
    paragraphs = []
    for part in report.parts:
        if isinstance(part, rm.FailedSection):
            paragraphs.append(f"{part.feed.label}: failed ({_cut(_plain(part.error), ERROR_WIDTH)})")
        else:
            paragraphs.append("\n".join(_paragraph(part.feed, part.total, part.movement)))
    return "\n\n".join(paragraphs)


def _paragraph(feed: Feed, total: int, movement: rm.Movement) -> list[str]:
    """``N titles in <feed>. Top 3:``, one line per entry, then the biggest climber (or why there is none)."""
    people = feed.is_people
    lines = [f"{total} {'people' if people else 'titles'} in {feed.label}. Top {len(movement.top)}:"]
    lines += [f"{entry.rank}. {_name(entry)}{_detail(entry, people)}" for entry in movement.top]
    if not movement.compared:
        lines.append("Biggest climber: none yet (the first day in the lake)")
    elif movement.climbers:
        best = movement.climbers[0]
        lines.append(
            f"Biggest climber: {_name(best)}, #{best.previous_rank} → #{best.rank} "
            f"(+{best.change} since {movement.previous_date})"
        )
    else:
        nobody = "no one" if people else "no title"
        lines.append(f"Biggest climber: none ({nobody} climbed since {movement.previous_date})")
    return lines


def _name(entry: rm.Entry) -> str:
    return _cut(_plain(entry.title), NAME_WIDTH) or "(untitled)"


def _plain(text: str) -> str:
    """Text on one line: TMDB text is untrusted, and a line break would forge a line of the message."""
    return " ".join(text.split())


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _detail(entry: rm.Entry, people: bool) -> str:
    """`` (2024)`` after a title, `` (Acting)`` after a person; nothing when TMDB sent none."""
    if people:
        department = _cut(_plain(entry.department), NAME_WIDTH)
        return f" ({department})" if department else ""
    year = rm.year(entry.release_date)
    return "" if year == rm.NO_VALUE else f" ({year})"
