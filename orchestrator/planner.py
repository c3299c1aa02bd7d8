"""`plan`: validate a request, scope and chunk it, assess impact, store it; and the
fingerprint every later step compares with."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from orchestrator import notify
from orchestrator import plan as planning
from orchestrator.audit import PlanRecord, utcnow
from orchestrator.context import Context, today
from orchestrator.dbt import Compiled
from orchestrator.errors import BadInput
from orchestrator.lifecycle import Status
from orchestrator.lock import Locks
from orchestrator.looker import deprecated_exposure_warnings
from orchestrator.manifest import Model
from orchestrator.plan import Chunk
from orchestrator.policy import BackfillPolicy
from orchestrator.project import git_commit, project_hash


def create_plan(
    ctx: Context,
    model_name: str,
    start_text: str | None = None,
    end_text: str | None = None,
    *,
    chunk_days: int | None = None,
    downstream: bool = False,
    reason: str | None = None,
    requested_by: str | None = None,
    category: str = "other",
    detected: tuple[str, ...] = (),
) -> PlanRecord:
    """Validate the request, scope and chunk it, assess impact, store the plan.

    With `detected` kinds (stale, missing, drifted) instead of a range, the plan holds
    exactly the partitions `backfill detect` finds of those kinds (non-adjacent ranges
    each in their own chunks); with `downstream`, the models below it on theirs.
    """
    planning.check_identifier(model_name)
    if chunk_days is not None:  # bounded by the model's max_days: a chunk never spans more
        planning.check_chunk_days(
            chunk_days, ctx.dbt.manifest().model(model_name).policy().max_days
        )
    reason_text = planning.check_reason(reason)
    category = planning.check_category(category)
    who = ctx.who(requested_by)
    model = ctx.dbt.manifest().model(model_name)
    policy = backfillable(model)
    notify.config_for(model.name, model.meta)  # a bad notify block is bad input, before writes
    if detected:
        planning.check_detected(detected, start_text, end_text)
        _require_built(ctx, model)
        days_by_model = _detected_days(ctx, model, detected, downstream)
        start, end = min(days_by_model[model.name]), max(days_by_model[model.name])
        planning.check_partition_count(model.name, len(days_by_model[model.name]), policy)
    else:
        start = planning.parse_date(start_text or "", "start")
        end = planning.parse_date(end_text or "", "end")
        start, end = planning.validate_range(
            model.name, start_text or "", end_text or "", policy, today()
        )
        _require_built(ctx, model)
        days_by_model = {}
    Locks(ctx.audit).check_free(model.name, "")

    days_per_chunk = policy.chunk_days if chunk_days is None else chunk_days
    models = [model] + (_downstream_partitioned(ctx, model) if downstream else [])
    if detected:
        models = [m for m in models if days_by_model.get(m.name)]
        chunks = [
            c
            for m in models
            for c in planning.chunks_of_days(m.name, days_by_model[m.name], days_per_chunk)
        ]
        start = min(c.start for c in chunks)
        end = max(c.end for c in chunks)
    else:
        chunks = [
            c for m in models for c in planning.split_chunks(m.name, start, end, days_per_chunk)
        ]
    compiled = [c.sql for c in compile_chunks(ctx, chunks)]
    for m in models:
        # The validation `run` does with them: a test that does not compile fails the plan,
        # and the run reads them from the compile cache instead of starting dbt (~5 s).
        ctx.dbt.compile_data_tests(m.name)
    dbt_vars = {"backfill_start": start.isoformat(), "backfill_end": end.isoformat()}
    fp, phash, commit = _fingerprint(ctx, model.name, start, end, chunks, compiled, dbt_vars)
    record = PlanRecord(
        backfill_id=f"bf_{uuid.uuid4().hex[:12]}",
        model=model.name,
        start=start,
        end=end,
        chunk_days=days_per_chunk,
        downstream=downstream,
        chunks=chunks,
        dbt_vars=dbt_vars,
        fingerprint=fp,
        project_hash=phash,
        git_commit=commit,
        requested_by=who,
        reason=reason_text,
        impact=_impact(ctx, model, models, start, end, downstream, days_by_model, detected),
        created_at=utcnow(),
        category=category,
    )
    audit = ctx.audit
    audit.ensure()
    with ctx.warehouse.transaction():
        audit.plans.insert_plan(record)
        audit.plans.log(record, Status.PLANNED, dry_run=True)
    notify.notify_model(audit, model.meta, notify.awaiting_approval(record))
    return record


def load_plan(ctx: Context, backfill_id: str) -> PlanRecord:
    planning.check_plan_id(backfill_id)
    return ctx.audit.plans.get_plan(backfill_id)


def current_fingerprint(ctx: Context, plan: PlanRecord) -> tuple[str, list[Compiled]]:
    """The plan's fingerprint as the project stands now, and every chunk's compiled SQL."""
    compiled = compile_chunks(ctx, plan.chunks)
    sql = [c.sql for c in compiled]
    fp, _, _ = _fingerprint(ctx, plan.model, plan.start, plan.end, plan.chunks, sql, plan.dbt_vars)
    return fp, compiled


def _fingerprint(
    ctx: Context,
    model: str,
    start: date,
    end: date,
    chunks: list[Chunk],
    compiled_sql: list[str],
    dbt_vars: dict[str, Any],
) -> tuple[str, str, str]:
    """(fingerprint, project hash, git commit) of a plan as the project stands now."""
    phash, commit = project_hash(ctx.project_dir), git_commit(ctx.project_dir)
    fp = planning.fingerprint(
        model=model,
        start=start,
        end=end,
        chunks=chunks,
        compiled_sql=compiled_sql,
        project_hash=phash,
        git_commit=commit,
        dbt_vars=dbt_vars,
    )
    return fp, phash, commit


def compile_chunks(ctx: Context, chunks: list[Chunk]) -> list[Compiled]:
    return [ctx.dbt.compile(c.model, c.dbt_vars()) for c in chunks]


def _require_built(ctx: Context, model: Model) -> None:
    if not ctx.warehouse.relation_exists(model.relation):
        raise BadInput(f"{model.relation} does not exist yet; build it first with `dbt run`")


def backfillable(model: Model) -> BackfillPolicy:
    policy = model.policy()
    if not model.is_incremental:
        raise BadInput(
            f"model {model.name} is materialized as {model.materialized}, not incremental; "
            "it cannot be backfilled"
        )
    return policy


def rebuilt_downstream(ctx: Context, plan: PlanRecord) -> list[str]:
    """Non-partitioned models below the target, rebuilt after a --downstream replay."""
    replayed = set(plan.models)
    return [
        m.name
        for m in ctx.dbt.manifest().downstream(plan.model)
        if m.name not in replayed and m.materialized in {"table", "incremental"}
    ]


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


def _detected_days(
    ctx: Context, model: Model, kinds: tuple[str, ...], downstream: bool
) -> dict[str, list[date]]:
    """The days `backfill detect` finds of these kinds, per model to replay."""
    from orchestrator.detect import detect  # detect reads plans' ledger: not at import

    names = [model.name] + (
        [m.name for m in _downstream_partitioned(ctx, model)] if downstream else []
    )
    reports = {r.model: r for r in detect(ctx, names)}
    days = {name: reports[name].days(*kinds) for name in names}
    if not days[model.name]:
        wanted = "/".join(kinds)
        raise BadInput(
            f"{model.name} has no {wanted} partitions (backfill detect); nothing to plan"
        )
    return days


def _impact(
    ctx: Context,
    model: Model,
    models: list[Model],
    start: date,
    end: date,
    downstream: bool,
    days_by_model: dict[str, list[date]],
    detected: tuple[str, ...],
) -> dict[str, Any]:
    policy = model.policy()
    stats = ctx.warehouse.partition_stats(model.relation, policy.partition_field, start, end)
    planned = days_by_model.get(model.name)
    if planned is not None:
        stats = {d: s for d, s in stats.items() if d in set(planned)}
    manifest = ctx.dbt.manifest()
    below = manifest.downstream(model.name)
    exposures = manifest.exposures_reading([model.name] + [m.name for m in below])
    return {
        "relation": model.relation,
        "partitions": len(planned) if planned is not None else (end - start).days + 1,
        "detected": {name: [d.isoformat() for d in days] for name, days in days_by_model.items()}
        if detected
        else {},
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
        "exposures": exposures,
        # An exposure (a Looker dashboard) still reading a deprecated model version.
        "warnings": deprecated_exposure_warnings(manifest.raw, today(), exposures),
        "critical": policy.critical,
    }
