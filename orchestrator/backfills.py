"""The library behind the CLI: plan, dry-run, approve, run, status, history, unlock."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from orchestrator import gx_suite
from orchestrator import plan as planning
from orchestrator.audit import PlanRecord, utcnow
from orchestrator.context import Context, git_commit, operator, project_hash, today
from orchestrator.dbt import Compiled
from orchestrator.errors import BackfillError, BadInput, LockHeld, ValidationFailed, WorkFailed
from orchestrator.lock import Locks
from orchestrator.manifest import CompiledDataTest, Manifest, Model
from orchestrator.openlineage import LineageEmitter, target_from_env
from orchestrator.plan import Chunk
from orchestrator.policy import BackfillPolicy
from orchestrator.wap import ChunkOutcome, ChunkWork, run_chunk

# (chunks done, chunks in total, rows written so far); first called once the run has begun.
ProgressCallback = Callable[[int, int, int], None]


@dataclass
class DryRunReport:
    backfill_id: str
    fingerprint: str
    compiled_dir: str
    chunks: list[dict[str, Any]]
    # Where the warehouse bills by bytes scanned (BigQuery): the bytes every chunk's SQL
    # would process, and their on-demand cost at `usd_per_tib`; None elsewhere (DuckDB).
    bytes_processed: int | None = None
    usd_per_tib: float | None = None
    cost_usd: float | None = None

    @property
    def rows_to_replace(self) -> int:
        return sum(int(c["rows_to_replace"]) for c in self.chunks)

    @property
    def rows_read_estimate(self) -> int:
        return sum(int(c["rows_read_estimate"] or 0) for c in self.chunks)


@dataclass
class RunReport:
    backfill_id: str
    status: str
    chunks_run: list[ChunkOutcome] = field(default_factory=list)
    chunks_skipped: int = 0
    rebuilt: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_after(self) -> int:
        return sum(c.rows_after for c in self.chunks_run)


# -- plan ---------------------------------------------------------------------------------
def create_plan(
    ctx: Context,
    model_name: str,
    start_text: str,
    end_text: str,
    *,
    chunk_days: int | None = None,
    downstream: bool = False,
    reason: str | None = None,
    requested_by: str | None = None,
) -> PlanRecord:
    """Validate the request, scope and chunk it, assess impact, store the plan."""
    planning.check_identifier(model_name)
    reason_text = planning.check_reason(reason)
    who = operator(requested_by)
    start, end = planning.parse_date(start_text, "start"), planning.parse_date(end_text, "end")
    model = ctx.dbt.manifest().model(model_name)
    policy = _backfillable(model)
    start, end = planning.validate_range(model.name, start_text, end_text, policy, today())
    if not ctx.warehouse.relation_exists(model.relation):
        raise BadInput(f"{model.relation} does not exist yet; build it first with `dbt run`")
    Locks(ctx.audit).check_free(model.name, "")

    days_per_chunk = policy.chunk_days if chunk_days is None else chunk_days
    models = [model] + (_downstream_partitioned(ctx, model) if downstream else [])
    chunks = [c for m in models for c in planning.split_chunks(m.name, start, end, days_per_chunk)]
    compiled = [c.sql for c in _compile(ctx, chunks)]
    for m in models:
        # The validation `run` does with them: a test that does not compile fails the plan,
        # and the run reads them from the compile cache instead of starting dbt (~5 s).
        ctx.dbt.compile_data_tests(m.name)
    dbt_vars = {"backfill_start": start.isoformat(), "backfill_end": end.isoformat()}
    commit, phash = git_commit(ctx.project_dir), project_hash(ctx.project_dir)
    fp = planning.fingerprint(
        model=model.name,
        start=start,
        end=end,
        chunks=chunks,
        compiled_sql=compiled,
        project_hash=phash,
        git_commit=commit,
        dbt_vars=dbt_vars,
    )
    record = PlanRecord(
        backfill_id=f"bf_{uuid.uuid4().hex[:12]}",
        model=model.name,
        start=start,
        end=end,
        chunk_days=days_per_chunk,
        downstream=downstream,
        chunks=[_chunk_dict(c) for c in chunks],
        dbt_vars=dbt_vars,
        fingerprint=fp,
        project_hash=phash,
        git_commit=commit,
        requested_by=who,
        reason=reason_text,
        impact=_impact(ctx, model, models, start, end, downstream),
        created_at=utcnow(),
    )
    audit = ctx.audit
    audit.ensure()
    with ctx.warehouse.transaction():
        audit.insert_plan(record)
        audit.log(record, "planned", dry_run=True)
    return record


def _backfillable(model: Model) -> BackfillPolicy:
    policy = model.policy()
    if not model.is_incremental:
        raise BadInput(
            f"model {model.name} is materialized as {model.materialized}, not incremental; "
            "it cannot be backfilled"
        )
    return policy


def _downstream_partitioned(ctx: Context, model: Model) -> list[Model]:
    out = []
    for child in ctx.dbt.manifest().downstream(model.name):
        if (
            child.is_incremental
            and isinstance(child.meta.get("backfill"), dict)
            and child.meta["backfill"].get("enabled", True)
        ):
            out.append(child)
    return out


def _rebuilt_downstream(ctx: Context, plan: PlanRecord) -> list[str]:
    """Non-partitioned models below the target, rebuilt after a --downstream replay."""
    replayed = {c["model"] for c in plan.chunks}
    return [
        m.name
        for m in ctx.dbt.manifest().downstream(plan.model)
        if m.name not in replayed and m.materialized in {"table", "incremental"}
    ]


def _impact(
    ctx: Context, model: Model, models: list[Model], start: date, end: date, downstream: bool
) -> dict[str, Any]:
    policy = model.policy()
    stats = ctx.warehouse.partition_stats(model.relation, policy.partition_field, start, end)
    manifest = ctx.dbt.manifest()
    below = manifest.downstream(model.name)
    return {
        "relation": model.relation,
        "partitions": (end - start).days + 1,
        "rows_now": sum(s.rows for s in stats.values()),
        "rows_per_partition": {d.isoformat(): s.rows for d, s in stats.items()},
        "downstream": [
            {
                "model": m.name,
                "action": (
                    "replayed" if m in models else ("rebuilt" if downstream else "not replayed")
                ),
            }
            for m in below
        ],
        "exposures": manifest.exposures_reading([model.name] + [m.name for m in below]),
        "critical": policy.critical,
    }


def _compile(ctx: Context, chunks: list[Chunk]) -> list[Compiled]:
    return [ctx.dbt.compile(c.model, c.dbt_vars()) for c in chunks]


def _chunk_dict(c: Chunk) -> dict[str, Any]:
    return {
        "model": c.model,
        "chunk_no": c.chunk_no,
        "start": c.start.isoformat(),
        "end": c.end.isoformat(),
    }


def _chunks(plan: PlanRecord) -> list[Chunk]:
    return [
        Chunk(
            c["model"],
            int(c["chunk_no"]),
            date.fromisoformat(c["start"]),
            date.fromisoformat(c["end"]),
        )
        for c in plan.chunks
    ]


def _current_fingerprint(ctx: Context, plan: PlanRecord) -> tuple[str, list[Compiled]]:
    chunks = _chunks(plan)
    compiled = _compile(ctx, chunks)
    fp = planning.fingerprint(
        model=plan.model,
        start=plan.start,
        end=plan.end,
        chunks=chunks,
        compiled_sql=[c.sql for c in compiled],
        project_hash=project_hash(ctx.project_dir),
        git_commit=git_commit(ctx.project_dir),
        dbt_vars=plan.dbt_vars,
    )
    return fp, compiled


def load_plan(ctx: Context, backfill_id: str) -> PlanRecord:
    planning.check_plan_id(backfill_id)
    return ctx.audit.get_plan(backfill_id)


# -- dry run ------------------------------------------------------------------------------
TIB = 2**40
DEFAULT_USD_PER_TIB = 6.25  # BigQuery on-demand price per TiB scanned (override per contract)


def usd_per_tib() -> float:
    """`$BACKFILL_USD_PER_TIB`, the on-demand price used for dry-run cost (default 6.25)."""
    raw = os.environ.get("BACKFILL_USD_PER_TIB", "").strip()
    if not raw:
        return DEFAULT_USD_PER_TIB
    try:
        price = float(raw)
    except ValueError:
        price = -1.0
    if not price >= 0 or price == float("inf"):
        raise BadInput(f"BACKFILL_USD_PER_TIB must be a price in USD per TiB, got {raw!r}")
    return price


def dry_run(ctx: Context, backfill_id: str) -> DryRunReport:
    """Compile every chunk with its vars, write the SQL, estimate; nothing in marts changes.

    On a warehouse that bills by bytes (BigQuery) each chunk's SQL is also submitted as a
    dry-run job: bytes per chunk, in total, and the on-demand cost. A model whose
    `meta.backfill.max_bytes` the plan exceeds is refused here, before approval.
    """
    plan = load_plan(ctx, backfill_id)
    status = _status(ctx, plan)
    if status in {"running", "succeeded", "rolled_back"}:
        raise BadInput(f"plan {plan.backfill_id} is {status}; a dry run is for plans not yet run")
    price = usd_per_tib()
    fp, compiled = _current_fingerprint(ctx, plan)
    out_dir = ctx.project_dir / "target" / "backfills" / plan.backfill_id
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = ctx.dbt.manifest()
    wh = ctx.warehouse
    chunks = []
    for chunk, compiled_chunk in zip(_chunks(plan), compiled, strict=True):
        sql = compiled_chunk.sql
        model = manifest.model(chunk.model)
        path = out_dir / f"{chunk.model}__chunk_{chunk.chunk_no:03d}.sql"
        path.write_text(sql)
        rows = wh.partition_rows(
            model.relation, model.policy().partition_field, chunk.start, chunk.end
        )
        chunks.append(
            {
                **_chunk_dict(chunk),
                "rows_to_replace": sum(rows.values()),
                "rows_read_estimate": wh.estimate_rows_read(sql),
                "bytes_processed": wh.dry_run_bytes(sql),
                "compiled_sql": str(path.relative_to(ctx.project_dir)),
            }
        )
    report = DryRunReport(plan.backfill_id, fp, str(out_dir.relative_to(ctx.project_dir)), chunks)
    if any(c["bytes_processed"] is not None for c in chunks):
        report.bytes_processed = sum(int(c["bytes_processed"] or 0) for c in chunks)
        report.usd_per_tib = price
        report.cost_usd = round(report.bytes_processed / TIB * price, 4)
    audit = ctx.audit
    if fp != plan.fingerprint:
        error = (
            f"plan {plan.backfill_id} is stale: the code changed since it was planned "
            f"(fingerprint {plan.fingerprint}, now {fp}); make a new plan"
        )
        audit.record_dry_run(plan.backfill_id, fp, False, chunks, report.compiled_dir, error)
        raise WorkFailed(error)
    over = _over_budget(plan, chunks, manifest)
    if over is not None:
        audit.record_dry_run(plan.backfill_id, fp, False, chunks, report.compiled_dir, over)
        raise BadInput(over)
    with ctx.warehouse.transaction():
        audit.record_dry_run(plan.backfill_id, fp, True, chunks, report.compiled_dir)
        if status == "planned":
            audit.log(plan, "dry_run_ok", dry_run=True)
    return report


def _over_budget(plan: PlanRecord, chunks: list[dict[str, Any]], manifest: Manifest) -> str | None:
    """The refusal when a model's chunks would process more than its `max_bytes`."""
    for name in dict.fromkeys(c["model"] for c in chunks):
        budget = manifest.model(name).policy().max_bytes
        scanned = [c["bytes_processed"] for c in chunks if c["model"] == name]
        if budget is None or all(b is None for b in scanned):
            continue
        total = sum(int(b or 0) for b in scanned)
        if total > budget:
            return (
                f"plan {plan.backfill_id} would process {_bytes(total)} ({total:,} bytes) for "
                f"{name}, over its meta.backfill.max_bytes of {_bytes(budget)} "
                f"({budget:,} bytes); narrow the range or raise max_bytes"
            )
    return None


