"""A dbt test compiled against the model is aimed at the staged relation instead."""

from __future__ import annotations

from orchestrator.validate import _aimed_at

STAGED = "backfill_scratch.backfill_staging.fct_trips__bf_0123456789ab__c001"


def test_duckdb_renders_the_model_without_its_default_database() -> None:
    sql = 'select rider_id from "marts"."fct_trips" where rider_id is null'
    aimed = _aimed_at(sql, '"warehouse"."marts"."fct_trips"', STAGED)
    assert aimed == f"select rider_id from {STAGED} where rider_id is null"


def test_bigquery_renders_the_full_name() -> None:
    sql = "select 1 from `p`.`marts`.`fct_trips` join `p`.`marts`.`dim_riders` using (rider_id)"
    aimed = _aimed_at(sql, "`p`.`marts`.`fct_trips`", STAGED)
    assert aimed == f"select 1 from {STAGED} join `p`.`marts`.`dim_riders` using (rider_id)"


def test_a_test_that_does_not_read_the_model_cannot_be_aimed() -> None:
    assert (
        _aimed_at('select 1 from "marts"."dim_riders"', '"w"."marts"."fct_trips"', STAGED) is None
    )
    assert _aimed_at('select 1 from "marts"."fct_trips"', "", STAGED) is None
