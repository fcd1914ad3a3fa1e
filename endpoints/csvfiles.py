"""CSV files the dashboard hands out: cells a spreadsheet would run as a formula are
neutralised, and the file starts with a UTF-8 byte-order mark so Excel reads it as UTF-8."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

BOM = "\ufeff"
# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and
# Google Sheets: CSV injection (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    """``value`` as CSV text; a leading formula character is neutralised with a quote
    (shown in the cell, so the data stays readable and round-trips knowingly)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The file line by line (the BOM first), for a streaming response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([safe_cell(h) for h in header])
    yield BOM + flush()
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
        yield flush()


def csv_text(header: list[str], rows: Iterable[Iterable]) -> str:
    return "".join(csv_lines(header, rows))
