"""Webhook notifications (Slack-compatible) for the moments a person should hear about.

Configured by `$BACKFILL_WEBHOOK_URL` (every model) or a model's `meta.backfill.notify`
(`webhook`: a URL or `env:VARNAME`, `events`: which of EVENTS; default all), the model's
own block taking precedence. A notification is a side effect, never a step of the
backfill: `notify` catches every failure to send, logs one warning line and records the
attempt (sent or failed) in the audit store.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import requests

from orchestrator.audit import AuditStore, PlanRecord
from orchestrator.errors import BadInput

log = logging.getLogger(__name__)

GLOBAL_ENV = "BACKFILL_WEBHOOK_URL"
# Event kind -> how it reads in a sentence.
EVENTS = {
    "awaiting_approval": "awaiting approval",
    "failed_validation": "failed validation",
    "drifted_since_approval": "drifted since approval",
    "succeeded": "succeeded",
    "rolled_back": "rolled back",
}
MAX_CHECKS = 10  # failed checks listed in one message; the rest are counted
_ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
_MAX_ERROR_CHARS = 300


# -- configuration ------------------------------------------------------------------------
@dataclass(frozen=True)
class NotifyConfig:
    """Where a model's notifications go and which events are sent."""

    webhook: str  # an http(s) URL, or env:VARNAME, read when sending (secrets stay out of YAML)
    events: frozenset[str] = frozenset(EVENTS)

    def wants(self, kind: str) -> bool:
        return kind in self.events

    def url(self, env: Mapping[str, str] | None = None) -> str:
        """The URL to post to; BadInput when an env:VARNAME is unset or not a URL."""
        ref = _ENV_REF.fullmatch(self.webhook)
        if ref is None:
            return self.webhook
        value = (os.environ if env is None else env).get(ref.group(1), "")
        if not value:
            raise BadInput(f"webhook ${ref.group(1)} is not set")
        return _http_url(value, f"${ref.group(1)}")

    def target(self) -> str:
        """The webhook as the audit store records it: secrets redacted."""
        return self.webhook if _ENV_REF.fullmatch(self.webhook) else redact(self.webhook)


