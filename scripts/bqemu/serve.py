"""Run the BigQuery emulator (bqemulator 1.4.0) with small fixes for real BigQuery SQL it misreads.

Started by `tests/bigquery/emulator.py` with the emulator's own interpreter
(`.bqemu/bin/python scripts/bqemu/serve.py start ...`). Each fix below makes the emulator
accept SQL that real BigQuery accepts and dbt-bigquery or the orchestrator sends as is,
so production SQL never has to bend to the emulator. Nothing here changes what a
statement means.

1. `CREATE OR REPLACE TABLE t (col type, ...) OPTIONS(...) AS (SELECT ...)`, dbt-bigquery's
   DDL for a model with an enforced contract. bqemulator rewrites the combined
   "schema + AS SELECT" form into a CTAS that DuckDB can run, but only when the query is a
   bare SELECT: dbt wraps it in parentheses (a subquery) and DuckDB then fails with
   `syntax error at or near "AS"`. The fix lets the rewriter look through the parentheses.
2. `tables.patch` with a label set to null. In BigQuery that deletes the label (it is how
   the client's `update_table` removes one) and keeps the labels not mentioned;
   bqemulator answers 500 (its model refuses a null label), which the client retries for
   ten minutes. The fix applies BigQuery's semantics to the request body.
3. Who calls. BigQuery knows the caller from the OAuth token; the emulator has no token
   service and takes the caller from its `X-Bqemu-Caller` header instead. A bearer token
   `principal:<member>` (e.g. `principal:user:alice@example.com`) names the caller here,
   so tests act as different people by switching BIGQUERY_TOKEN, as with real
   credentials, and SESSION_USER() answers accordingly. Any other token is anonymous.
"""

from __future__ import annotations

from typing import Any


def _patch_schema_ctas() -> None:
    from sqlglot import exp

    from bqemulator.sql.rewriter import create_table_schema_ctas as module

    original = module._first_select

    def first_select(body: Any) -> Any:
        while isinstance(body, exp.Subquery):
            body = body.this
        return original(body)

    module._first_select = first_select


def _patch_label_removal() -> None:
    from bqemulator.api.routes import tables as module

    original = module._rest_to_table_meta

    def rest_to_table_meta(
        project_id: str, dataset_id: str, body: dict[str, Any], clock: Any, existing: Any = None
    ) -> Any:
        if isinstance(body.get("labels"), dict):
            labels = dict(existing.labels or {}) if existing is not None else {}
            for key, value in body["labels"].items():
                if value is None:
                    labels.pop(key, None)
                else:
                    labels[key] = value
            body = {**body, "labels": labels}
        return original(project_id, dataset_id, body, clock, existing)

    module._rest_to_table_meta = rest_to_table_meta


def _patch_token_identity() -> None:
    from bqemulator.row_access import identity

    original = identity._resolve_from_pairs
    prefix = "bearer principal:"

    def resolve_from_pairs(pairs: dict[str, str]) -> Any:
        token = pairs.get("authorization", "")
        if identity.CALLER_HEADER not in pairs and token.lower().startswith(prefix):
            pairs = {**pairs, identity.CALLER_HEADER: token[len(prefix) :]}
        return original(pairs)

    identity._resolve_from_pairs = resolve_from_pairs


def main() -> None:
    _patch_schema_ctas()
    _patch_label_removal()
    _patch_token_identity()
    from bqemulator.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
