"""Webhook notifications, received by a real HTTP server on 127.0.0.1 and recorded in a
real DuckDB audit store: the exact payload of every event, sends that fail (endpoint down,
an error answer, no answer) without raising, config errors, and secrets kept out of the
record."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator import notify
from orchestrator.audit import AuditStore, PlanRecord
from orchestrator.errors import BadInput
from orchestrator.notify import NotifyConfig
from orchestrator.plan import Chunk
from orchestrator.warehouse.duckdb import DuckDBWarehouse

BF = "bf_0123456789ab"
PLAN = PlanRecord(
    backfill_id=BF,
    model="fct_trips",
    start=date(2024, 1, 10),
    end=date(2024, 1, 20),
    chunk_days=7,
    downstream=False,
    chunks=[
        Chunk("fct_trips", 1, date(2024, 1, 10), date(2024, 1, 16)),
        Chunk("fct_trips", 2, date(2024, 1, 17), date(2024, 1, 20)),
    ],
    dbt_vars={},
    fingerprint="fp",
    project_hash="ph",
    git_commit="abc123",
    requested_by="alice",
    reason="fare rule fix",
    impact={},
    created_at=datetime(2024, 1, 21, 9, 0),
)
STAGING = f"backfill_staging.fct_trips__{BF}__c001"
FAILURE = {
    "check": "fare_amount between 0 and 1000",
    "partition": "2024-01-12",
    "observed": "3 rows < 0",
    "expected": "0 rows",
}


@dataclass
class Receiver:
    """A webhook endpoint: every POST it got, and the status it answers with."""

    port: int
    answer: int = 200
    posts: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.posts.append(
                {
                    "path": self.path,
                    "content_type": self.headers["Content-Type"],
                    "body": json.loads(body.decode()),
                }
            )
            reply = b"ok" if state.answer < 300 else b"boom\nsecond line"
            self.send_response(state.answer)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    # A short poll interval: shutdown() waits up to one interval.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditStore]:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    store = AuditStore(wh)
    store.ensure()
    yield store
    wh.close()


def closed_port() -> int:
    """A port nobody listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fields(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in pairs],
    }


def text(kind: str, body: str) -> dict[str, Any]:
    return {
        "type": kind,
        "text": {"type": "plain_text" if kind == "header" else "mrkdwn", "text": body},
    }


def message(header: str, summary: str, *blocks: dict[str, Any]) -> dict[str, Any]:
    return {"text": summary, "blocks": [text("header", header), text("section", summary), *blocks]}


IDS = (("Backfill", BF), ("Model", "fct_trips"), ("Range", "2024-01-10..2024-01-20"))

EXPECTED = {
    "awaiting_approval": (
        notify.awaiting_approval(PLAN),
        message(
            "Backfill awaiting approval: fct_trips",
            f"fct_trips {BF}: awaiting approval — plan by alice, 2024-01-10..2024-01-20, "
            f"11 partitions (backfill approve {BF} --approver NAME)",
            fields(*IDS, ("Partitions", "11"), ("Requested by", "alice")),
        ),
    ),
    "failed_validation": (
        notify.failed_validation(PLAN, [FAILURE], STAGING, "bob"),
        message(
            "Backfill failed validation: fct_trips",
            f"fct_trips {BF}: failed validation — 1 check failed; production unchanged, "
            f"staged rows kept in {STAGING}",
            fields(*IDS, ("By", "bob"), ("Staging relation", STAGING)),
            text(
                "section",
                "*Failed checks*\n"
                "• fare_amount between 0 and 1000 [2024-01-12]: 3 rows &lt; 0 (expected 0 rows)",
            ),
        ),
    ),
    "drifted_since_approval": (
        notify.drifted_since_approval(PLAN, "chunk 2 differs from the approved preview", "bob"),
        message(
            "Backfill drifted since approval: fct_trips",
            f"fct_trips {BF}: drifted since approval — chunk 2 differs from the approved "
            "preview; nothing published, preview again and re-approve",
            fields(*IDS, ("By", "bob"), ("Drift", "chunk 2 differs from the approved preview")),
        ),
    ),
    "succeeded": (
        notify.succeeded(PLAN, 9, "bob", f"target/backfills/{BF}/report.html"),
        message(
            "Backfill succeeded: fct_trips",
            f"fct_trips {BF}: succeeded — 9 partitions changed in 2024-01-10..2024-01-20; "
            f"report target/backfills/{BF}/report.html",
            fields(
                *IDS,
                ("By", "bob"),
                ("Partitions changed", "9"),
                ("Report path", f"target/backfills/{BF}/report.html"),
            ),
        ),
    ),
    "rolled_back": (
        notify.rolled_back(PLAN, 11, "carol", forced=True),
        message(
            "Backfill rolled back: fct_trips",
            f"fct_trips {BF}: rolled back by carol (forced) — 11 partitions restored in "
            "2024-01-10..2024-01-20",
            fields(*IDS, ("By", "carol"), ("Partitions restored", "11")),
        ),
    ),
}


