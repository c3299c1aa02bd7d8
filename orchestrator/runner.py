"""`run --execute`: check; for each chunk not yet published, write-audit-publish it; record.

The per-model locks and the lineage run are context managers around the chunk loop;
`_recorded` turns how the loop ended into the backfill's status event. Re-running a plan
resumes at its first unpublished chunk.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from orchestrator import gx_suite, notify
from orchestrator.audit import ChunkState, PlanRecord, utcnow
from orchestrator.context import Context
from orchestrator.dbt import Compiled
from orchestrator.errors import BackfillError, BadInput, LockHeld, ValidationFailed, WorkFailed
from orchestrator.lifecycle import Action, Status, require
from orchestrator.lock import Locks
from orchestrator.manifest import CompiledDataTest
from orchestrator.openlineage import LineageEmitter, target_from_env
from orchestrator.plan import Chunk
from orchestrator.planner import current_fingerprint, load_plan, rebuilt_downstream
from orchestrator.wap import ChunkOutcome, ChunkWork, run_chunk

# (chunks done, chunks in total, rows written so far); first called once the run has begun.
ProgressCallback = Callable[[int, int, int], None]
# (the chunk, its number in the run, chunks in total, the step that ended, its seconds).
StepCallback = Callable[[Chunk, int, int, str, float], None]


@dataclass
class RunReport:
    backfill_id: str
    status: Status
    chunks_run: list[ChunkOutcome] = field(default_factory=list)
    chunks_skipped: int = 0
    rebuilt: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_after(self) -> int:
        return sum(c.rows_after for c in self.chunks_run)


def run(
    ctx: Context,
    backfill_id: str,
    *,
    requested_by: str | None = None,
    on_progress: ProgressCallback | None = None,
    on_step: StepCallback | None = None,
) -> RunReport:
    """Execute an approved plan chunk by chunk; re-running resumes at the first unfinished one."""
    started = time.monotonic()
    plan = load_plan(ctx, backfill_id)
    who = ctx.who(requested_by)
    status = ctx.audit.plans.status(plan.backfill_id)
    if status is Status.SUCCEEDED:
        return RunReport(plan.backfill_id, Status.SUCCEEDED, chunks_skipped=len(plan.chunks))
    require(Action.RUN, status, plan.backfill_id)
    approval = _approval(ctx, plan)
    compiled = _compiled_as_approved(ctx, plan, approval["fingerprint"])

    report = RunReport(plan.backfill_id, Status.RUNNING)
    locks = Locks(ctx.audit)
    _acquire(ctx, plan, locks, who)
    with _lineage_run(ctx, plan, compiled) as lineage, _recorded(ctx, plan, locks, who, lineage):
        ctx.audit.plans.log(
            plan,
            Status.RUNNING,
            dry_run=False,
            approved_by=approval["approver"],
            started_at=(ctx.audit.plans.current(plan.backfill_id) or {}).get("started_at")
            or utcnow(),
            error=None,
        )
        _run_chunks(ctx, plan, compiled, report, on_progress, on_step)
        if plan.downstream:
            report.rebuilt = _rebuild_downstream(ctx, plan)
        published = ctx.audit.chunks.states(plan.backfill_id)
        ctx.audit.plans.log(
            plan, Status.SUCCEEDED, rows_affected=_rows_published(published), dry_run=False
        )
        report.status = Status.SUCCEEDED
        lineage.complete(_rows_by_relation(ctx, published))
        changed = notify.changed_partitions(
            ctx.audit.chunks.partitions(plan.backfill_id, "before"),
            ctx.audit.chunks.partitions(plan.backfill_id, "after"),
        )
        notify.notify_model(
            ctx.audit,
            ctx.dbt.manifest().model(plan.model).meta,
            notify.succeeded(plan, changed, who),
        )
    report.seconds = time.monotonic() - started
    return report


# -- checks -------------------------------------------------------------------------------
def _approval(ctx: Context, plan: PlanRecord) -> dict[str, Any]:
    approval = ctx.audit.plans.approval(plan.backfill_id)
    if approval is None:
        raise BadInput(
            f"plan {plan.backfill_id} is not approved; run "
            f"`backfill approve {plan.backfill_id} --approver NAME` first"
        )
    return approval


def _compiled_as_approved(ctx: Context, plan: PlanRecord, approved: str) -> list[Compiled]:
    """Every chunk's SQL, provided the plan still has the fingerprint that was approved."""
    try:
        fp, compiled = current_fingerprint(ctx, plan)
    except WorkFailed as exc:  # e.g. the model no longer compiles: the attempt failed
        ctx.audit.plans.log(plan, Status.FAILED, error=str(exc), dry_run=False)
        raise
    if fp != approved:
        raise BadInput(
            f"plan {plan.backfill_id} changed since it was approved (fingerprint "
            f"{approved}, now {fp}): the code, vars or git commit differ; make a new plan"
        )
    return compiled


