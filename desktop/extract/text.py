"""Decoding of plain-text files, which carry no reliable declaration of their encoding.

Offsets in the returned text must map back to lines in the file, so decoding only strips a
byte-order mark and normalises newlines; nothing else is rewritten. Decoding never fails: a
search tool should show a slightly mis-decoded legacy file rather than drop it.
"""

from __future__ import annotations

import codecs

from desktop.extract.model import Document, Section, Skipped

SNIFF_BYTES = 8192
# Share of control characters (other than whitespace and ANSI escapes) above which a file
# that decoded cleanly is still treated as binary.
MAX_CONTROL_RATIO = 0.10

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v\x1b")


def _bom_encoding(data: bytes) -> tuple[str, int] | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def _bomless_utf16(data: bytes) -> str | None:
    """Recognise BOM-less UTF-16 of mostly-ASCII text by its pattern of zero bytes."""
    head = data[:SNIFF_BYTES]
    if len(head) < 4 or len(data) % 2:
        return None
    even, odd = head[0::2], head[1::2]
    even_zeros, odd_zeros = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_zeros > 0.9 and even_zeros < 0.05:
        return "utf-16-le"
    if even_zeros > 0.9 and odd_zeros < 0.05:
        return "utf-16-be"
    return None


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_raw(data: bytes) -> tuple[str, str]:
    bom = _bom_encoding(data)
    if bom is not None:
        encoding, skip = bom
        codec = "utf-8" if encoding == "utf-8-sig" else encoding
        return data[skip:].decode(codec, errors="replace"), encoding
    utf16 = _bomless_utf16(data)
    if utf16 is not None:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        # A file cut off mid-character (a log being written) is still UTF-8.
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data.decode("utf-8", errors="replace"), "utf-8"
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode file bytes to ``(text, encoding)``; never raises for any input.

    BOMs (UTF-8/16/32) win; then BOM-less UTF-16, strict UTF-8, cp1252, and latin-1, which
    decodes anything. The BOM is dropped and CRLF / lone CR become LF.
    """
    text, encoding = _decode_raw(data)
    return normalise_newlines(text), encoding


_DROP_CONTROLS = {c: None for c in [*range(0x20), *range(0x7F, 0xA0)]
                  if chr(c) not in _ALLOWED_CONTROLS}


def looks_binary(data: bytes, text: str) -> bool:
    """True for content that decoded but is not meant to be read as text."""
    if b"\x00" in data[:SNIFF_BYTES] and not _bom_encoding(data) and not _bomless_utf16(data):
        return True
    sample = text[:SNIFF_BYTES]
    if not sample:
        return False
    # Category Cc is exactly C0 (U+0000-U+001F), DEL and C1 (U+007F-U+009F); counting them
    # with str.translate keeps this a C-speed pass even for the largest text files.
    kept = sample.translate(_DROP_CONTROLS)
    controls = len(sample) - len(kept)
    return controls / len(sample) > MAX_CONTROL_RATIO


def read_text(data: bytes) -> tuple[str, str]:
    """Decode a text-like file for indexing, or raise :class:`Skipped` if it is not one."""
    if not data:
        raise Skipped("empty file")
    text, encoding = decode_text(data)
    if looks_binary(data, text):
        raise Skipped("binary content")
    if not text.strip():
        raise Skipped("empty file")
    return text, encoding


def extract_text(kind: str, data: bytes) -> Document:
    """A text, Markdown, reST or code file: one section holding the file's exact text."""
    text, encoding = read_text(data)
    return Document(kind=kind, sections=[Section(text=text, page=None)], encoding=encoding)
