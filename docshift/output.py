"""Tables that stay readable in any terminal: a table when it fits the width, else one record per block.

Nothing is ever cut: a table is drawn only at its natural width, and a block puts each value whole on a line (a run
id that `docshift rollback --run` needs, a flow-run id, a file path), so an 80-column terminal shows all of it.
"""

import base64
from collections.abc import Callable
from typing import Any

from bson import Binary
from bson.binary import UUID_SUBTYPE

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

SEPARATOR = "   "
INDENT = "  "


def print_records(console: Console, title: str, rows: list[dict[str, str]],
                  heading: Callable[[dict[str, str]], tuple[str, set[str]]]) -> None:
    """`rows` (column -> text, in column order) as a table if it fits the console, else as blocks: the line
    `heading(row)` returns, then the row's other non-empty columns as `column value` pairs, packed into lines."""
    table = Table(title=title)
    for column in (rows[0] if rows else {}):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*row.values())
    natural = Measurement.get(console, console.options.update(max_width=1_000_000), table).maximum
    if not rows or natural <= console.width:
        console.print(table)
        return
    console.print(title, markup=False, highlight=False)
    for row in rows:
        line, covered = heading(row)
        console.print(line, markup=False, highlight=False)
        pairs = [f"{column} {value}" for column, value in row.items() if column not in covered and value not in ("", None)]
        for packed in pack(pairs, console.width - len(INDENT)):
            console.print(INDENT + packed, markup=False, highlight=False)


def pack(items: list[str], width: int) -> list[str]:
    """Items joined into lines of at most `width` characters; an item longer than that gets a line of its own."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(SEPARATOR) + len(item) <= width:
            lines[-1] += SEPARATOR + item
        else:
            lines.append(item)
    return lines


def size(nbytes: int) -> str:
    """Bytes in the unit people read: 362.1 MB, 26.0 kB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes} bytes"


class _Shell:
    """A value that prints as the MongoDB shell writes it."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def shell(value: Any) -> Any:
    """`value` with each Binary in it printing as mongosh writes it (`UUID("…")` for a UUID,
    `Binary.createFromBase64("…", subtype)` otherwise) instead of Python's raw bytes; `str()` or `repr()` of the
    result is what a person can paste into a shell. Other values are left as they print today."""
    if isinstance(value, Binary):
        if value.subtype == UUID_SUBTYPE and len(value) == 16:
            return _Shell(f'UUID("{value.as_uuid()}")')
        return _Shell(f'Binary.createFromBase64("{base64.b64encode(bytes(value)).decode()}", {value.subtype})')
    if isinstance(value, dict):
        return {k: shell(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shell(v) for v in value]
    return value


def shell_id(value: Any) -> str:
    """A document's `_id` as a line shows it: a string or an ObjectId as itself, a Binary as mongosh writes it."""
    return repr(shell(value)) if isinstance(value, Binary) else str(value)
