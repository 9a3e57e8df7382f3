"""One way to print results: a table (or key/value grid) for people, JSON for scripts.

Every command that lists or shows something takes ``--json`` (:data:`JsonOption`) and prints through
:func:`show_rows` or :func:`show_doc`, so the text and the JSON say the same thing. Text cells are plain
``rich.text.Text`` with control characters escaped (:func:`report.safe`): a string from a guest, a
capabilities file or a platform never restyles the operator's terminal. JSON goes to stdout as one
document (``indent=2``, UTF-8 kept); an empty listing prints ``[]`` with ``--json``, and a note on stderr
without it (stdout stays empty, so ``airlock secrets list | wc -l`` counts secrets).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .report import safe

__all__ = ["Column", "JsonOption", "Row", "console", "print_json", "show_doc", "show_rows"]

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document instead of text.")]
"""The ``--json`` flag, spelled the same on every command."""

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    """A table column: its header, how a row's cell reads, and its style.

    ``text(row)`` defaults to ``str(row[key])`` (``""`` for ``None``); ``style(row)`` returns a rich style
    name or ``""``; ``limit`` cuts long cells (characters, with an ellipsis).
    """

    header: str
    key: str
    text: Callable[[Row], str] | None = None
    style: Callable[[Row], str] | None = None
    limit: int | None = None

    def cell(self, row: Row) -> Text:
        if self.text is not None:
            raw = self.text(row)
        else:
            value = row.get(self.key)
            raw = "" if value is None else str(value)
        return Text(safe(raw, self.limit), style=self.style(row) if self.style is not None else "")


def console() -> Console:
    """A stdout console that never highlights (guest text is shown as it is)."""
    return Console(highlight=False)


def print_json(doc: Any) -> None:
    """``doc`` as indented JSON on stdout."""
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def show_rows(rows: Sequence[Row], columns: Sequence[Column], *, as_json: bool, empty: str) -> None:
    """Print ``rows`` as a JSON array or as a table; ``empty`` goes to stderr when there are none."""
    if as_json:
        print_json(list(rows))
        return
    if not rows:
        typer.echo(empty, err=True)
        return
    table = Table(*(c.header for c in columns))
    for row in rows:
        table.add_row(*(c.cell(row) for c in columns))
    console().print(table)


def show_doc(doc: Any, *, as_json: bool, render: Callable[[Console, Any], None]) -> None:
    """Print one document as JSON, or with ``render`` (which only reads it)."""
    if as_json:
        print_json(doc)
    else:
        render(console(), doc)
