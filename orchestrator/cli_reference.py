"""The README's command reference, generated from the click CLI itself.

`render(cli)` turns every command of the `backfill` group into markdown: a heading, the
one-line summary, then the usage line and options exactly as click's `--help` prints them.
README.md keeps the result between two markers; rewrite it after changing the CLI:

    python -m orchestrator.cli_reference --write README.md

and CI (tests/hygiene/test_cli_docs.py, or `--check`) fails when the two have drifted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

START_MARKER = "<!-- cli-reference:start -->"
END_MARKER = "<!-- cli-reference:end -->"
PROG_NAME = "backfill"
# A fixed width, so the output does not depend on the terminal that renders it.
WIDTH = 88


def iter_commands(
    group: click.Group, prog_name: str = PROG_NAME
) -> Iterator[tuple[click.Context, click.Command]]:
    """Every visible command, depth first in click's listing order, with its context.

    The root group comes first; a sub-group (`versions`) comes before its own commands.
    Each context is the one click would build (the command's context_settings, such as
    `-h` for help, apply) and carries the full command path (`backfill versions list`).
    """
    settings = {**group.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    yield from _walk(click.Context(group, info_name=prog_name, **settings))


def _walk(ctx: click.Context) -> Iterator[tuple[click.Context, click.Command]]:
    command = ctx.command
    yield ctx, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _walk(click.Context(sub, info_name=name, parent=ctx, **sub.context_settings))


def render_command(ctx: click.Context, command: click.Command) -> str:
    """One command's section: heading, summary, and click's usage and options block."""
    formatter = click.HelpFormatter(width=WIDTH, max_width=WIDTH)
    command.format_usage(ctx, formatter)
    command.format_options(ctx, formatter)
    help_block = "\n".join(line.rstrip() for line in formatter.getvalue().strip("\n").split("\n"))
    parts = [f"### `{ctx.command_path}`"]
    summary = command.get_short_help_str(limit=200)
    if summary:
        parts.append(summary)
    parts.append(f"```text\n{help_block}\n```")
    return "\n\n".join(parts)


def render(group: click.Group, prog_name: str = PROG_NAME) -> str:
    """Markdown for every command of `group`, as README.md's command reference shows it."""
    return "\n\n".join(render_command(ctx, cmd) for ctx, cmd in iter_commands(group, prog_name))


def _block_span(text: str) -> tuple[int, int] | None:
    """Where the text between the markers starts and ends, or None without both markers."""
    start = text.find(START_MARKER)
    end = text.find(END_MARKER, start + 1)
    if start == -1 or end == -1:
        return None
    return start + len(START_MARKER), end


def extract_block(text: str) -> str | None:
    """The reference between the markers (without surrounding newlines), or None."""
    span = _block_span(text)
    return None if span is None else text[span[0] : span[1]].strip("\n")


def replace_block(text: str, rendered: str) -> str:
    """`text` with the reference between the markers replaced by `rendered`."""
    span = _block_span(text)
    if span is None:
        raise ValueError(f"no '{START_MARKER}' ... '{END_MARKER}' block")
    body = rendered.strip("\n")
    return f"{text[: span[0]]}\n{body}\n{text[span[1] :]}"


def load_cli() -> click.Group:
    """The `backfill` group, `orchestrator.cli:cli` (imported late: it imports the library)."""
    from orchestrator.cli import cli

    if not isinstance(cli, click.Group):
        raise TypeError("orchestrator.cli:cli is not a click.Group")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.cli_reference",
        description="Print, write or check README.md's generated `backfill` command reference.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the block in README")
    mode.add_argument("--check", action="store_true", help="exit 1 if the block has drifted")
    parser.add_argument("readme", nargs="?", default="README.md", type=Path)
    args = parser.parse_args(argv)

    rendered = render(load_cli())
    if not (args.write or args.check):
        sys.stdout.write(rendered + "\n")
        return 0

    path: Path = args.readme
    try:
        text = path.read_text(encoding="utf-8")
        updated = replace_block(text, rendered)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"Error: {path}: {exc}\n")
        return 2

    if args.check:
        if updated != text:
            sys.stderr.write(
                f"Error: the command reference in {path} is out of date; run "
                f"`python -m orchestrator.cli_reference --write {path}`\n"
            )
            return 1
    elif updated != text:
        path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
