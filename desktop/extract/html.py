"""Readable text from saved web pages, using only the standard library's tolerant parser.

Markup, scripts and styles would drown the words in a search index, but dropping tags blindly
glues paragraphs and table cells together; block elements therefore become line breaks and
headings/paragraphs keep a blank line between them.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from desktop.extract.model import Document, Section, Skipped, tidy
from desktop.extract.text import normalise_newlines, read_text

_SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
_PARAGRAPH = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol",
        "dl", "figure", "section", "article", "header", "footer", "aside", "nav", "main",
        "address", "details", "fieldset", "form", "hr", "title",
    }
)  # fmt: skip
_LINE = frozenset(
    {
        "br", "div", "li", "dt", "dd", "tr", "caption", "figcaption", "summary", "legend",
        "option", "body", "html", "head",
    }
)  # fmt: skip
_CELL = frozenset({"td", "th"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "wbr"})
_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0

    def _at_line_start(self) -> bool:
        return not self.parts or self.parts[-1].endswith("\n")

    def _newlines(self, count: int) -> None:
        if self._skip_depth:
            return
        tail = "".join(self.parts[-2:])
        have = len(tail) - len(tail.rstrip("\n"))
        if self.parts and have < count:
            self.parts.append("\n" * (count - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip_depth += 1
            return
        if tag == "pre":
            self._pre_depth += 1
        self._block(tag)
        if tag in _CELL and not self._skip_depth and not self._at_line_start():
            self.parts.append("\t")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIP:  # <svg/> and friends have no content to skip
            self._block(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        if tag not in _VOID:
            self._block(tag)

    def _block(self, tag: str) -> None:
        if tag in _PARAGRAPH:
            self._newlines(2)
        elif tag in _LINE:
            self._newlines(1)

    def handle_data(self, data: str) -> None:
        if self._skip_depth or not data:
            return
        if self._pre_depth:
            self.parts.append(data)
            return
        text = _SPACES.sub(" ", data)
        if self._at_line_start() or self.parts[-1].endswith((" ", "\t")):
            text = text.lstrip(" ")
        if text:
            self.parts.append(text)


def html_to_text(html: str) -> str:
    """The visible text of an HTML document, with paragraphs kept as blank-line breaks."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return tidy("".join(collector.parts))


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    if not match:
        return None
    try:
        return codecs.lookup(match.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None


def extract_html(data: bytes) -> Document:
    """An HTML file as one section; a page with no visible text is skipped."""
    text, encoding = read_text(data)
    declared = _declared_charset(data)
    if encoding in ("cp1252", "latin-1") and declared and declared not in ("utf-8", encoding):
        # Not UTF-8 and not BOM-marked: trust the page's own <meta charset> over our guess.
        try:
            text, encoding = normalise_newlines(data.decode(declared)), declared
        except (UnicodeDecodeError, LookupError):
            pass
    body = html_to_text(text)
    if not body.strip():
        raise Skipped("no text")
    return Document(kind="html", sections=[Section(text=body, page=None)], encoding=encoding)