# -- sending ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_each_event_posts_its_exact_slack_message_and_is_recorded_as_sent(
    receiver: Receiver, audit: AuditStore, kind: str
) -> None:
    event, expected = EXPECTED[kind]
    outcome = notify.notify(audit, NotifyConfig(receiver.url()), event)

    assert receiver.posts == [
        {"path": "/hook", "content_type": "application/json; charset=utf-8", "body": expected}
    ]
    assert (outcome.status, outcome.http_status, outcome.error) == ("sent", 200, None)
    [row] = audit.notifications.for_backfill(BF)
    assert (row.model, row.event, row.target, row.status, row.http_status, row.error) == (
        "fct_trips",
        kind,
        f"http://127.0.0.1:{receiver.port}/***",  # the path is redacted
        "sent",
        200,
        None,
    )
    assert row.payload == expected


def test_a_failed_validation_lists_ten_checks_and_counts_the_rest(
    receiver: Receiver, audit: AuditStore
) -> None:
    failures = [{**FAILURE, "partition": f"2024-01-{d:02d}"} for d in range(10, 22)]
    notify.notify(
        audit, NotifyConfig(receiver.url()), notify.failed_validation(PLAN, failures, None, "bob")
    )

    body = receiver.posts[0]["body"]
    assert (
        body["text"]
        == f"fct_trips {BF}: failed validation — 12 checks failed; production unchanged"
    )
    listed = body["blocks"][3]["text"]["text"].splitlines()
    assert listed[0] == "*Failed checks*"
    assert (
        listed[1]
        == "• fare_amount between 0 and 1000 [2024-01-10]: 3 rows &lt; 0 (expected 0 rows)"
    )
    assert len(listed) == 12 and listed[-1] == "… and 2 more"
    assert "Staging relation" not in json.dumps(body)  # unknown: not shown as "None"


