"""OpenLineage run events: their shape, the file and HTTP transports, and failing quietly."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.openlineage import (
    BACKFILL_FACET,
    LineageEmitter,
    LineageTarget,
    nominal_bounds,
    target_from_env,
)

REPO = Path(__file__).resolve().parents[2]
JOB = "backfill.fct_trips"
BACKFILL_ID = "bf_0123456789ab"
START = date(2024, 1, 1)
END = date(2024, 1, 7)
INPUTS = ["main_silver.stg_trips", "main_silver.dim_drivers"]
OUTPUT = "main_gold.fct_trips"
SQL = "select * from main_silver.stg_trips where trip_date between '2024-01-01' and '2024-01-07'"


def ids(run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "job_name": JOB,
        "backfill_id": BACKFILL_ID,
        "start": START,
        "end": END,
    }


def events_in(directory: Path) -> list[dict[str, Any]]:
    """Every event file, oldest first (the names sort chronologically)."""
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def check_common(event: dict[str, Any], run_id: str, event_type: str) -> None:
    assert event["eventType"] == event_type
    assert event["run"]["runId"] == run_id
    assert event["job"] == {**event["job"], "namespace": "rideshare-backfills", "name": JOB}
    assert event["eventTime"].endswith("Z")
    facets = event["run"]["facets"]
    nominal = facets["nominalTime"]
    assert nominal["nominalStartTime"] == "2024-01-01T00:00:00Z"
    assert nominal["nominalEndTime"] == "2024-01-08T00:00:00Z"  # the day after END, excluded
    backfill = facets[BACKFILL_FACET]
    assert backfill["backfillId"] == BACKFILL_ID
    assert (backfill["startDate"], backfill["endDate"]) == ("2024-01-01", "2024-01-07")
    for facet in [*facets.values(), *event["job"]["facets"].values()]:
        assert facet["_producer"] and facet["_schemaURL"]


# -- the file transport --------------------------------------------------------------------


def test_start_and_complete_write_one_file_each(tmp_path: Path) -> None:
    directory = tmp_path / "missing" / "openlineage"  # created on first use
    emitter = LineageEmitter(
        LineageTarget(directory=directory), dataset_namespace="duckdb://rideshare.duckdb"
    )
    run_id = str(uuid.uuid4())

    emitter.start(**ids(run_id), inputs=INPUTS, outputs=[OUTPUT], sql=SQL)
    emitter.complete(**ids(run_id), inputs=INPUTS, outputs={OUTPUT: 1400})

    names = sorted(p.name for p in directory.iterdir())
    assert len(names) == 2
    assert names[0].endswith(f"-{JOB}-{run_id}-START.json")
    assert names[1].endswith(f"-{JOB}-{run_id}-COMPLETE.json")
    start, complete = events_in(directory)

    check_common(start, run_id, "START")
    assert start["job"]["facets"]["sql"]["query"] == SQL
    assert start["job"]["facets"]["sql"]["dialect"] == "duckdb"
    assert start["job"]["facets"]["jobType"]["processingType"] == "BATCH"
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [
        ("duckdb://rideshare.duckdb", name) for name in INPUTS
    ]
    assert [d["name"] for d in start["outputs"]] == [OUTPUT]
    assert "outputStatistics" not in start["outputs"][0].get("outputFacets", {})

    check_common(complete, run_id, "COMPLETE")
    assert "sql" not in complete["job"]["facets"]
    assert [d["name"] for d in complete["inputs"]] == INPUTS
    [output] = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("duckdb://rideshare.duckdb", OUTPUT)
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 1400
    assert "errorMessage" not in complete["run"]["facets"]


def test_fail_carries_the_error_message(tmp_path: Path) -> None:
    emitter = LineageEmitter(LineageTarget(directory=tmp_path), dataset_namespace="bigquery")
    run_id = str(uuid.uuid4())

    emitter.start(**ids(run_id), inputs=INPUTS, outputs=[OUTPUT])
    emitter.fail(**ids(run_id), error="dbt run failed: column trip_id not found")

    start, fail = events_in(tmp_path)
    assert "sql" not in start["job"]["facets"]  # no SQL given
    check_common(fail, run_id, "FAIL")
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "dbt run failed: column trip_id not found"
    assert error["programmingLanguage"] == "python"
    assert "stackTrace" not in error
    assert fail["inputs"] == [] and fail["outputs"] == []


def test_nominal_time_covers_whole_days() -> None:
    assert nominal_bounds(date(2024, 2, 28), date(2024, 2, 29)) == (
        "2024-02-28T00:00:00Z",
        "2024-03-01T00:00:00Z",
    )
    assert nominal_bounds(date(2023, 12, 31), date(2023, 12, 31))[1] == "2024-01-01T00:00:00Z"


def test_a_disabled_target_writes_nothing(tmp_path: Path) -> None:
    emitter = LineageEmitter(target_from_env(tmp_path, {"OPENLINEAGE_DISABLED": "True"}))
    assert not emitter.active
    emitter.start(**ids(str(uuid.uuid4())), inputs=INPUTS, outputs=[OUTPUT])
    assert not (tmp_path / "target").exists()
    LineageEmitter(None).fail(**ids(str(uuid.uuid4())), error="x")  # None is disabled too


# -- targets from the environment ----------------------------------------------------------


def test_target_from_env(tmp_path: Path) -> None:
    assert target_from_env(tmp_path, {}) == LineageTarget(tmp_path / "target" / "openlineage")
    assert target_from_env(tmp_path, {"OPENLINEAGE_DIR": "lineage"}).directory == (
        tmp_path / "lineage"
    )
    assert target_from_env(tmp_path, {"OPENLINEAGE_DIR": "/srv/ol"}).directory == Path("/srv/ol")

    http = target_from_env(
        tmp_path,
        {
            "OPENLINEAGE_URL": "http://marquez:5000",
            "OPENLINEAGE_API_KEY": "s3cret",
            "OPENLINEAGE_DIR": "ignored",
        },
    )
    assert (http.url, http.api_key, http.directory) == ("http://marquez:5000", "s3cret", None)
    assert http.endpoint == "api/v1/lineage"
    assert "s3cret" not in repr(http) and "s3cret" not in http.describe()

    disabled = target_from_env(tmp_path, {"OPENLINEAGE_DISABLED": "true", "OPENLINEAGE_URL": "x"})
    assert not disabled.enabled
    assert target_from_env(tmp_path, {"OPENLINEAGE_DISABLED": "false"}).enabled


# -- the HTTP transport --------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def lineage_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str], dict[str, Any]]]]]:
    received: list[tuple[str, dict[str, str], dict[str, Any]]] = []
    handler = type("Handler", (Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_transport_posts_start_and_complete(
    lineage_server: tuple[str, list[tuple[str, dict[str, str], dict[str, Any]]]],
) -> None:
    url, received = lineage_server
    emitter = LineageEmitter(LineageTarget(directory=None, url=url, api_key="s3cret"))
    run_id = str(uuid.uuid4())
    try:
        emitter.start(**ids(run_id), inputs=INPUTS, outputs=[OUTPUT], sql=SQL)
        emitter.complete(**ids(run_id), inputs=INPUTS, outputs={OUTPUT: 7})
    finally:
        emitter.close()

    assert [event["eventType"] for _, _, event in received] == ["START", "COMPLETE"]
    for path, headers, event in received:
        assert path == "/api/v1/lineage"
        assert headers["Authorization"] == "Bearer s3cret"
        check_common(event, run_id, event["eventType"])
    complete = received[1][2]
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 7
    assert complete["inputs"][0]["namespace"] == "duckdb"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens here once the socket is closed


def test_an_unreachable_endpoint_only_logs_warnings(caplog: pytest.LogCaptureFixture) -> None:
    target = LineageTarget(directory=None, url=f"http://127.0.0.1:{closed_port()}", retries=0)
    emitter = LineageEmitter(target, max_consecutive_failures=2)
    run_id = str(uuid.uuid4())
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="orchestrator.openlineage"):
        emitter.start(**ids(run_id), inputs=INPUTS, outputs=[OUTPUT])
        emitter.complete(**ids(run_id), inputs=INPUTS, outputs={OUTPUT: 1})
        emitter.fail(**ids(run_id), error="never sent: the emitter gave up")
    assert time.monotonic() - began < 5

    messages = [r.getMessage() for r in caplog.records if r.name == "orchestrator.openlineage"]
    assert all(
        r.levelno == logging.WARNING for r in caplog.records if r.name == "orchestrator.openlineage"
    )
    assert messages[0].startswith(f"OpenLineage START event for {JOB} (run {run_id}) was not sent")
    assert messages[1].startswith("OpenLineage COMPLETE event")
    assert "no more events will be sent" in messages[2]
    assert len(messages) == 3  # the FAIL event was not even attempted
    assert not emitter.active


def test_default_retries_still_return_quickly() -> None:
    target = LineageTarget(directory=None, url=f"http://127.0.0.1:{closed_port()}")
    began = time.monotonic()
    LineageEmitter(target).start(**ids(str(uuid.uuid4())), inputs=[], outputs=[OUTPUT])
    assert time.monotonic() - began < 5


def test_a_bad_event_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    emitter = LineageEmitter(LineageTarget(directory=tmp_path))
    with caplog.at_level(logging.WARNING, logger="orchestrator.openlineage"):
        emitter.start(**ids("not-a-uuid"), inputs=INPUTS, outputs=[OUTPUT])
    assert "was not sent" in caplog.text
    assert list(tmp_path.iterdir()) == []
    good = str(uuid.uuid4())  # one failure is not enough to give up
    emitter.complete(**ids(good), inputs=INPUTS, outputs={OUTPUT: 3})
    assert [e["eventType"] for e in events_in(tmp_path)] == ["COMPLETE"]


def test_importing_the_module_does_not_import_openlineage() -> None:
    code = "import sys, orchestrator.openlineage; print('openlineage' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
