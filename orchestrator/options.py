"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def common(func: F) -> F:
    """--project-dir, --target and --json, which every command takes."""
    func = click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table."
    )(func)
    func = click.option(
        "--target",
        default=None,
        envvar="DBT_TARGET",
        help="dbt target, which is also the warehouse: duckdb (default) or bigquery.",
    )(func)
    func = click.option(
        "--project-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="The dbt project directory.",
    )(func)
    return func


requested_by = click.option(
    "--requested-by",
    default=None,
    help="Who is acting (default: $BACKFILL_OPERATOR, else the OS user).",
)
execute = click.option(
    "--execute",
    is_flag=True,
    help="Really write. Without it the command only shows what it would do.",
)