def config_for(
    model: str, meta: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> NotifyConfig | None:
    """The model's notification config from its `meta` and the environment; None when no
    webhook is configured. BadInput (one line) for a malformed `meta.backfill.notify`."""
    env = os.environ if env is None else env
    where = f"meta.backfill.notify of {model}"
    block = (meta.get("backfill") or {}).get("notify")
    if block is None:
        block = {}
    elif not isinstance(block, Mapping):
        raise BadInput(f"{where} must be a mapping with webhook and events")
    unknown = sorted(set(block) - {"webhook", "events"})
    if unknown:
        raise BadInput(f"{where} has unknown key {unknown[0]!r} (known: webhook, events)")

    events = frozenset(EVENTS)
    if "events" in block:
        listed = block["events"]
        if not isinstance(listed, list) or not all(isinstance(e, str) for e in listed):
            raise BadInput(f"{where}: events must be a list of event names")
        bad = [e for e in listed if e not in EVENTS]
        if bad:
            raise BadInput(f"{where}: unknown event {bad[0]!r} (known: {', '.join(EVENTS)})")
        events = frozenset(listed)

    webhook = block.get("webhook")
    if webhook is not None:
        if not isinstance(webhook, str) or not (
            _ENV_REF.fullmatch(webhook) or _is_http_url(webhook)
        ):
            shown = redact(webhook) if isinstance(webhook, str) else repr(webhook)
            raise BadInput(f"{where}: webhook must be an http(s) URL or env:VARNAME, got {shown!r}")
    elif env.get(GLOBAL_ENV):
        webhook = _http_url(env[GLOBAL_ENV], f"${GLOBAL_ENV}")
    else:
        return None
    return NotifyConfig(webhook, events)


def redact(url: str) -> str:
    """The URL without what may be a secret: credentials, path, query and fragment (a
    webhook's token lives in its path, as in Slack's, or in its query). The host stays:
    enough to tell where a message went."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "***"
    if not parts.scheme:
        return "***"
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number
        port = ""
    hidden = "/***" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _http_url(value: str, name: str) -> str:
    if not _is_http_url(value):
        raise BadInput(f"{name} must be an http(s) URL, got {redact(value)!r}")
    return value


# -- events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """Something to tell people about one backfill; `summary` is the one-line message."""

    kind: str  # a key of EVENTS
    backfill_id: str
    model: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EVENTS:
            raise ValueError(f"unknown notification event {self.kind!r}")


def awaiting_approval(plan: PlanRecord) -> Event:
    n = _partitions(plan)
    return Event(
        "awaiting_approval",
        plan.backfill_id,
        plan.model,
        f"{_head(plan, 'awaiting_approval')} — plan by {plan.requested_by}, {_range(plan)}, "
        f"{_count(n, 'partition')} (backfill approve {plan.backfill_id} --approver NAME)",
        {"range": _range(plan), "partitions": n, "requested_by": plan.requested_by},
    )


def failed_validation(
    plan: PlanRecord, failures: Sequence[Mapping[str, Any]], staging: str | None, who: str
) -> Event:
    """`failures` as ValidationFailed.failures holds them: check, partition, observed,
    expected; `staging` is the relation that keeps the rejected rows (None if unknown)."""
    kept = f", staged rows kept in {staging}" if staging else ""
    checks = [
        {k: str(f.get(k, "")) for k in ("check", "partition", "observed", "expected")}
        for f in failures
    ]
    return Event(
        "failed_validation",
        plan.backfill_id,
        plan.model,
        f"{_head(plan, 'failed_validation')} — {_count(len(checks), 'check')} failed; "
        f"production unchanged{kept}",
        {"range": _range(plan), "by": who, "staging_relation": staging, "failed_checks": checks},
    )


def drifted_since_approval(plan: PlanRecord, why: str, who: str) -> Event:
    """`why`: what changed, e.g. "chunk 2 staged rows differ from the approved preview"."""
    return Event(
        "drifted_since_approval",
        plan.backfill_id,
        plan.model,
        f"{_head(plan, 'drifted_since_approval')} — {why}; nothing published, "
        "preview again and re-approve",
        {"range": _range(plan), "by": who, "drift": why},
    )


def succeeded(
    plan: PlanRecord, partitions_changed: int, who: str, report_path: str | None = None
) -> Event:
    report = f"; report {report_path}" if report_path else ""
    return Event(
        "succeeded",
        plan.backfill_id,
        plan.model,
        f"{_head(plan, 'succeeded')} — {_count(partitions_changed, 'partition')} changed "
        f"in {_range(plan)}{report}",
        {
            "range": _range(plan),
            "by": who,
            "partitions_changed": partitions_changed,
            "report_path": report_path,
        },
    )


def rolled_back(plan: PlanRecord, partitions_restored: int, who: str, forced: bool) -> Event:
    how = " (forced)" if forced else ""
    return Event(
        "rolled_back",
        plan.backfill_id,
        plan.model,
        f"{_head(plan, 'rolled_back')} by {who}{how} — "
        f"{_count(partitions_restored, 'partition')} restored in {_range(plan)}",
        {"range": _range(plan), "by": who, "partitions_restored": partitions_restored},
    )


def changed_partitions(
    before: Mapping[tuple[str, date], tuple[int, str]],
    after: Mapping[tuple[str, date], tuple[int, str]],
) -> int:
    """Partitions whose rows or checksum differ, as `audit.chunks.partitions(id, "before")`
    and `(id, "after")` hold them; a partition missing on one side was empty there."""
    empty = (0, "0")
    return sum(
        1 for k in before.keys() | after.keys() if before.get(k, empty) != after.get(k, empty)
    )


def _head(plan: PlanRecord, kind: str) -> str:
    return f"{plan.model} {plan.backfill_id}: {EVENTS[kind]}"


def _range(plan: PlanRecord) -> str:
    return f"{plan.start.isoformat()}..{plan.end.isoformat()}"


def _partitions(plan: PlanRecord) -> int:
    # Every model's partitions the plan rewrites (a downstream model's count too).
    return sum(c.days for c in plan.chunks)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# -- the message --------------------------------------------------------------------------
def payload(event: Event) -> dict[str, Any]:
    """A Slack message: `text` is the notification's fallback line, `blocks` the layout
    (header, the summary, the details as fields, failed checks as a list)."""
    fields = {"Backfill": event.backfill_id, "Model": event.model}
    for key, value in event.details.items():
        if value is not None and not isinstance(value, list):
            fields[key.replace("_", " ").capitalize()] = str(value)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f"Backfill {EVENTS[event.kind]}: {event.model}"[:150],
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(event.summary)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{_escape(value)}"}
                for label, value in fields.items()
            ][:10],  # Slack's limit per section
        },
    ]
    checks = event.details.get("failed_checks") or []
    if checks:
        lines = [
            f"• {c['check']} [{c['partition']}]: {c['observed']} (expected {c['expected']})"
            for c in checks[:MAX_CHECKS]
        ]
        if len(checks) > MAX_CHECKS:
            lines.append(f"… and {len(checks) - MAX_CHECKS} more")
        text = _escape("\n".join(lines))[:2900]  # a section's text holds at most 3000
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Failed checks*\n{text}"}}
        )
    return {"text": _escape(event.summary), "blocks": blocks}


def _escape(text: str) -> str:
    # The three characters Slack's mrkdwn reserves for links and mentions.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- sending ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotificationOutcome:
    status: str  # sent | failed
    target: str  # redacted
    http_status: int | None = None
    error: str | None = None


def notify(
    audit: AuditStore,
    config: NotifyConfig,
    event: Event,
    *,
    timeout: float = 5.0,
    env: Mapping[str, str] | None = None,
) -> NotificationOutcome:
    """POST the event to the config's webhook and record the attempt. Never raises: a
    failure to send (or to record) is logged as one warning line."""
    body = payload(event)
    try:
        outcome = _post(config, body, timeout, env)
    except Exception as exc:  # whatever else goes wrong, a notification never fails a backfill
        error = _scrub(f"{type(exc).__name__}: {_first_line(exc)}", config.webhook)
        outcome = NotificationOutcome("failed", config.target(), error=error)
    return _record(audit, event, body, outcome)


def notify_model(
    audit: AuditStore,
    meta: Mapping[str, Any],
    event: Event,
    *,
    timeout: float = 5.0,
    env: Mapping[str, str] | None = None,
) -> NotificationOutcome | None:
    """Notify per the model's config (`meta` as Model.meta): None when no webhook is
    configured or the model does not want this event. Never raises: a malformed
    `meta.backfill.notify` is recorded as a failed attempt (with no target)."""
    try:
        config = config_for(event.model, meta, env)
    except Exception as exc:  # BadInput, or e.g. meta.backfill that is not a mapping
        failed = NotificationOutcome("failed", "", error=_first_line(exc))
        return _record(audit, event, payload(event), failed)
    if config is None or not config.wants(event.kind):
        return None
    return notify(audit, config, event, timeout=timeout, env=env)


def _post(
    config: NotifyConfig, body: dict[str, Any], timeout: float, env: Mapping[str, str] | None
) -> NotificationOutcome:
    target = config.target()
    try:
        url = config.url(env)
    except BadInput as exc:
        return NotificationOutcome("failed", target, error=str(exc))
    try:
        # No redirects: a webhook that moved must not receive a re-sent (or GET) payload.
        answer = requests.post(
            url,
            data=json.dumps(body, ensure_ascii=False).encode(),  # readable raw: UTF-8, not \u
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.Timeout:
        return NotificationOutcome("failed", target, error=f"no answer within {timeout:g}s")
    except requests.RequestException as exc:
        return NotificationOutcome("failed", target, error=_scrub(_reason(exc), url))
    if not 200 <= answer.status_code < 300:
        said = _first_line(answer.text) if answer.text.strip() else answer.reason or ""
        error = f"HTTP {answer.status_code}" + (f": {said}" if said else "")
        return NotificationOutcome(
            "failed", target, http_status=answer.status_code, error=_scrub(error, url)
        )
    return NotificationOutcome("sent", target, http_status=answer.status_code)


def _record(
    audit: AuditStore, event: Event, body: dict[str, Any], outcome: NotificationOutcome
) -> NotificationOutcome:
    """Log a failed send and record the attempt, whatever it was."""
    if outcome.status == "failed":
        log.warning(
            "notification %s of %s to %s failed: %s",
            event.kind,
            event.backfill_id,
            outcome.target or "(no webhook)",
            outcome.error,
        )
    try:
        audit.notifications.record(
            event.backfill_id,
            event.model,
            event.kind,
            outcome.target,
            outcome.status,
            body,
            http_status=outcome.http_status,
            error=outcome.error,
        )
    except Exception as exc:  # the warehouse that failed the run may refuse this too
        log.warning(
            "notification %s of %s could not be recorded: %s",
            event.kind,
            event.backfill_id,
            _first_line(exc),
        )
    return outcome


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause of a connection error, without urllib3's object reprs."""
    cause: BaseException = exc
    while cause.args and isinstance(cause.args[0], BaseException):
        cause = cause.args[0]
    reason = getattr(cause, "reason", None)
    if isinstance(reason, BaseException):
        cause = reason
    text = re.sub(r"<[^<>]* object at 0x[0-9a-f]+>: ", "", _first_line(cause))
    return f"{type(exc).__name__}: {text}"


def _scrub(text: str, url: str) -> str:
    # An error may quote the URL or its parts; what redact() hides may reach neither a
    # log nor the audit store.
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, "***")
    for secret in (url, parts.password, parts.query, parts.path.strip("/")):
        if secret:
            text = text.replace(secret, redact(url) if secret == url else "***")
    return text


def _first_line(error: BaseException | str) -> str:
    text = str(error).strip()
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    return (text.splitlines()[0] if text else "")[:_MAX_ERROR_CHARS]
