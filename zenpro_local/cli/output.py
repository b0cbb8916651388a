"""Printing API results: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import json
from typing import Any, Iterable


def print_object(item: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(item, indent=2, sort_keys=True))
        return
    width = max((len(key) for key in item), default=0)
    for key, value in item.items():
        print(f"{key:<{width}}  {_cell(value)}")


def print_table(items: list[dict], columns: Iterable[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(items, indent=2, sort_keys=True))
        return
    columns = tuple(columns)
    rows = [[_cell(item.get(column)) for column in columns] for item in items]
    widths = [
        max([len(column)] + [len(row[index]) for row in rows])
        for index, column in enumerate(columns)
    ]
    print("  ".join(column.upper().ljust(width) for column, width in zip(columns, widths)).rstrip())
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    first_line = text.splitlines()[0] if text else ""
    return first_line if len(first_line) <= 60 else first_line[:57] + "..."
