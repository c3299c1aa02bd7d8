"""`backfill report`: one self-contained HTML file per backfill or model, opened in a real
headless Chromium with networking off; the checks read the DOM the browser rendered."""

from __future__ import annotations

import dataclasses
import http.server
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support import (
    REPO,
    approved,
    audit_counts,
    backfill,
    correct_a_fare,
    query,
    redeliver_with_unknown_rider,
)

from orchestrator.context import Context
from orchestrator.errors import BadInput
from orchestrator.report import DiffRow, RowDiff, backfill_report, render_html, write_report

RIDER_TEST = "relationships_fct_trips_rider_id__rider_id__ref_dim_riders_"
# Networking off: every request goes to a closed port (loopback included) and no host name
# resolves, so a page that tried to load anything would load nothing.
OFFLINE = [
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


# -- the browser ---------------------------------------------------------------------------
def chromium() -> str:
    """Debian's chromium (or chromium-headless-shell); never one a tool downloads."""
    for name in ("chromium", "chromium-headless-shell"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "chromium is not installed: run `make chromium` (Debian's chromium or "
        "chromium-headless-shell) to render the HTML report",
        pytrace=False,
    )


def browse(page: Path, screenshot: Path) -> Dom:
    """Open `page` offline in headless Chromium: its rendered DOM, and a screenshot."""
    profile = screenshot.with_suffix(".profile")
    flags = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *OFFLINE,
    ]
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0 and dom.stdout.strip(), dom.stderr[-2000:]
    shot = subprocess.run(
        [*flags, f"--screenshot={screenshot}", "--window-size=1400,2000", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
    return Dom(dom.stdout)


class Dom(HTMLParser):
    """The elements of a rendered DOM, in document order, with their attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text = text
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def all(self, tag: str | None = None, cls: str | None = None) -> list[dict[str, str]]:
        return [
            attrs
            for t, attrs in self.elements
            if (tag is None or t == tag) and (cls is None or cls in attrs.get("class", "").split())
        ]

    def by_id(self, element_id: str) -> dict[str, str] | None:
        return next((a for _, a in self.elements if a.get("id") == element_id), None)


def assert_loads_nothing(html: str) -> None:
    """No script, no stylesheet link, no frame, no URL an element or style would fetch."""
    assert not re.search(r"(?i)<\s*(script|link|iframe|object|embed|img|base)\b", html)
    assert not re.search(r"(?i)@import|url\s*\(", html)
    assert not re.search(r"(?i)\b(src|href|srcset|action|poster|xlink:href)\s*=", html)
    assert not re.search(r"(?i)https?://", html)
    assert "default-src 'none'" in html  # and the page forbids it, should data contain markup


def days(start: date, end: date) -> list[str]:
    return [(start + timedelta(n)).isoformat() for n in range((end - start).days + 1)]


def report(warehouse: Path, path: Path, **target: str) -> str:
    """Write a report through the library, as `backfill report` does; checks it wrote only
    the file."""
    before = audit_counts(warehouse)
    ctx = Context(REPO)
    try:
        written = write_report(ctx, path, **target)
    finally:
        ctx.close()
    assert written["output"] == str(path)
    assert audit_counts(warehouse) == before  # a report is read-only
    html = path.read_text()
    assert_loads_nothing(html)
    return html


def checks_recorded(warehouse: Path, plan_id: str) -> list[tuple[str, int]]:
    return sorted(
        (str(name), int(chunk))
        for name, chunk in query(
            warehouse,
            "select check_name, chunk_no from backfill_audit.validation_reports "
            f"where backfill_id = '{plan_id}'",
        )
    )


# -- the tests -----------------------------------------------------------------------------
def test_reports_of_two_backfills_and_the_model_calendar_render_offline(
    warehouse: Path, tmp_path: Path
) -> None:
    # A backfill that succeeds and changes one day: a later batch corrects a fare there.
    good = approved(
        warehouse, "fct_trips", "2024-01-10", "2024-01-16", "--chunk-days", "4",
        "--reason", "distance correction from a late batch",
    )  # fmt: skip
    correct_a_fare(warehouse, "2024-01-12")
    assert backfill("run", good, "--execute").exit_code == 0
    # A backfill whose second chunk fails validation: chunk 1 is published, chunk 3 never runs.
    bad = approved(warehouse, "fct_trips", "2024-01-22", "2024-01-30", "--chunk-days", "3")
    redeliver_with_unknown_rider(warehouse, "2024-01-26", batch="29998888-01")
    assert backfill("run", bad, "--execute").exit_code == 1

    # The successful backfill: one cell per partition, the corrected day changed.
    page = tmp_path / "good.html"
    report(warehouse, page, plan_id=good)
    dom = browse(page, tmp_path / "good.png")
    cells = dom.all("div", "cell")
    range_days = days(date(2024, 1, 10), date(2024, 1, 16))
    assert [c["data-partition"] for c in cells] == range_days
    outcomes = {c["data-partition"]: c["class"].split()[1] for c in cells}
    assert outcomes == {
        d: "outcome-changed" if d == "2024-01-12" else "outcome-unchanged" for d in range_days
    }
    assert all(c["title"].startswith(c["data-partition"]) for c in cells)  # the tooltip
    # The chart: one bar group per partition, each with a bar before and a bar after.
    assert len(dom.all("svg", "rows-chart")) == 1
    groups = dom.all("g", "bar-group")
    assert [g["data-partition"] for g in groups] == range_days
    assert len(dom.all("rect", "bar-before")) == len(dom.all("rect", "bar-after")) == 7
    # The validation table: a row per check of each chunk, all passed.
    rows = dom.all("tr", "check")
    assert sorted((r["data-check"], int(r["data-chunk"])) for r in rows) == checks_recorded(
        warehouse, good
    )
    assert rows and not dom.all("tr", "fail")
    assert {"plan", "approvals", "partitions", "rows", "validation", "timings", "lineage"} <= {
        a["id"] for _, a in dom.elements if "id" in a
    }
    assert dom.by_id("diff") is None  # no row-level diff was given
    assert len(dom.all("tr", "approval")) == 1 and "bob" in dom.text
    assert "distance correction from a late batch" in dom.text
    assert len(dom.all("tr", "timing")) == 2 and len(dom.all("tr", "lineage-row")) == 2

    # The failed backfill: chunk 1 unchanged, chunk 2 failed validation, chunk 3 not run.
    page = tmp_path / "failed.html"
    report(warehouse, page, plan_id=bad)
    dom = browse(page, tmp_path / "failed.png")
    cells = dom.all("div", "cell")
    assert [c["data-partition"] for c in cells] == days(date(2024, 1, 22), date(2024, 1, 30))
    assert [c["data-outcome"] for c in cells] == (
        ["unchanged"] * 3 + ["failed-validation"] * 3 + ["not-run"] * 3
    )
    assert len(dom.all("g", "bar-group")) == 9
    assert len(dom.all("rect", "bar-after")) == 3  # only chunk 1 was published
    rows = dom.all("tr", "check")
    assert sorted((r["data-check"], int(r["data-chunk"])) for r in rows) == checks_recorded(
        warehouse, bad
    )
    failed = dom.all("tr", "fail")
    assert [(r["data-check"], r["data-chunk"]) for r in failed] == [(f"dbt test {RIDER_TEST}", "2")]
    assert dom.all("span", "status-failed_validation")

    # The model calendar: every partition of the table, coloured by its last writer.
    page = tmp_path / "calendar.html"
    report(warehouse, page, model="fct_trips")
    dom = browse(page, tmp_path / "calendar.png")
    cells = dom.all("div", "cell")
    assert [c["data-partition"] for c in cells] == days(date(2024, 1, 1), date(2024, 2, 9))
    writers = {c["data-partition"]: c["data-writer"] for c in cells}
    expected = dict.fromkeys(days(date(2024, 1, 1), date(2024, 2, 9)), "v0")
    expected.update(dict.fromkeys(days(date(2024, 1, 10), date(2024, 1, 16)), "v1"))
    expected.update(dict.fromkeys(days(date(2024, 1, 22), date(2024, 1, 24)), "v2"))
    assert writers == expected
    assert all(f"writer-{c['data-writer']}" in c["class"].split() for c in cells)
    assert [v["data-writer"] for v in dom.all("tr", "version")] == ["v0", "v1", "v2"]
    assert not dom.all("div", "stale")  # no detection has run
    print(f"screenshots: {tmp_path}/good.png, failed.png, calendar.png")


def test_a_row_level_diff_is_rendered_only_when_given(warehouse: Path) -> None:
    plan_id = approved(warehouse, "fct_trips", "2024-01-10", "2024-01-11")
    ctx = Context(REPO)
    try:
        data = backfill_report(ctx, plan_id)
    finally:
        ctx.close()
    assert {p.outcome for p in data.partitions} == {"not-run"}
    assert 'id="diff"' not in render_html(data)
    diff = RowDiff(
        added=1,
        removed=0,
        changed=1,
        changed_by_column={"distance_miles": 1},
        columns=("trip_id", "distance_miles"),
        samples=(
            DiffRow("changed", ("t_1", "3.5"), ("t_1", "8.5")),
            DiffRow("added", None, ("t_2", "<b>1.0</b>")),
        ),
    )
    dom = Dom(render_html(dataclasses.replace(data, diff=diff)))
    assert dom.by_id("diff") is not None
    assert [r["class"] for r in dom.all("tr") if r.get("class", "").startswith("diff-")] == [
        "diff-changed",
        "diff-added",
    ]
    assert "&lt;b&gt;1.0&lt;/b&gt;" in dom.text  # values are escaped, never markup


def test_report_input_is_checked_before_anything_is_read(warehouse: Path, tmp_path: Path) -> None:
    existing = tmp_path / "old.html"
    existing.write_text("keep me")
    cases = [
        ({"plan_id": "bf_nope"}, tmp_path / "a.html", "unknown plan 'bf_nope'"),
        ({"plan_id": "bf_000000000000"}, tmp_path / "a.html", "unknown plan 'bf_000000000000'"),
        ({"model": "fct trips"}, tmp_path / "a.html", "model name 'fct trips' is not a valid"),
        ({"model": "fct_tripz"}, tmp_path / "a.html", "unknown model 'fct_tripz'; did you mean"),
        ({"model": "dim_riders"}, tmp_path / "a.html", "model dim_riders has no meta.backfill"),
        ({}, tmp_path / "a.html", "give either a plan id or --model MODEL"),
        ({"plan_id": "bf_000000000000", "model": "fct_trips"}, tmp_path / "a.html", "give either"),
        ({"model": "fct_trips"}, tmp_path / "a.htm", "must be a .html file"),
        ({"model": "fct_trips"}, existing, "already exists; choose a new file"),
        ({"model": "fct_trips"}, tmp_path / "no" / "a.html", "does not exist"),
        ({"model": "fct_trips"}, tmp_path / ".." / "a.html", "must not contain '..'"),
    ]
    ctx = Context(REPO)
    try:
        for target, path, message in cases:
            with pytest.raises(BadInput, match=re.escape(message)):
                write_report(ctx, path, **target)
    finally:
        ctx.close()
    assert existing.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".html") == ["old.html"]


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback that records every path requested of it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_the_browser_the_report_is_checked_in_has_no_network(
    tmp_path: Path, local_server: tuple[str, list[str]]
) -> None:
    url, hits = local_server
    page = tmp_path / "fetches.html"
    page.write_text(
        f'<html><body><img src="{url}/img.png"><link rel="stylesheet" href="{url}/a.css">'
        f'<iframe src="{url}/frame"></iframe><p>{"x" * 40}</p></body></html>'
    )

    def open_page(*flags: str) -> None:
        profile = tmp_path / f"profile{len(flags)}"  # a fresh one: nothing cached
        dom = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={profile}", *flags, "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert dom.returncode == 0 and "<img" in dom.stdout, dom.stderr[-2000:]

    open_page()  # the control: with networking on, the page's fetches reach the server
    assert hits
    hits.clear()
    open_page(*OFFLINE)
    assert hits == []