def _acquire(ctx: Context, plan: PlanRecord, locks: Locks, who: str) -> None:
    """Lock every model the plan writes, or none; a refusal is the attempt's failure."""
    try:
        for name in plan.models:
            locks.acquire(name, plan.backfill_id, who)
    except LockHeld as exc:
        for name in plan.models:
            locks.release(name, plan.backfill_id, who)
        ctx.audit.plans.log(plan, Status.FAILED, error=str(exc), dry_run=False)
        raise


# -- the chunks ---------------------------------------------------------------------------
def _run_chunks(
    ctx: Context,
    plan: PlanRecord,
    compiled: list[Compiled],
    report: RunReport,
    on_progress: ProgressCallback | None,
    on_step: StepCallback | None = None,
) -> None:
    states = ctx.audit.chunks.states(plan.backfill_id)
    manifest = ctx.dbt.manifest()
    pending = [c for c in plan.chunks if not _published(states.get(_key(c)))]
    data_tests: dict[str, tuple[CompiledDataTest, ...]] = {}
    if pending:
        data_tests = {name: tuple(ctx.dbt.compile_data_tests(name)) for name in plan.models}
        gx_suite.import_in_background()  # after dbt's imports: see its docstring
    if on_progress is not None:
        on_progress(0, len(plan.chunks), 0)
    for index, (chunk, compiled_chunk) in enumerate(
        zip(plan.chunks, compiled, strict=True), start=1
    ):
        prior = states.get(_key(chunk))
        if _published(prior):
            report.chunks_skipped += 1
            continue
        model = manifest.model(chunk.model)
        work = ChunkWork(
            plan,
            chunk,
            compiled_chunk.sql,
            model,
            manifest.inputs(model.name),
            compiled_chunk.invocation_id,
            data_tests.get(chunk.model, ()),
            prior,
            manifest.code_fingerprint(model.name),
        )
        heard = None
        if on_step is not None:
            heard = _step_listener(on_step, chunk, index, len(plan.chunks))
        report.chunks_run.append(run_chunk(ctx.audit, work, heard))
        if on_progress is not None:
            on_progress(index, len(plan.chunks), report.rows_after)


def _step_listener(
    on_step: StepCallback, chunk: Chunk, index: int, total: int
) -> Callable[[str, float], None]:
    return lambda step, seconds: on_step(chunk, index, total, step, seconds)


def _rebuild_downstream(ctx: Context, plan: PlanRecord) -> list[str]:
    rebuilt = []
    for name in rebuilt_downstream(ctx, plan):
        ctx.dbt.run(name)
        ctx.audit.chunks.record(plan.backfill_id, Chunk(name, 0, plan.start, plan.end), "rebuilt")
        rebuilt.append(name)
    return rebuilt


def _key(chunk: Chunk) -> tuple[str, int]:
    return (chunk.model, chunk.chunk_no)


def _published(state: ChunkState | None) -> bool:
    return state is not None and state.state == "published"


def _rows_published(states: dict[tuple[str, int], ChunkState]) -> int:
    return sum(int(s.rows_after or 0) for s in states.values() if s.state == "published")


# -- how the run ends ---------------------------------------------------------------------
class _LineageRun:
    """The OpenLineage run of one backfill attempt: START on entry, then COMPLETE or FAIL."""

    def __init__(self, ctx: Context, plan: PlanRecord) -> None:
        self.plan = plan
        self.run_id = str(uuid.uuid4())
        self.emitter = LineageEmitter(
            target_from_env(ctx.project_dir), dataset_namespace=ctx.warehouse.namespace
        )
        manifest = ctx.dbt.manifest()
        self.outputs = [manifest.model(n).relation for n in plan.models]
        self.inputs = sorted(
            {str(i["relation"]) for n in plan.models for i in manifest.inputs(n)}
            - set(self.outputs)
        )

    def _common(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "run_id": self.run_id,
            "job_name": f"backfill.{plan.model}",
            "backfill_id": plan.backfill_id,
            "start": plan.start,
            "end": plan.end,
        }

    def start(self, sql: str | None) -> None:
        self.emitter.start(**self._common(), inputs=self.inputs, outputs=self.outputs, sql=sql)

    def complete(self, rows_by_relation: dict[str, int]) -> None:
        self.emitter.complete(**self._common(), inputs=self.inputs, outputs=rows_by_relation)

    def fail(self, error: str) -> None:
        self.emitter.fail(**self._common(), error=error)


