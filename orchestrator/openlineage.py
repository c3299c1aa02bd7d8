"""OpenLineage run events for backfill chunks: START, then COMPLETE or FAIL.

One OpenLineage *run* per unit of work the run loop reports (the caller passes its uuid4 as
`run_id`); the job is named like `backfill.fct_trips` in the job namespace
(`rideshare-backfills` by default).

Event shape (the `openlineage-python` 1.54 `event_v2` / `facet_v2` model):

- run facets
    - `nominalTime`: the backfilled range; nominalStartTime is `start` 00:00 UTC and
      nominalEndTime is the day after `end` 00:00 UTC (the spec's end is exclusive).
    - `rideshare_backfill` (custom, prefixed as the spec asks): `backfillId` plus the
      inclusive `startDate` / `endDate` as ISO dates. This is where the backfill id lives.
    - `errorMessage` (FAIL only): the error text, `programmingLanguage` "python", and the
      optional stack trace.
- job facets: `jobType` (BATCH, integration "rideshare-backfills", jobType "BACKFILL") and,
  on START when the compiled SQL is given, `sql` (dialect taken from the dataset namespace's
  scheme, e.g. "duckdb" or "bigquery").
- inputs / outputs: datasets named by relation in `dataset_namespace` (default "duckdb";
  e.g. `duckdb://rideshare.duckdb` or `bigquery`). On COMPLETE each output carries the
  `outputStatistics` output facet with `rowCount`. FAIL events carry no datasets.

Where events go (`LineageTarget`, usually from `target_from_env`):

- HTTP: POSTed to `<url>/<endpoint>` (default endpoint `api/v1/lineage`, the Marquez /
  OpenLineage convention) with `Authorization: Bearer <api key>` when a key is set.
- Files: one JSON document per event, one event per file, in the target directory (created
  on first use), named `<UTC event time>-<job>-<run id>-<EVENT TYPE>.json` so a plain sort is
  chronological. Written by the library's `FileTransport` in its append mode, which writes to
  exactly the path it is given (its default mode adds a local-time suffix per file instead).

Emitting never breaks a backfill: building or sending an event that fails is logged as a
warning on the `orchestrator.openlineage` logger and dropped. After
`max_consecutive_failures` failures in a row (default 3; 0 never gives up) that emitter
stops trying for good (one warning says so), so an endpoint that is down or unreachable
costs a few timeouts rather than a few per chunk. One emitter per backfill run is the
intended use.

The transports are used directly rather than through `OpenLineageClient`: the client reads
`openlineage.yml` from the working directory and `$HOME`, merges `OPENLINEAGE__*` variables,
copies `OPENLINEAGE_URL` into `os.environ` under other names and adds git facets; here the
target is exactly what `target_from_env` (or the caller) says.

`openlineage` is imported lazily, on the first event: importing it takes 0.3-0.6 s (it pulls
in requests, httpx and every transport), which every CLI start would otherwise pay.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openlineage.client.event_v2 import RunEvent
    from openlineage.client.facet_v2 import JobFacet, RunFacet
    from openlineage.client.transport.transport import Transport

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "rideshare-backfills"
DEFAULT_DATASET_NAMESPACE = "duckdb"
DEFAULT_ENDPOINT = "api/v1/lineage"
BACKFILL_FACET = "rideshare_backfill"
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LineageTarget:
    """Where events go: an HTTP endpoint if `url` is set, else files in `directory`.

    A target with neither is disabled: the emitter then does nothing at all.
    """

    directory: Path | None
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    endpoint: str = DEFAULT_ENDPOINT
    timeout: float = 5.0  # seconds, per HTTP request
    retries: int = 1  # further HTTP attempts after a connection error or a 5xx answer

    @property
    def enabled(self) -> bool:
        return self.url is not None or self.directory is not None

    def describe(self) -> str:
        """For log lines: never shows the API key."""
        if self.url is not None:
            return f"{self.url.rstrip('/')}/{self.endpoint.lstrip('/')}"
        if self.directory is not None:
            return str(self.directory)
        return "disabled"


DISABLED = LineageTarget(directory=None)


def target_from_env(project_dir: Path, env: Mapping[str, str] | None = None) -> LineageTarget:
    """The target the standard OpenLineage variables select (`env` defaults to os.environ).

    - OPENLINEAGE_DISABLED=true (any case): the disabled target (`enabled` is False).
    - OPENLINEAGE_URL: HTTP, with OPENLINEAGE_API_KEY as a bearer token and
      OPENLINEAGE_ENDPOINT as the path (default `api/v1/lineage`) when set.
    - otherwise files in OPENLINEAGE_DIR (relative paths are relative to `project_dir`),
      default `<project_dir>/target/openlineage/`.
    """
    env = os.environ if env is None else env
    if env.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return DISABLED
    url = env.get("OPENLINEAGE_URL", "").strip()
    if url:
        return LineageTarget(
            directory=None,
            url=url,
            api_key=env.get("OPENLINEAGE_API_KEY", "").strip() or None,
            endpoint=env.get("OPENLINEAGE_ENDPOINT", "").strip() or DEFAULT_ENDPOINT,
        )
    directory = env.get("OPENLINEAGE_DIR", "").strip()
    if directory:
        return LineageTarget(directory=project_dir / Path(directory).expanduser())
    return LineageTarget(directory=project_dir / "target" / "openlineage")


def nominal_bounds(start: date, end: date) -> tuple[str, str]:
    """nominalStartTime and nominalEndTime of the inclusive date range [start, end]."""
    first = datetime.combine(start, time(), tzinfo=UTC)
    after = datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    return _iso(first, "seconds"), _iso(after, "seconds")


def _iso(moment: datetime, timespec: str = "microseconds") -> str:
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


class LineageEmitter:
    """Builds and sends the events of backfill runs; see the module docstring for the shape."""

    def __init__(
        self,
        target: LineageTarget | None,
        namespace: str = DEFAULT_NAMESPACE,
        dataset_namespace: str = DEFAULT_DATASET_NAMESPACE,
        max_consecutive_failures: int = 3,
    ) -> None:
        self.target = target or DISABLED
        self.namespace = namespace
        self.dataset_namespace = dataset_namespace
        self.max_consecutive_failures = max_consecutive_failures
        self._http: Transport | None = None
        self._failures = 0
        self._gave_up = False

    @property
    def active(self) -> bool:
        """False when the target is disabled or the emitter gave up after repeated failures."""
        return self.target.enabled and not self._gave_up

    def start(
        self,
        *,
        run_id: str,
        job_name: str,
        backfill_id: str,
        start: date,
        end: date,
        inputs: list[str],
        outputs: list[str],
        sql: str | None = None,
    ) -> None:
        if not self.active:
            return
        self._emit(
            "START",
            run_id,
            job_name,
            lambda: self._event(
                "START",
                run_id=run_id,
                job_name=job_name,
                backfill_id=backfill_id,
                start=start,
                end=end,
                inputs=inputs,
                outputs={name: None for name in outputs},
                sql=sql,
            ),
        )

    def complete(
        self,
        *,
        run_id: str,
        job_name: str,
        backfill_id: str,
        start: date,
        end: date,
        inputs: list[str],
        outputs: dict[str, int],
    ) -> None:
        """`outputs` maps each output relation to the number of rows written to it."""
        if not self.active:
            return
        self._emit(
            "COMPLETE",
            run_id,
            job_name,
            lambda: self._event(
                "COMPLETE",
                run_id=run_id,
                job_name=job_name,
                backfill_id=backfill_id,
                start=start,
                end=end,
                inputs=inputs,
                outputs=dict(outputs),
            ),
        )

    def fail(
        self,
        *,
        run_id: str,
        job_name: str,
        backfill_id: str,
        start: date,
        end: date,
        error: str,
        stack_trace: str | None = None,
    ) -> None:
        if not self.active:
            return
        self._emit(
            "FAIL",
            run_id,
            job_name,
            lambda: self._event(
                "FAIL",
                run_id=run_id,
                job_name=job_name,
                backfill_id=backfill_id,
                start=start,
                end=end,
                error=error,
                stack_trace=stack_trace,
            ),
        )

    def close(self) -> None:
        """Release the HTTP session, if one was opened. Safe to call more than once."""
        http, self._http = self._http, None
        if http is not None:
            try:
                http.close()
            except Exception as exc:  # closing must not break the caller either
                log.debug("closing the OpenLineage HTTP transport failed: %s", exc)

    # -- internals ---------------------------------------------------------------------

    def _emit(
        self, event_type: str, run_id: str, job_name: str, build: Callable[[], RunEvent]
    ) -> None:
        try:
            event = build()
            self._transport(event).emit(event)
        except Exception as exc:
            self._failures += 1
            log.warning(
                "OpenLineage %s event for %s (run %s) was not sent to %s: %s",
                event_type,
                job_name,
                run_id,
                self.target.describe(),
                exc,
            )
            log.debug("OpenLineage emission failure", exc_info=True)
            if 0 < self.max_consecutive_failures <= self._failures:
                self._gave_up = True
                log.warning(
                    "OpenLineage: %d events in a row failed; no more events will be sent "
                    "by this emitter",
                    self._failures,
                )
                self.close()
        else:
            self._failures = 0

    def _transport(self, event: RunEvent) -> Transport:
        if self.target.url is not None:
            if self._http is None:
                self._http = _http_transport(self.target)
            return self._http
        assert self.target.directory is not None  # active implies url or directory
        from openlineage.client.transport.file import FileConfig, FileTransport

        directory = self.target.directory
        directory.mkdir(parents=True, exist_ok=True)
        return FileTransport(
            FileConfig(log_file_path=str(directory / _file_name(event)), append=True)
        )

    def _event(
        self,
        event_type: str,
        *,
        run_id: str,
        job_name: str,
        backfill_id: str,
        start: date,
        end: date,
        inputs: list[str] | None = None,
        outputs: Mapping[str, int | None] | None = None,
        sql: str | None = None,
        error: str | None = None,
        stack_trace: str | None = None,
    ) -> RunEvent:
        from openlineage.client.event_v2 import (
            InputDataset,
            Job,
            OutputDataset,
            Run,
            RunEvent,
            RunState,
        )
        from openlineage.client.facet_v2 import (
            error_message_run,
            job_type_job,
            nominal_time_run,
            output_statistics_output_dataset,
            sql_job,
        )

        nominal_start, nominal_end = nominal_bounds(start, end)
        run_facets: dict[str, RunFacet] = {
            "nominalTime": nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=nominal_start, nominalEndTime=nominal_end
            ),
            BACKFILL_FACET: _backfill_facet_class()(
                backfillId=backfill_id, startDate=start.isoformat(), endDate=end.isoformat()
            ),
        }
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=error, programmingLanguage="python", stackTrace=stack_trace
            )
        job_facets: dict[str, JobFacet] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="rideshare-backfills", jobType="BACKFILL"
            )
        }
        if sql is not None:
            job_facets["sql"] = sql_job.SQLJobFacet(query=sql, dialect=self._dialect())

        output_datasets = []
        for name, rows in (outputs or {}).items():
            facets: dict[str, Any] = {}
            if rows is not None:
                facets["outputStatistics"] = (
                    output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                        rowCount=rows
                    )
                )
            output_datasets.append(
                OutputDataset(namespace=self.dataset_namespace, name=name, outputFacets=facets)
            )
        return RunEvent(
            eventType=RunState(event_type),
            eventTime=_iso(datetime.now(UTC)),
            run=Run(runId=run_id, facets=run_facets),
            job=Job(namespace=self.namespace, name=job_name, facets=job_facets),
            inputs=[InputDataset(namespace=self.dataset_namespace, name=n) for n in inputs or []],
            outputs=output_datasets,
        )

    def _dialect(self) -> str:
        return self.dataset_namespace.split("://", 1)[0].split(":", 1)[0]


def _file_name(event: RunEvent) -> str:
    moment = datetime.fromisoformat(event.eventTime.replace("Z", "+00:00"))
    job = _UNSAFE_FILENAME_CHARS.sub("_", event.job.name)
    event_type = event.eventType.value if event.eventType is not None else "OTHER"
    return f"{moment:%Y%m%dT%H%M%S.%fZ}-{job}-{event.run.runId}-{event_type}.json"


def _http_transport(target: LineageTarget) -> Transport:
    from openlineage.client.transport.http import (
        ApiKeyTokenProvider,
        HttpConfig,
        HttpTransport,
        TokenProvider,
    )
    from openlineage.client.transport.http_common import DEFAULT_RETRY_CONFIG

    assert target.url is not None
    auth = ApiKeyTokenProvider({"apiKey": target.api_key}) if target.api_key else TokenProvider({})
    retries = max(target.retries, 0)
    retry = {
        **DEFAULT_RETRY_CONFIG,
        "total": retries,
        "connect": retries,
        "read": retries,
        "backoff_factor": 0.5,
    }
    return HttpTransport(
        HttpConfig(
            url=target.url,
            endpoint=target.endpoint,
            timeout=target.timeout,
            auth=auth,
            retry=retry,
        )
    )


@functools.cache
def _backfill_facet_class() -> Callable[..., RunFacet]:
    """The custom `rideshare_backfill` run facet, defined on first use (openlineage is lazy)."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class BackfillRunFacet(RunFacet):
        # camelCase: these are the JSON keys, like those of the standard facets
        backfillId: str
        startDate: str
        endDate: str

        @staticmethod
        def _get_schema() -> str:
            # No hosted schema of our own: a custom facet validates as a plain RunFacet.
            return "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunFacet"

    return BackfillRunFacet
