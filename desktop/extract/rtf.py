"""Rich Text Format (.rtf) as plain text, with the small pure-Python `striprtf` (BSD).

RTF is 7-bit text: other characters arrive as escapes (\\'e9 in the document's code page,
\\u8364 for Unicode), so the bytes are read as Windows-1252 (Latin-1 where 1252 leaves a byte
undefined) and striprtf turns the escapes into characters. A few writers put raw UTF-8 in the
file instead; bytes that are valid UTF-8 and not plain ASCII are read as UTF-8.
"""

from __future__ import annotations

import re

from striprtf.striprtf import font_table_group, rtf_to_text

from desktop.extract.model import Document, ExtractionError, Section, Skipped, tidy
from desktop.extract.text import normalise_newlines

_MAGIC = b"{\\rtf"
# striprtf appends each hyperlink's URL with a regular expression that backtracks without bound
# on a long line of unclosed fields (minutes for 200 KB). Renaming \fldinst to \fldtype, another
# destination striprtf skips, keeps the text the same, minus the URLs, and the time linear.
_FIELD_INSTRUCTION = re.compile(r"\\fldinst(?![A-Za-z])")
_UNICODE_ESCAPE = re.compile(r"\\u(-?\d{1,10})")  # as striprtf reads them
_SURROGATE = re.compile("[\ud800-\udfff]")
# Its font-table expression is quadratic too on a line of fonts without \fcharset: each font
# entry is put on a line of its own (newlines mean nothing in RTF), which bounds the scan.
_FONT_ENTRY = re.compile(r"(?<!\\)(?=\{|\\f\d)")


def _sane_unicode(match: re.Match[str]) -> str:
    """A \\uN escape out of range (which would stop striprtf) as U+FFFD."""
    return match.group(0) if -32768 <= int(match.group(1)) <= 0x10FFFF else "\\u65533"


def _font_entries_on_lines(text: str) -> str:
    table = font_table_group(text)
    if not table or "\\bin" in table:  # binary data must keep its length
        return text
    start = text.find(table)
    return text[:start] + _FONT_ENTRY.sub("\n", table) + text[start + len(table):]


def _decode(data: bytes) -> tuple[str, str]:
    if not data.isascii():
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _join_surrogates(text: str) -> str:
    """striprtf turns each \\u escape into one character; characters outside the BMP arrive as
    two escapes (a UTF-16 surrogate pair), joined here; a lone half becomes U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def rtf_text(data: bytes) -> tuple[str, str]:
    """The document's text and the codec its bytes were read with."""
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not start.startswith(_MAGIC):
        raise ExtractionError("corrupt RTF: no {\\rtf header (not an RTF file)")
    text, encoding = _decode(start)
    text = _FIELD_INSTRUCTION.sub(r"\\fldtype", text)
    text = _UNICODE_ESCAPE.sub(_sane_unicode, text)
    text = _font_entries_on_lines(text)
    try:
        plain = rtf_to_text(text, errors="replace")
    except (ValueError, IndexError, LookupError) as exc:  # e.g. a \bin without its length
        raise ExtractionError(f"corrupt RTF: {type(exc).__name__}") from exc
    plain = _join_surrogates(normalise_newlines(plain)).replace("\xa0", " ").replace("\xad", "")
    return tidy(plain), encoding


def extract_rtf(data: bytes) -> Document:
    """An RTF document as one section; one without words is skipped."""
    text, encoding = rtf_text(data)
    if not text.strip():
        raise Skipped("no text")
    return Document(kind="rtf", sections=[Section(text=text, page=None)], encoding=encoding)