def _bytes(count: int) -> str:
    """`1.5 GiB`-style size (binary units, as BigQuery bills)."""
    units, size, index = ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), float(count), 0
    while size >= 1024 and index < len(units) - 1:
        size, index = size / 1024, index + 1
    return f"{count} B" if index == 0 else f"{size:.1f} {units[index]}"


# -- approve ------------------------------------------------------------------------------
def approve(
    ctx: Context, backfill_id: str, approver: str, comment: str | None = None
) -> dict[str, Any]:
    plan = load_plan(ctx, backfill_id)
    who = planning.check_person(approver, "approver")
    note = planning.check_reason(comment)
    audit = ctx.audit
    existing = audit.approval(plan.backfill_id)
    if existing is not None:
        raise BadInput(
            f"plan {plan.backfill_id} is already approved by {existing['approver']} "
            f"at {existing['approved_at']:%Y-%m-%d %H:%M:%S} UTC"
        )
    status = _status(ctx, plan)
    if status not in {"planned", "dry_run_ok"}:
        raise BadInput(
            f"plan {plan.backfill_id} is {status}; only a planned backfill can be approved"
        )
    if not audit.has_ok_dry_run(plan.backfill_id, plan.fingerprint):
        raise BadInput(
            f"plan {plan.backfill_id} has no successful dry run; "
            f"run `backfill dry-run {plan.backfill_id}` first"
        )
    policy = ctx.dbt.manifest().model(plan.model).policy()
    if policy.critical and who == plan.requested_by:
        raise BadInput(f"{plan.model} is critical: the approver must not be the requester ({who})")
    if policy.approvers and who not in policy.approvers:
        raise BadInput(
            f"{who} may not approve {plan.model}; approvers: {', '.join(policy.approvers)}"
        )
    with ctx.warehouse.transaction():
        audit.record_approval(plan.backfill_id, who, plan.fingerprint, note)
        audit.log(plan, "approved", approved_by=who, dry_run=True)
    return {"backfill_id": plan.backfill_id, "approver": who, "fingerprint": plan.fingerprint}


