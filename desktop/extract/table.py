"""Delimited tables (.csv, .tsv) as one line of text per row, each value named by its column.

Read as a plain file, a CSV row is a string of bare values ("42,Paris,,3.5") whose meaning sits
in a header many lines away, so a search for "population of Paris" finds nothing. Each row is
therefore written as ``Row N: city: Paris; population: 2100000``, N being the record's number
in the file as a spreadsheet counts it (the header is row 1). Without a header a row reads
``Row N: a | b | c``.
"""

from __future__ import annotations

import csv
import io
import re

from desktop.extract.model import Document, ExtractionError, Section, Skipped
from desktop.extract.text import read_text

MAX_ROWS = 1_000_000
SNIFF_CHARS = 64 * 1024
MAX_FIELD = 2**31 - 1  # csv's limit is a C long: 32 bits on Windows
_SNIFF_DELIMITERS = ",;\t|"
_LINE_BREAKS = re.compile(r"\s*\n\s*")
_NUMBER = re.compile(r"[-+]?[$€£¥]?\s*\d[\d,.' ]*%?([eE][-+]?\d+)?")


def _dialect(sample: str, delimiter: str | None) -> tuple[str, bool]:
    """(delimiter, skipinitialspace) for the sample; the quote character is always '"', as a
    sniffed one is more often an apostrophe in the text than a real quote."""
    cut = sample.rfind("\n")
    if cut > 0:
        sample = sample[:cut]  # a whole number of lines
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=delimiter or _SNIFF_DELIMITERS)
        return sniffed.delimiter, bool(sniffed.skipinitialspace)
    except csv.Error:
        return delimiter or ",", False


def _is_number(value: str) -> bool:
    return bool(_NUMBER.fullmatch(value.strip()))


def _has_header(first: list[str], sample: str) -> bool:
    """A first row of distinct, non-empty, non-numeric names is a header; else csv's own
    guess (types and lengths of the columns below it) decides."""
    cells = [cell.strip() for cell in first]
    if len(cells) > 1 and all(cells) and len(set(cells)) == len(cells) \
            and not any(_is_number(cell) for cell in cells) and max(map(len, cells)) <= 200:
        return True
    if any(_is_number(cell) for cell in cells):
        return False
    try:
        return csv.Sniffer().has_header(sample)
    except csv.Error:
        return False


def _clean(value: str) -> str:
    return _LINE_BREAKS.sub(" ", value).strip()


def _row_line(number: int, values: list[str], header: list[str] | None) -> str:
    if header is None:
        return f"Row {number}: " + " | ".join(values)
    named = [f"{header[i] if i < len(header) else f'Column {i + 1}'}: {value}"
             for i, value in enumerate(values) if value]
    return f"Row {number}: " + "; ".join(named)


def _raise_field_limit(size: int) -> None:
    """csv refuses fields over 128 KB; a field cannot be longer than the file it is in."""
    if csv.field_size_limit() < size:
        csv.field_size_limit(min(size, MAX_FIELD))


def table_lines(text: str, delimiter: str | None = None) -> list[str]:
    """The table's rows as text lines (see the module's description)."""
    sep, skip_space = _dialect(text[:SNIFF_CHARS], delimiter)
    _raise_field_limit(len(text) + 1)
    reader = csv.reader(io.StringIO(text), delimiter=sep, quotechar='"', doublequote=True,
                        skipinitialspace=skip_space, strict=False)
    lines: list[str] = []
    header: list[str] | None = None
    first: tuple[int, list[str]] | None = None  # the first row, until the second shows
    number = 0                                    # whether it names the columns
    decided = False
    try:
        for row in reader:
            number += 1
            values = [_clean(value) for value in row]
            if not any(values):
                continue
            if number > MAX_ROWS:
                lines.append(f"(table cut at {MAX_ROWS:,} rows: the rest was not indexed)")
                break
            if not decided:
                if first is None:
                    first = (number, values)
                    continue
                decided = True
                if _has_header(first[1], text[:SNIFF_CHARS]):
                    header = [value or f"Column {i}" for i, value in enumerate(first[1], 1)]
                    lines.append("Columns: " + " | ".join(header))
                else:
                    lines.append(_row_line(*first, None))
            lines.append(_row_line(number, values, header))
        if not decided and first is not None:  # a one-row table: values, not names
            lines.append(_row_line(*first, None))
    except csv.Error as exc:
        if not lines:
            raise ExtractionError(f"corrupt CSV: {str(exc)[:80]}") from exc
        lines.append(f"(table not read past row {number}: {str(exc)[:80]})")
    return lines


def extract_csv(data: bytes, delimiter: str | None = None) -> Document:
    """A .csv (delimiter sniffed) or .tsv (``delimiter="\\t"``) as one section."""
    text, encoding = read_text(data)
    lines = table_lines(text, delimiter)
    if not lines:
        raise Skipped("no text")
    return Document(kind="csv", sections=[Section(text="\n".join(lines), page=None)],
                    encoding=encoding)
