"""CLI docs: every `backfill` command documents itself with an example, and README.md's
command reference is exactly what `orchestrator.cli_reference.render(cli)` produces."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import click
import pytest

from orchestrator import cli_reference
from orchestrator.cli_reference import END_MARKER, START_MARKER, extract_block, load_cli, render

from .cli_checks import cli_docs_problems, example_block
from .conftest import REPO_ROOT

FIX_README = "python -m orchestrator.cli_reference --write README.md"


def test_every_command_has_help_with_an_example() -> None:
    problems = cli_docs_problems(load_cli())
    assert not problems, "\n".join(problems)


def test_readme_command_reference_matches_the_cli() -> None:
    path = REPO_ROOT / "README.md"
    assert path.is_file(), f"README.md is missing; add the markers and run `{FIX_README}`"
    readme = path.read_text(encoding="utf-8")
    block = extract_block(readme)
    assert block is not None, f"README.md has no {START_MARKER} ... {END_MARKER} block"
    expected = render(load_cli()).strip("\n")
    diff = difflib.unified_diff(
        block.splitlines(), expected.splitlines(), "README.md", "render(cli)", lineterm=""
    )
    assert block == expected, f"README.md is out of date; run `{FIX_README}`\n" + "\n".join(
        list(diff)[:60]
    )


# --- the checks and the renderer, on a small click group ---------------------------------


def toy_cli() -> click.Group:
    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def cli() -> None:
        """Plan and run backfills."""

    @cli.command()
    @click.argument("model")
    @click.option("--start", required=True, help="First day, YYYY-MM-DD.")
    @click.option("--chunk-days", type=int, default=31, show_default=True, help="Days a chunk.")
    def plan(model: str, start: str, chunk_days: int) -> None:
        """Plan a backfill of MODEL from --start.

        Validates the request and stores the plan.

        \b
        Example:
            backfill plan fct_trips --start 2024-01-01
        """

    @cli.group()
    def versions() -> None:
        """Dataset versions of a model."""

    @versions.command("list")
    @click.argument("model")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def list_versions(model: str, as_json: bool) -> None:
        """List the versions of MODEL.

        \b
        Example:
            backfill versions list fct_trips --json
        """

    @cli.command(hidden=True)
    def internal() -> None:
        pass

    return cli


def test_toy_cli_passes() -> None:
    assert cli_docs_problems(toy_cli()) == []


def _add(group: click.Group, command: click.Command) -> click.Group:
    group.add_command(command)
    return group


def _command(doc: str | None, *params: click.Parameter) -> click.Command:
    return click.Command("broken", help=doc, params=list(params), callback=lambda **_: None)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (_command(None), "backfill broken: has no help text"),
        (_command("Break things."), "backfill broken: docstring does not end with an `Example:`"),
        (
            _command("Break.\n\n\b\nExample:\n    backfill broken\n\nTrailing text."),
            "does not end with an `Example:` block",
        ),
        (
            _command("Break.\n\n\b\nExample:\n    backfill plan x"),
            "the `Example:` block never shows `broken`",
        ),
        (
            _command("Break.\n\nExample:\n    backfill broken --now"),
            "click rewraps the `Example:` block",
        ),
        (
            _command("Break.\n\n\b\nExample:\n    backfill broken", click.Option(["--now"])),
            "backfill broken: option --now has no help text",
        ),
    ],
    ids=["no help", "no example", "example not last", "example of another", "rewrapped", "option"],
)
def test_broken_command_is_reported(command: click.Command, expected: str) -> None:
    problems = cli_docs_problems(_add(toy_cli(), command))
    assert any(expected in p for p in problems), problems


def test_sub_group_without_help_is_reported() -> None:
    group = toy_cli()
    group.add_command(click.Group("audit"))
    assert cli_docs_problems(group) == ["backfill audit: has no help text (docstring)"]


def test_example_block() -> None:
    doc = "Do it.\n\n    \b\n    Example:\n        backfill do --x 1\n        backfill do --y\n    "
    assert example_block(doc) == ["backfill do --x 1", "backfill do --y"]
    assert example_block("Do it.") is None


def test_render_lists_every_visible_command_with_usage_and_options() -> None:
    text = render(toy_cli())
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == [
        "### `backfill`",
        "### `backfill plan`",
        "### `backfill versions`",
        "### `backfill versions list`",
    ]
    assert "Usage: backfill plan [OPTIONS] MODEL" in text
    assert "Usage: backfill versions list [OPTIONS] MODEL" in text
    assert "--chunk-days INTEGER  Days a chunk.  [default: 31]" in text
    assert "[required]" in text
    assert len(re.findall(r"-h, --help +Show this", text)) == 4, "context_settings apply"
    assert "Plan a backfill of MODEL from --start." in text
    assert "internal" not in text
    assert render(toy_cli()) == text, "render must be deterministic"


def _readme(tmp_path: Path, block: str) -> Path:
    path = tmp_path / "README.md"
    path.write_text(f"# Title\n\n{START_MARKER}\n{block}\n{END_MARKER}\n\nAfter.\n")
    return path


def test_main_write_then_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_reference, "load_cli", toy_cli)
    readme = _readme(tmp_path, "stale")
    assert cli_reference.main(["--check", str(readme)]) == 1
    assert cli_reference.main(["--write", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\n") and text.endswith(f"{END_MARKER}\n\nAfter.\n")
    assert extract_block(text) == render(toy_cli())
    assert cli_reference.main(["--check", str(readme)]) == 0
    assert cli_reference.main(["--write", str(readme)]) == 0
    assert readme.read_text() == text, "--write must be idempotent"


def test_main_without_markers_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_reference, "load_cli", toy_cli)
    readme = tmp_path / "README.md"
    readme.write_text("# No reference here\n")
    assert cli_reference.main(["--check", str(readme)]) == 2
    assert capsys.readouterr().err.startswith(f"Error: {readme}: no '{START_MARKER}'")
    assert cli_reference.main(["--write", str(tmp_path / "missing.md")]) == 2