# -- run ----------------------------------------------------------------------------------
def run(
    ctx: Context,
    backfill_id: str,
    *,
    requested_by: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunReport:
    """Execute an approved plan chunk by chunk; re-running resumes at the first unfinished one."""
    started = time.monotonic()
    plan = load_plan(ctx, backfill_id)
    who = operator(requested_by)
    audit = ctx.audit
    status = _status(ctx, plan)
    if status == "succeeded":
        return RunReport(plan.backfill_id, "succeeded", chunks_skipped=len(plan.chunks))
    if status == "rolled_back":
        raise BadInput(f"plan {plan.backfill_id} was rolled back; make a new plan to run it again")
    approval = audit.approval(plan.backfill_id)
    if approval is None:
        raise BadInput(
            f"plan {plan.backfill_id} is not approved; run "
            f"`backfill approve {plan.backfill_id} --approver NAME` first"
        )
    try:
        fp, compiled = _current_fingerprint(ctx, plan)
    except WorkFailed as exc:  # e.g. the model no longer compiles: the attempt failed
        audit.log(plan, "failed", error=str(exc), dry_run=False)
        raise
    if fp != approval["fingerprint"]:
        raise BadInput(
            f"plan {plan.backfill_id} changed since it was approved (fingerprint "
            f"{approval['fingerprint']}, now {fp}): the code, vars or git commit differ; "
            "make a new plan"
        )
    locks = Locks(audit)
    models = list(dict.fromkeys(c["model"] for c in plan.chunks))
    try:
        for name in models:
            locks.acquire(name, plan.backfill_id, who)
    except LockHeld as exc:
        for name in models:
            locks.release(name, plan.backfill_id, who)
        audit.log(plan, "failed", error=str(exc), dry_run=False)
        raise
    report = RunReport(plan.backfill_id, "running")
    emitter, run_id = _lineage_emitter(ctx), str(uuid.uuid4())
    relations = _relations(ctx, plan)
    emitter.start(
        run_id=run_id,
        job_name=f"backfill.{plan.model}",
        backfill_id=plan.backfill_id,
        start=plan.start,
        end=plan.end,
        inputs=relations["inputs"],
        outputs=relations["outputs"],
        sql=compiled[0].sql if compiled else None,
    )
    released = False  # set by the except and else branches below, which release the locks
    try:
        current = audit.current(plan.backfill_id) or {}
        audit.log(
            plan,
            "running",
            dry_run=False,
            approved_by=approval["approver"],
            started_at=current.get("started_at") or utcnow(),
            error=None,
        )
        states = audit.chunk_states(plan.backfill_id)
        manifest = ctx.dbt.manifest()
        total = len(plan.chunks)
        data_tests: dict[str, tuple[CompiledDataTest, ...]] = {}
        if any(
            states.get((c["model"], int(c["chunk_no"])), {}).get("state") != "published"
            for c in plan.chunks
        ):
            data_tests = {name: tuple(ctx.dbt.compile_data_tests(name)) for name in models}
            gx_suite.import_in_background()  # after dbt's imports: see its docstring
        if on_progress is not None:
            on_progress(0, total, 0)
        for index, (chunk, compiled_chunk) in enumerate(
            zip(plan.chunks, compiled, strict=True), start=1
        ):
            if states.get((chunk["model"], int(chunk["chunk_no"])), {}).get("state") == "published":
                report.chunks_skipped += 1
                continue
            model = manifest.model(chunk["model"])
            work = ChunkWork(
                plan,
                chunk,
                compiled_chunk.sql,
                model,
                manifest.inputs(model.name),
                compiled_chunk.invocation_id,
                data_tests.get(chunk["model"], ()),
                states.get((chunk["model"], int(chunk["chunk_no"]))),
            )
            outcome = run_chunk(audit, work)
            report.chunks_run.append(outcome)
            if on_progress is not None:
                on_progress(index, total, report.rows_after)
        if plan.downstream:
            for name in _rebuilt_downstream(ctx, plan):
                ctx.dbt.run(name)
                audit.record_chunk(
                    plan.backfill_id,
                    {
                        "model": name,
                        "chunk_no": 0,
                        "start": plan.start.isoformat(),
                        "end": plan.end.isoformat(),
                    },
                    "rebuilt",
                )
                report.rebuilt.append(name)
        published = audit.chunk_states(plan.backfill_id)
        rows = sum(
            int(s["rows_after"] or 0) for s in published.values() if s["state"] == "published"
        )
        audit.log(plan, "succeeded", rows_affected=rows, dry_run=False)
        report.status = "succeeded"
        emitter.complete(
            run_id=run_id,
            job_name=f"backfill.{plan.model}",
            backfill_id=plan.backfill_id,
            start=plan.start,
            end=plan.end,
            inputs=relations["inputs"],
            outputs=_rows_by_relation(ctx, published),
        )
    except Exception as exc:
        status, message = "failed", str(exc)
        if isinstance(exc, ValidationFailed):
            status = "failed_validation"
        elif not isinstance(exc, BackfillError):
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
        # The warehouse that failed (a full disk in the publish commit) may refuse these
        # writes too: a second error must not hide the first behind a traceback.
        notes, unrecorded = [], None
        try:
            audit.log(plan, status, error=message, dry_run=False)
        except Exception as log_exc:
            unrecorded = _first_line(log_exc)
            notes.append(f"the failure could not be recorded: {unrecorded}")
        emitter.fail(
            run_id=run_id,
            job_name=f"backfill.{plan.model}",
            backfill_id=plan.backfill_id,
            start=plan.start,
            end=plan.end,
            error=message,
        )
        released, unreleased = True, _release_locks(locks, models, plan.backfill_id, who)
        if unreleased:
            name, why = unreleased
            why = "the same error" if why == unrecorded else why
            notes.append(f"the lock on {name} is left ({why}); a resume of this plan takes it over")
        if notes:
            if not isinstance(exc, BackfillError):
                message = f"backfill {plan.backfill_id} failed: {message}"
            raise WorkFailed("; ".join([message, *notes])) from exc
        if isinstance(exc, BackfillError):
            raise
        raise WorkFailed(f"backfill {plan.backfill_id} failed: {message}") from exc
    else:
        released, unreleased = True, _release_locks(locks, models, plan.backfill_id, who)
        if unreleased:
            name, why = unreleased
            raise WorkFailed(
                f"backfill {plan.backfill_id} succeeded, but its lock on {name} could not be "
                f"released ({why}): clear it with `backfill unlock {name} --requested-by NAME`"
            )
    finally:
        if not released:  # interrupted (KeyboardInterrupt, SystemExit): still let go
            _release_locks(locks, models, plan.backfill_id, who)
        emitter.close()
        report.seconds = time.monotonic() - started
    return report


def _release_locks(
    locks: Locks, models: list[str], backfill_id: str, who: str
) -> tuple[str, str] | None:
    """Release every lock of the run; None, or the first model left locked and why."""
    left = None
    for name in models:
        try:
            locks.release(name, backfill_id, who)
        except Exception as exc:
            left = left or (name, _first_line(exc))
    return left


def _first_line(exc: BaseException) -> str:
    """`Type: first line of the message`, whitespace collapsed."""
    lines = str(exc).strip().splitlines()
    return " ".join(f"{type(exc).__name__}: {lines[0] if lines else ''}".split()).rstrip(":")


def _lineage_emitter(ctx: Context) -> LineageEmitter:
    """OpenLineage events go to target/openlineage/ unless OPENLINEAGE_URL names an endpoint."""
    return LineageEmitter(
        target_from_env(ctx.project_dir), dataset_namespace=ctx.warehouse.namespace
    )


def _relations(ctx: Context, plan: PlanRecord) -> dict[str, list[str]]:
    manifest = ctx.dbt.manifest()
    names = list(dict.fromkeys(c["model"] for c in plan.chunks))
    outputs = [manifest.model(n).relation for n in names]
    inputs = sorted({str(i["relation"]) for n in names for i in manifest.inputs(n)} - set(outputs))
    return {"inputs": inputs, "outputs": outputs}


def _rows_by_relation(
    ctx: Context, states: dict[tuple[str, int], dict[str, Any]]
) -> dict[str, int]:
    manifest = ctx.dbt.manifest()
    out: dict[str, int] = {}
    for (model, _), state in states.items():
        if state["state"] == "published":
            relation = manifest.model(model).relation
            out[relation] = out.get(relation, 0) + int(state["rows_after"] or 0)
    return out


# -- status, history, unlock ----------------------------------------------------------------
def _status(ctx: Context, plan: PlanRecord) -> str:
    current = ctx.audit.current(plan.backfill_id)
    return str(current["status"]) if current else "planned"


def status(ctx: Context, backfill_id: str | None = None) -> list[dict[str, Any]]:
    if backfill_id is None:
        return ctx.audit.history(limit=20)
    plan = load_plan(ctx, backfill_id)
    current = ctx.audit.current(plan.backfill_id) or {}
    states = ctx.audit.chunk_states(plan.backfill_id)
    chunks = []
    for c in plan.chunks:
        state = states.get((c["model"], int(c["chunk_no"])), {})
        chunks.append(
            {
                **c,
                "state": state.get("state", "pending"),
                "rows_before": state.get("rows_before"),
                "rows_after": state.get("rows_after"),
            }
        )
    return [{**current, "chunks": chunks, "fingerprint": plan.fingerprint, "impact": plan.impact}]


def history(ctx: Context, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    if model is not None:
        planning.check_identifier(model)
    return ctx.audit.history(model, limit)


def unlock(
    ctx: Context, model: str, requested_by: str | None, reason: str | None, *, force: bool = False
) -> dict[str, Any]:
    planning.check_identifier(model)
    who = operator(requested_by)
    lock = Locks(ctx.audit).clear(model, who, planning.check_reason(reason), force=force)
    return {"model": model, "backfill_id": lock.backfill_id, "cleared_by": who}