@contextmanager
def _lineage_run(ctx: Context, plan: PlanRecord, compiled: list[Compiled]) -> Iterator[_LineageRun]:
    lineage = _LineageRun(ctx, plan)
    lineage.start(compiled[0].sql if compiled else None)
    try:
        yield lineage
    finally:
        lineage.emitter.close()


@contextmanager
def _recorded(
    ctx: Context, plan: PlanRecord, locks: Locks, who: str, lineage: _LineageRun
) -> Iterator[None]:
    """Record how the run ended and release its locks, whatever happens in the block.

    A failure is logged (as `failed_validation` when validation refused a chunk), sent as
    OpenLineage FAIL, and re-raised as one line. The warehouse that failed (a full disk in
    the publish commit) may refuse these writes too: a second error must not hide the
    first behind a traceback, so it is added to the message instead.
    """
    released = False
    try:
        yield
    except Exception as exc:
        released = True
        failure = _failure(ctx, plan, locks, who, lineage, exc)
        if failure is exc:
            raise
        raise failure from exc
    else:
        released, unreleased = True, _release_locks(locks, plan, who)
        if unreleased:
            name, why = unreleased
            raise WorkFailed(
                f"backfill {plan.backfill_id} succeeded, but its lock on {name} could not be "
                f"released ({why}): clear it with `backfill unlock {name} --requested-by NAME`"
            )
    finally:
        if not released:  # interrupted (KeyboardInterrupt, SystemExit): still let go
            _release_locks(locks, plan, who)


def _failure(
    ctx: Context, plan: PlanRecord, locks: Locks, who: str, lineage: _LineageRun, exc: Exception
) -> Exception:
    """Record a failed run; the exception to raise (`exc` itself when nothing is to add)."""
    status, message = Status.FAILED, str(exc)
    if isinstance(exc, ValidationFailed):
        status = Status.FAILED_VALIDATION
    elif not isinstance(exc, BackfillError):
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
    notes, unrecorded = [], None
    try:
        ctx.audit.plans.log(plan, status, error=message, dry_run=False)
    except Exception as log_exc:
        unrecorded = _first_line(log_exc)
        notes.append(f"the failure could not be recorded: {unrecorded}")
    if isinstance(exc, ValidationFailed):  # never raises: a failed send is recorded
        notify.notify_model(
            ctx.audit,
            ctx.dbt.manifest().model(plan.model).meta,
            notify.failed_validation(plan, exc.failures, exc.staging, who),
        )
    lineage.fail(message)
    unreleased = _release_locks(locks, plan, who)
    if unreleased:
        name, why = unreleased
        why = "the same error" if why == unrecorded else why
        notes.append(f"the lock on {name} is left ({why}); a resume of this plan takes it over")
    if notes:
        if not isinstance(exc, BackfillError):
            message = f"backfill {plan.backfill_id} failed: {message}"
        return WorkFailed("; ".join([message, *notes]))
    if isinstance(exc, BackfillError):
        return exc
    return WorkFailed(f"backfill {plan.backfill_id} failed: {message}")


def _release_locks(locks: Locks, plan: PlanRecord, who: str) -> tuple[str, str] | None:
    """Release every lock of the run; None, or the first model left locked and why."""
    left = None
    for name in plan.models:
        try:
            locks.release(name, plan.backfill_id, who)
        except Exception as exc:
            left = left or (name, _first_line(exc))
    return left


def _first_line(exc: BaseException) -> str:
    """`Type: first line of the message`, whitespace collapsed."""
    lines = str(exc).strip().splitlines()
    return " ".join(f"{type(exc).__name__}: {lines[0] if lines else ''}".split()).rstrip(":")


def _rows_by_relation(ctx: Context, states: dict[tuple[str, int], ChunkState]) -> dict[str, int]:
    manifest = ctx.dbt.manifest()
    out: dict[str, int] = {}
    for state in states.values():
        if state.state == "published":
            relation = manifest.model(state.model).relation
            out[relation] = out.get(relation, 0) + int(state.rows_after or 0)
    return out
