"""CLI documentation checks over a click group (STYLE.md §8: every command's docstring ends
with an `Example:` block). The README drift check is `orchestrator.cli_reference`."""

from __future__ import annotations

import inspect
import re

import click

from orchestrator.cli_reference import iter_commands


def example_block(help_text: str) -> list[str] | None:
    """The lines of the docstring's closing `Example:` block, or None without one.

    The block starts at a line `Example:` (or `Examples:`), and everything after it is
    indented or blank, i.e. it is the docstring's last section.
    """
    lines = inspect.cleandoc(help_text).partition("\f")[0].splitlines()
    starts = [i for i, line in enumerate(lines) if re.fullmatch(r"Examples?:", line.strip())]
    if not starts:
        return None
    start = starts[-1]
    body = lines[start + 1 :]
    indent = len(lines[start]) - len(lines[start].lstrip())
    if any(line.strip() and len(line) - len(line.lstrip()) <= indent for line in body):
        return None
    return [line.strip() for line in body if line.strip()]


def cli_docs_problems(group: click.Group, prog_name: str = "backfill") -> list[str]:
    """Every command and group has help; every command's help ends with an `Example:`
    block that shows the command and that click prints line by line (a `\\b` line before
    `Example:` stops click from rewrapping it); every option has help text."""
    problems = []
    for ctx, command in iter_commands(group, prog_name):
        path = ctx.command_path
        if not (command.help or "").strip():
            problems.append(f"{path}: has no help text (docstring)")
            continue
        if not isinstance(command, click.Group):
            problems.extend(_example_problems(ctx, command))
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and not param.hidden and not param.help:
                problems.append(f"{path}: option {param.opts[0]} has no help text")
    return problems


def _example_problems(ctx: click.Context, command: click.Command) -> list[str]:
    path = ctx.command_path
    example = example_block(command.help or "")
    if example is None:
        return [f"{path}: docstring does not end with an `Example:` block"]
    subcommand = path.split(" ", 1)[-1]
    if not any(subcommand in line for line in example):
        return [f"{path}: the `Example:` block never shows `{subcommand}`"]
    printed = command.get_help(ctx).splitlines()
    if not any(re.fullmatch(r"Examples?:", line.strip()) for line in printed):
        return [f"{path}: click rewraps the `Example:` block; put a `\\b` line before it"]
    return []
