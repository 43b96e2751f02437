"""EPUB e-books read from the zip itself: container, package document, spine, chapters.

An EPUB is a zip of XHTML chapters plus an OPF "package document" listing them; its spine
gives the reading order and its table of contents (the EPUB 2 NCX or the EPUB 3 nav document)
gives the chapters' titles. Each spine item becomes one section, its page being its position
in the spine, so a hit can be shown as "Chapter 7". Parsing is our own: the common EPUB
library (EbookLib) is AGPL, which this MIT application cannot ship.
"""

from __future__ import annotations

import codecs
import posixpath
import re
import zipfile
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

from desktop.extract.archive import open_zip, read_part
from desktop.extract.html import html_to_text
from desktop.extract.model import Document, ExtractionError, Section, Skipped
from desktop.extract.text import decode_text, looks_binary, normalise_newlines

LABEL = "EPUB"
_CONTAINER = "META-INF/container.xml"
_ENCRYPTION = "META-INF/encryption.xml"
_OPF_TYPE = "application/oebps-package+xml"
_NCX_TYPE = "application/x-dtbncx+xml"
_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html", "text/x-oeb1-document"})
_HTML_SUFFIXES = (".xhtml", ".html", ".htm", ".xml")
# Font obfuscation (IDPF's or Adobe's, listed in encryption.xml too) is not DRM.
_FONT_SUFFIXES = (".ttf", ".otf", ".woff", ".woff2", ".eot", ".pfb", ".pfm", ".afm")
_XML_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")
_HEAD = re.compile(r"<head\b.*?</head\s*>", re.I | re.S)
_SPACES = re.compile(r"\s+")
# expat's errors, and LookupError for an unknown encoding in the XML declaration
_XML_ERRORS = (ElementTree.ParseError, LookupError, ValueError)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def _local(tag: object) -> str:
    """An element's name without its namespace ('' for comments and processing instructions)."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


class _Names:
    """Zip member names looked up as written, else ignoring case and backslashes (EPUBs made
    on Windows or by hand do not always match their own manifest)."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.exact = set(archive.NameToInfo)
        self.folded: dict[str, str] = {}
        for name in archive.NameToInfo:
            self.folded.setdefault(name.replace("\\", "/").lower(), name)

    def find(self, path: str) -> str | None:
        if path in self.exact:
            return path
        return self.folded.get(path.lower())


