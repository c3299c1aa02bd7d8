"""rideshare-backfills orchestrator: plan, dry-run, approve and run safe backfills of dbt models."""

__version__ = "0.1.0"
