"""Jupyter notebooks (.ipynb): the cells' sources and their text outputs, never the images.

A notebook is JSON whose outputs can hold megabytes of base64 pictures; indexing the file as
text would bury the prose and code under them. Each cell becomes one section, its page being
the cell's number, with ``Cell N (markdown)`` or ``Cell N (code)`` on top; a code cell's
printed output, result and error follow under ``Output:``. Format 4 keeps cells in "cells",
format 3 in "worksheets"; both are read.
"""

from __future__ import annotations

import json
import re

from desktop.extract.model import Document, ExtractionError, Section, Skipped, tidy
from desktop.extract.text import decode_text

MAX_OUTPUT_CHARS = 100_000  # per cell: a printed table of a million numbers is not prose
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_DATA_URI = re.compile(r"data:[\w/+.-]*(?:;[\w=.-]+)*;base64,[A-Za-z0-9+/=]+")  # pasted images
_CELL_TYPES = {"markdown": "markdown", "heading": "markdown", "code": "code", "raw": "raw"}


def _joined(value: object) -> str:
    """A notebook string, stored either whole or as a list of lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(item for item in value if isinstance(item, str))
    return ""


def _terminal(text: str) -> str:
    """Printed text as a terminal would leave it: colours dropped and, for progress bars
    redrawn with a carriage return, only the last state of each line."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _output_text(output: dict) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return _terminal(_joined(output.get("text")))
    if kind in ("error", "pyerr"):
        name, value = str(output.get("ename") or ""), str(output.get("evalue") or "")
        return f"{name}: {value}" if value else name
    if kind in ("execute_result", "display_data", "pyout", "update_display_data"):
        data = output.get("data")
        if isinstance(data, dict):  # format 4: a MIME bundle
            return _terminal(_joined(data.get("text/plain")))
        return _terminal(_joined(output.get("text")))  # format 3: text beside png, html...
    return ""


def _cell_text(cell: dict, number: int) -> str | None:
    kind = _CELL_TYPES.get(str(cell.get("cell_type")), str(cell.get("cell_type") or "cell"))
    source = _joined(cell.get("source", cell.get("input")))  # format 3's code is in "input"
    outputs: list[str] = []
    if kind == "code" and isinstance(cell.get("outputs"), list):
        outputs = [text for text in (_output_text(o) for o in cell["outputs"]
                                     if isinstance(o, dict)) if text.strip()]
    if not source.strip() and not outputs:
        return None
    parts = [f"Cell {number} ({kind})", source.strip("\n")]
    if outputs:
        printed = "\n".join(text.strip("\n") for text in outputs)
        if len(printed) > MAX_OUTPUT_CHARS:
            printed = printed[:MAX_OUTPUT_CHARS] + "\n(output cut)"
        parts += ["Output:", printed]
    return tidy(_DATA_URI.sub("[image]", "\n".join(parts)))


def _cells(notebook: object) -> list:
    if not isinstance(notebook, dict):
        raise ExtractionError("corrupt notebook: not a Jupyter notebook")
    cells = notebook.get("cells")
    if isinstance(cells, list):
        return cells
    worksheets = notebook.get("worksheets")
    if isinstance(worksheets, list):
        found: list = []
        for sheet in worksheets:
            if isinstance(sheet, dict) and isinstance(sheet.get("cells"), list):
                found.extend(sheet["cells"])
        return found
    raise ExtractionError("corrupt notebook: no cells (not a Jupyter notebook)")


def extract_ipynb(data: bytes) -> Document:
    """A notebook as one section per cell with words, page = the cell's 1-based number."""
    text, _ = decode_text(data)
    if not text.strip():
        raise Skipped("no text")
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExtractionError(f"corrupt notebook: invalid JSON (line {exc.lineno}: "
                              f"{exc.msg})") from exc
    except RecursionError as exc:
        raise ExtractionError("corrupt notebook: JSON nested too deeply") from exc
    sections = []
    for number, cell in enumerate(_cells(notebook), start=1):
        body = _cell_text(cell, number) if isinstance(cell, dict) else None
        if body:
            sections.append(Section(text=body, page=number))
    if not sections:
        raise Skipped("no text")
    return Document(kind="notebook", sections=sections)