def _parse_xml(data: bytes, what: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(data)
    except _XML_ERRORS as exc:
        raise ExtractionError(f"corrupt {LABEL}: malformed {what} ({str(exc)[:80]})") from exc


def _resolve(base_dir: str, href: str) -> str:
    """A manifest or TOC href (relative, URL-escaped, maybe with a #fragment) as a zip path."""
    path = unquote(urlsplit(href.strip()).path)
    joined = posixpath.normpath(posixpath.join(base_dir, path)) if base_dir else path
    return joined.lstrip("/") if joined != "." else ""


def _read(archive: zipfile.ZipFile, names: _Names, path: str) -> bytes | None:
    name = names.find(path)
    if name is None:
        return None
    return read_part(archive, name, LABEL)


def _check_drm(archive: zipfile.ZipFile, names: _Names) -> None:
    """ExtractionError when META-INF/encryption.xml encrypts anything but fonts."""
    raw = _read(archive, names, _ENCRYPTION)
    if raw is None:
        return
    try:
        root = ElementTree.fromstring(raw)
    except _XML_ERRORS:
        return  # unreadable: the chapters themselves show whether they are scrambled
    for data in (el for el in root.iter() if _local(el.tag) == "EncryptedData"):
        uris = [el.get("URI") or "" for el in data.iter() if _local(el.tag) == "CipherReference"]
        for uri in uris:
            path = _resolve("", uri).lower()
            if path.endswith(_FONT_SUFFIXES) or path.startswith("meta-inf/"):
                continue  # obfuscated or encrypted fonts hide no words
            raise ExtractionError("encrypted EPUB (DRM)")


def _package_path(archive: zipfile.ZipFile, names: _Names) -> str:
    """The OPF named by META-INF/container.xml, else the archive's only (or first) .opf."""
    raw = _read(archive, names, _CONTAINER)
    if raw is not None:
        try:
            root = ElementTree.fromstring(raw)
        except _XML_ERRORS:
            root = None
        if root is not None:
            rootfiles = [el for el in root.iter() if _local(el.tag) == "rootfile"]
            rootfiles.sort(key=lambda el: (el.get("media-type") or _OPF_TYPE) != _OPF_TYPE)
            for el in rootfiles:
                path = _resolve("", el.get("full-path") or "")
                found = names.find(path) if path else None
                if found:
                    return found
    opfs = sorted(name for name in archive.NameToInfo if name.lower().endswith(".opf"))
    if not opfs:
        raise ExtractionError(f"corrupt {LABEL}: no package document (OPF)")
    return opfs[0]


class _Package:
    """What the OPF says: the manifest, the spine's order and where the tables of contents
    are."""

    def __init__(self, root: ElementTree.Element, base_dir: str) -> None:
        self.items: dict[str, tuple[str, str, str]] = {}  # id -> (path, media type, properties)
        self.order: list[str] = []  # manifest ids in document order
        self.spine: list[str] = []  # paths in reading order
        self.ncx: str | None = None
        self.nav: str | None = None
        spine_toc = ""
        for el in root.iter():
            name = _local(el.tag)
            if name == "item":
                item_id, href = el.get("id") or "", el.get("href") or ""
                if not href:
                    continue
                path = _resolve(base_dir, href)
                media = (el.get("media-type") or "").strip().lower()
                props = el.get("properties") or ""
                self.items.setdefault(item_id, (path, media, props))
                self.order.append(item_id)
                if "nav" in props.split() and self.nav is None:
                    self.nav = path
            elif name == "spine":
                spine_toc = el.get("toc") or ""
        for el in root.iter():
            if _local(el.tag) == "itemref":
                item = self.items.get(el.get("idref") or "")
                if item is not None:
                    self.spine.append(item[0])
        if not self.spine:  # no usable spine: the manifest's documents in their listed order
            self.spine = [self.items[i][0] for i in self.order if _is_html(*self.items[i][:2])]
        if spine_toc in self.items:
            self.ncx = self.items[spine_toc][0]
        else:
            self.ncx = next((path for path, media, _ in self.items.values()
                             if media == _NCX_TYPE), None)
        self.media = {path: media for path, media, _ in self.items.values()}


def _is_html(path: str, media: str) -> bool:
    if media:
        return media in _HTML_TYPES
    return path.lower().endswith(_HTML_SUFFIXES)


def _ncx_titles(raw: bytes, base_dir: str) -> list[tuple[str, str]]:
    """(chapter path, title) pairs from an EPUB 2 NCX, in its order."""
    try:
        root = ElementTree.fromstring(raw)
    except _XML_ERRORS:
        return []
    pairs: list[tuple[str, str]] = []
    for point in (el for el in root.iter() if _local(el.tag) == "navPoint"):
        title, src = "", ""
        for child in point:
            name = _local(child.tag)
            if name == "navLabel" and not title:
                title = _one_line(" ".join(
                    "".join(t.itertext()) for t in child.iter() if _local(t.tag) == "text"))
            elif name == "content" and not src:
                src = child.get("src") or ""
        if title and src:
            pairs.append((_resolve(base_dir, src), title))
    return pairs


class _NavLinks(HTMLParser):
    """The links of an EPUB 3 nav document's <nav>s, kept per nav, the toc one marked.

    HTMLParser rather than an XML parser: nav documents with HTML entities such as &nbsp; are
    common and not well-formed XML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.navs: list[tuple[bool, list[tuple[str, str]]]] = []
        self._nav_depth = 0
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "nav":
            if self._nav_depth == 0:
                kinds = " ".join(v or "" for k, v in attrs if k.endswith("type")).split()
                self.navs.append(("toc" in kinds, []))
            self._nav_depth += 1
        elif tag == "a" and self._nav_depth:
            self._href = next((v for k, v in attrs if k == "href" and v), None)
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav" and self._nav_depth:
            self._nav_depth -= 1
        elif tag == "a" and self._href is not None:
            title = _one_line("".join(self._text))
            if title and self.navs:
                self.navs[-1][1].append((self._href, title))
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)


def _nav_titles(raw: bytes, base_dir: str) -> list[tuple[str, str]]:
    parser = _NavLinks()
    try:
        parser.feed(_decode(raw))
        parser.close()
    except Exception:  # a broken nav only costs the titles
        return []
    tocs = ([links for is_toc, links in parser.navs if is_toc]
            or [links for _, links in parser.navs])
    if not tocs:
        return []
    return [(_resolve(base_dir, href), title) for href, title in tocs[0]]


class _FirstHeading(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.heading: str | None = None
        self._inside = 0
        self._skip = 0
        self._parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _HEADINGS and self.heading is None:
            self._inside += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _HEADINGS and self._inside:
            self._inside -= 1
            if not self._inside:
                text = _one_line("".join(self._parts))
                self._parts = []
                if text:
                    self.heading = text

    def handle_data(self, data: str) -> None:
        if self._inside and not self._skip and self.heading is None:
            self._parts.append(data)


def _first_heading(html: str) -> str | None:
    parser = _FirstHeading()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        return None
    return parser.heading


def _decode(raw: bytes) -> str:
    """A chapter's text: BOM or UTF-8 as usual, else the XML declaration's encoding."""
    text, encoding = decode_text(raw)
    if encoding in ("cp1252", "latin-1"):
        match = _XML_DECLARED.match(raw[:1024])
        if match:
            try:
                declared = codecs.lookup(match.group(1).decode("ascii")).name
                text = normalise_newlines(raw.decode(declared))
            except (LookupError, UnicodeDecodeError, UnicodeError):
                pass
    return text


def _chapter(html: str, title: str | None, number: int) -> str | None:
    """The section text of one spine item, or None when it has no words."""
    body = html_to_text(_HEAD.sub("", html))  # <head><title> repeats the book's title
    if not body.strip():
        return None
    title = title or _first_heading(html)
    header = f"Chapter {number}: {title}" if title else f"Chapter {number}"
    return f"{header}\n\n{body}"


def epub_sections(data: bytes) -> list[Section]:
    with open_zip(data, LABEL) as archive:
        names = _Names(archive)
        _check_drm(archive, names)
        opf_path = _package_path(archive, names)
        raw_opf = _read(archive, names, opf_path)
        if raw_opf is None:
            raise ExtractionError(f"corrupt {LABEL}: no package document (OPF)")
        package = _Package(_parse_xml(raw_opf, "package document"), posixpath.dirname(opf_path))
        titles: dict[str, str] = {}
        sources = ((package.nav, _nav_titles), (package.ncx, _ncx_titles))
        for toc_path, reader in sources:
            raw_toc = _read(archive, names, toc_path) if toc_path else None
            if raw_toc is None or toc_path is None:
                continue
            for path, title in reader(raw_toc, posixpath.dirname(toc_path)):
                titles.setdefault(path.lower(), title)
        sections: list[Section] = []
        scrambled = 0
        for number, path in enumerate(package.spine, start=1):
            if not _is_html(path, package.media.get(path, "")):
                continue  # an image or SVG page: no words to index
            raw = _read(archive, names, path)
            if raw is None:
                continue  # listed but missing: the rest of the book is still worth having
            html = _decode(raw)
            if looks_binary(raw, html):
                scrambled += 1  # encrypted without saying so, or damaged
                continue
            text = _chapter(html, titles.get(path.lower()), number)
            if text is not None:
                sections.append(Section(text=text, page=number))
        if not sections and scrambled:
            raise ExtractionError("encrypted EPUB (DRM)" if names.find(_ENCRYPTION)
                                  else f"corrupt {LABEL}: unreadable chapters")
        return sections


def extract_epub(data: bytes) -> Document:
    """An EPUB as one section per spine item with words, in reading order.

    Each section's page is the item's 1-based position in the spine and its text starts with
    ``Chapter N: <title>`` (the table of contents' title, else the first heading). Raises
    :class:`ExtractionError` for DRM-protected or damaged books and :class:`Skipped` for books
    without text (all images).
    """
    sections = epub_sections(data)
    if not sections:
        raise Skipped("no text")
    return Document(kind="epub", sections=sections)