def test_endpoint_down_records_a_failed_send_and_raises_nothing(
    audit: AuditStore, caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    url, target = f"http://127.0.0.1:{port}/hook", f"http://127.0.0.1:{port}/***"
    with caplog.at_level(logging.WARNING, logger="orchestrator.notify"):
        outcome = notify.notify(audit, NotifyConfig(url), notify.awaiting_approval(PLAN))

    assert (outcome.status, outcome.http_status) == ("failed", None)
    assert outcome.error is not None and outcome.error.startswith("ConnectionError: ")
    assert "Connection refused" in outcome.error
    [row] = audit.notifications.for_backfill(BF)
    assert (row.status, row.http_status, row.error, row.target) == (
        "failed",
        None,
        outcome.error,
        target,
    )
    assert row.payload == EXPECTED["awaiting_approval"][1]
    [warning] = caplog.records
    assert warning.getMessage() == (
        f"notification awaiting_approval of {BF} to {target} failed: {outcome.error}"
    )


def test_an_error_answer_is_a_failed_send_with_its_status(
    receiver: Receiver, audit: AuditStore
) -> None:
    receiver.answer = 500
    outcome = notify.notify(audit, NotifyConfig(receiver.url()), notify.succeeded(PLAN, 9, "bob"))

    assert len(receiver.posts) == 1
    assert (outcome.status, outcome.http_status, outcome.error) == ("failed", 500, "HTTP 500: boom")
    [row] = audit.notifications.for_backfill(BF)
    assert (row.status, row.http_status, row.error) == ("failed", 500, "HTTP 500: boom")


def test_an_endpoint_that_never_answers_times_out(audit: AuditStore) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        outcome = notify.notify(
            audit, NotifyConfig(url), notify.awaiting_approval(PLAN), timeout=0.2
        )

    assert (outcome.status, outcome.error) == ("failed", "no answer within 0.2s")
    assert [r.status for r in audit.notifications.for_backfill(BF)] == ["failed"]


def test_a_send_that_cannot_be_recorded_still_returns_and_is_logged(
    receiver: Receiver, audit: AuditStore, caplog: pytest.LogCaptureFixture
) -> None:
    audit.wh.execute("drop table backfill_audit.notifications")  # the insert will fail
    with caplog.at_level(logging.WARNING, logger="orchestrator.notify"):
        outcome = notify.notify(audit, NotifyConfig(receiver.url()), notify.awaiting_approval(PLAN))

    assert outcome.status == "sent"
    [warning] = caplog.records
    assert warning.getMessage().startswith(
        f"notification awaiting_approval of {BF} could not be recorded: "
    )


# -- secrets ------------------------------------------------------------------------------
def test_a_token_in_the_url_path_is_redacted_in_the_record(
    receiver: Receiver, audit: AuditStore
) -> None:
    secret = receiver.url("/services/T000/B000/s3cr3tT0ken")
    outcome = notify.notify(audit, NotifyConfig(secret), notify.awaiting_approval(PLAN))

    assert receiver.posts[0]["path"] == "/services/T000/B000/s3cr3tT0ken"  # sent to the real URL
    [row] = audit.notifications.for_backfill(BF)
    assert row.target == outcome.target == f"http://127.0.0.1:{receiver.port}/***"
    stored = audit.wh.query("select * from backfill_audit.notifications")
    assert "s3cr3tT0ken" not in repr(stored)


def test_a_token_quoted_by_a_connection_error_is_redacted_too(audit: AuditStore) -> None:
    url = f"http://127.0.0.1:{closed_port()}/services/T000/B000/s3cr3tT0ken?key=k3y"
    outcome = notify.notify(audit, NotifyConfig(url), notify.awaiting_approval(PLAN))

    stored = repr(audit.wh.query("select * from backfill_audit.notifications"))
    assert outcome.status == "failed"
    assert "s3cr3tT0ken" not in stored and "k3y" not in stored
    assert "s3cr3tT0ken" not in str(outcome)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/***"),
        ("https://user:pw@example.com:8443/hook?token=abc#x", "https://example.com:8443/***"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://[::1]:9000/a/b", "http://[::1]:9000/***"),
        ("https://x.io/?token=abc", "https://x.io/***"),
        ("not a url", "***"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert notify.redact(url) == shown


# -- configuration ------------------------------------------------------------------------
def meta(notify_block: object) -> dict[str, Any]:
    return {"backfill": {"partition_field": "trip_date", "notify": notify_block}}


def test_without_a_webhook_nothing_is_configured() -> None:
    assert notify.config_for("fct_trips", {"backfill": {}}, env={}) is None
    assert notify.config_for("fct_trips", meta({"events": ["succeeded"]}), env={}) is None


def test_the_global_webhook_sends_every_event_unless_the_model_narrows_them() -> None:
    env = {"BACKFILL_WEBHOOK_URL": "https://hooks.example.com/all"}
    assert notify.config_for("fct_trips", {}, env=env) == NotifyConfig(
        "https://hooks.example.com/all", frozenset(notify.EVENTS)
    )
    narrowed = notify.config_for("fct_trips", meta({"events": ["failed_validation"]}), env=env)
    assert narrowed == NotifyConfig(
        "https://hooks.example.com/all", frozenset({"failed_validation"})
    )
    assert narrowed is not None and not narrowed.wants("succeeded")


def test_the_models_webhook_takes_precedence_and_may_name_an_env_var() -> None:
    env = {
        "BACKFILL_WEBHOOK_URL": "https://hooks.example.com/all",
        "TRIPS_HOOK": "https://x.io/t/1",
    }
    config = notify.config_for("fct_trips", meta({"webhook": "env:TRIPS_HOOK"}), env=env)
    assert config == NotifyConfig("env:TRIPS_HOOK", frozenset(notify.EVENTS))
    assert config.url(env) == "https://x.io/t/1"
    assert config.target() == "env:TRIPS_HOOK"


@pytest.mark.parametrize(
    ("block", "env", "error"),
    [
        (
            {"events": ["succeeded", "exploded"]},
            {},
            "meta.backfill.notify of fct_trips: unknown event 'exploded' (known: "
            "awaiting_approval, failed_validation, drifted_since_approval, succeeded, "
            "rolled_back)",
        ),
        (
            {"webhook": "ftp://files.example.com/drop/s3cr3t"},
            {},
            "meta.backfill.notify of fct_trips: webhook must be an http(s) URL or env:VARNAME, "
            "got 'ftp://files.example.com/***'",
        ),
        (
            {"webhook": "hooks.example.com/x"},
            {},
            "meta.backfill.notify of fct_trips: webhook must be an http(s) URL or env:VARNAME, "
            "got '***'",
        ),
        (
            {"webhook": "http://[::1/hook"},
            {},
            "meta.backfill.notify of fct_trips: webhook must be an http(s) URL or env:VARNAME, "
            "got '***'",
        ),
        (
            {"events": "succeeded"},
            {},
            "meta.backfill.notify of fct_trips: events must be a list of event names",
        ),
        (
            {"webhook": "https://x.io/h", "channel": "#data"},
            {},
            "meta.backfill.notify of fct_trips has unknown key 'channel' (known: webhook, events)",
        ),
        (
            "https://x.io/h",
            {},
            "meta.backfill.notify of fct_trips must be a mapping with webhook and events",
        ),
        (
            None,
            {"BACKFILL_WEBHOOK_URL": "slack://team/s3cr3t"},
            "$BACKFILL_WEBHOOK_URL must be an http(s) URL, got 'slack://team/***'",
        ),
    ],
)
def test_bad_config_is_one_line_of_bad_input(
    block: object, env: dict[str, str], error: str
) -> None:
    with pytest.raises(BadInput) as caught:
        notify.config_for("fct_trips", meta(block), env=env)
    assert str(caught.value) == error


# -- notify_model: what a hook calls --------------------------------------------------------
def test_notify_model_sends_only_the_events_the_model_wants(
    receiver: Receiver, audit: AuditStore
) -> None:
    config = meta({"webhook": receiver.url(), "events": ["failed_validation"]})
    assert notify.notify_model(audit, config, notify.succeeded(PLAN, 9, "bob"), env={}) is None
    assert notify.notify_model(audit, {}, notify.succeeded(PLAN, 9, "bob"), env={}) is None
    sent = notify.notify_model(
        audit, config, notify.failed_validation(PLAN, [FAILURE], STAGING, "bob"), env={}
    )

    assert sent is not None and sent.status == "sent"
    assert [p["body"]["blocks"][0]["text"]["text"] for p in receiver.posts] == [
        "Backfill failed validation: fct_trips"
    ]
    assert [r.event for r in audit.notifications.for_backfill(BF)] == ["failed_validation"]


def test_notify_model_records_bad_config_and_unset_env_vars_instead_of_raising(
    audit: AuditStore,
) -> None:
    bad = notify.notify_model(
        audit, meta({"events": ["nope"]}), notify.awaiting_approval(PLAN), env={}
    )
    unset = notify.notify_model(
        audit, meta({"webhook": "env:TRIPS_HOOK"}), notify.awaiting_approval(PLAN), env={}
    )

    rows = audit.notifications.for_backfill(BF)
    assert [(r.status, r.target, r.error) for r in rows] == [
        (
            "failed",
            "",
            "meta.backfill.notify of fct_trips: unknown event 'nope' (known: awaiting_approval, "
            "failed_validation, drifted_since_approval, succeeded, rolled_back)",
        ),
        ("failed", "env:TRIPS_HOOK", "webhook $TRIPS_HOOK is not set"),
    ]
    assert bad is not None and unset is not None and bad.status == unset.status == "failed"


def test_changed_partitions_counts_rows_or_checksums_that_differ() -> None:
    day = date(2024, 1, 10)
    before = {("fct_trips", day): (10, "a"), ("fct_trips", date(2024, 1, 11)): (5, "b")}
    after = {
        ("fct_trips", day): (10, "a"),  # unchanged
        ("fct_trips", date(2024, 1, 11)): (5, "c"),  # same rows, other values
        ("fct_trips", date(2024, 1, 12)): (3, "d"),  # was empty
    }
    assert notify.changed_partitions(before, after) == 2
    assert notify.changed_partitions(after, {}) == 3  # every partition emptied
