"""Markdown tables for reports and result files: one renderer instead of one per report."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Format = str | Callable[[Any], str] | None

_ALIGN = {"l": "---", "r": "---:", "c": ":---:"}
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _escape(text: str) -> str:
    """``text`` fit for one cell: ``|`` escaped (an already escaped ``\\|`` is kept), line breaks as spaces."""
    return _UNESCAPED_PIPE.sub(r"\\|", text.replace("\r\n", " ").replace("\n", " "))


def markdown_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    align: str | Sequence[str] | None = None,
    *,
    formats: Sequence[Format] | Mapping[int | str, Format] | None = None,
    float_format: str | None = None,
    missing: str = "-",
) -> str:
    """A GitHub-flavoured markdown table, as lines joined by ``\\n`` (no trailing newline).

    ``headers`` names the columns; each row of ``rows`` has one value per column. ``align`` gives one letter
    per column, ``l`` (``---``), ``r`` (``---:``) or ``c`` (``:---:``), as a string (``"llrr"``) or a
    sequence; ``None`` leaves every column with a plain ``---``.

    A cell is written as follows: ``None`` becomes ``missing`` (a dash by default); otherwise the column's
    entry of ``formats`` (a sequence with one entry per column, or a mapping from column index or header to
    an entry) is a format spec for :func:`format` (``".3f"``, ``","``) or a callable returning the text;
    without one, a float is written with ``float_format`` (``str`` where that is ``None``) and any other
    value with ``str``. Then ``|`` in the text is escaped as ``\\|`` (pipes already escaped stay as they are,
    also inside code spans, where GitHub needs the escape too) and line breaks become spaces; headers are
    escaped the same way.

    >>> print(markdown_table(["arch", "acc."], [["a|b", 93.456], ["c", None]], "lr", formats={"acc.": ".2f"}))
    | arch | acc. |
    | --- | ---: |
    | a\\|b | 93.46 |
    | c | - |
    """
    n = len(headers)
    if align is None:
        align = "l" * n
    if len(align) != n or any(a not in _ALIGN for a in align):
        raise ValueError(f"align needs one of {sorted(_ALIGN)} for each of the {n} columns, got {align!r}")
    if formats is None:
        per_column: list[Format] = [None] * n
    elif isinstance(formats, Mapping):
        unknown = [k for k in formats if not (k in headers or (isinstance(k, int) and 0 <= k < n))]
        if unknown:
            raise ValueError(f"formats names no column: {unknown}")
        per_column = [formats.get(i, formats.get(h)) for i, h in enumerate(headers)]
    else:
        if len(formats) != n:
            raise ValueError(f"formats has {len(formats)} entries for {n} columns")
        per_column = list(formats)

    def cell(value: Any, fmt: Format) -> str:
        if value is None:
            text = missing
        elif callable(fmt):
            text = fmt(value)
        elif fmt is not None:
            text = format(value, fmt)
        elif isinstance(value, float) and float_format is not None:
            text = format(value, float_format)
        else:
            text = str(value)
        return _escape(text)

    lines = ["| " + " | ".join(_escape(str(h)) for h in headers) + " |",
             "| " + " | ".join(_ALIGN[a] for a in align) + " |"]
    for i, row in enumerate(rows):
        if len(row) != n:
            raise ValueError(f"row {i} has {len(row)} cells for {n} columns: {row!r}")
        lines.append("| " + " | ".join(cell(v, f) for v, f in zip(row, per_column)) + " |")
    return "\n".join(lines)
