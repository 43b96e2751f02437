"""Page-by-page PDF text, so search hits can point at the page they came from.

Real-world PDFs are often damaged, partly unreadable or "protected" by an owner password that
restricts nothing about reading; pypdf is used leniently so that as much text as possible is
recovered, and every failure is turned into a short reason a person can act on.
"""

from __future__ import annotations

import io
import logging
import time
import unicodedata
from collections.abc import Callable

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, PyPdfError

from desktop.extract.model import Document, ExtractionError, Pages, Section, Skipped

logger = logging.getLogger(__name__)

_MAX_CAUSE = 120
# a page with fewer letters than this has no text layer worth the name (a scan, perhaps with a
# page number or a scanner's stamp): read by OCR when that is on
MIN_TEXT_CHARS = 16


class _ToDebug(logging.Handler):
    """pypdf warns about every repaired defect; those are routine here, not user-facing."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger.debug("pypdf: %s", record.getMessage())
        except Exception:  # a malformed log call must never break extraction
            pass


def _quiet_pypdf() -> None:
    """pypdf's warnings about a damaged file go to our debug log, not to the person's terminal
    (done at the first extraction, not on import)."""
    pypdf_logger = logging.getLogger("pypdf")
    if not any(isinstance(h, _ToDebug) for h in pypdf_logger.handlers):
        pypdf_logger.addHandler(_ToDebug())
    pypdf_logger.propagate = False



def _cause(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    if not isinstance(exc, PyPdfError):
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    message = message or type(exc).__name__
    return message if len(message) <= _MAX_CAUSE else message[: _MAX_CAUSE - 3] + "..."


def _open(data: bytes) -> PdfReader:
    _quiet_pypdf()
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
    except DependencyError as exc:  # AES without the cryptography package
        raise ExtractionError(f"encrypted PDF (cannot decrypt: {_cause(exc)})") from exc
    except NotImplementedError as exc:
        if b"/Encrypt" in data:  # certificate security, DRM plug-ins, unknown crypt filters
            reason = f"encrypted PDF (unsupported encryption: {str(exc)[:80]})"
            raise ExtractionError(reason) from exc
        raise ExtractionError(f"corrupt PDF: {_cause(exc)}") from exc
    except Exception as exc:
        raise ExtractionError(f"corrupt PDF: {_cause(exc)}") from exc
    if reader.is_encrypted:
        _unlock(reader)
    return reader


def _unlock(reader: PdfReader) -> None:
    """Open with the empty user password, which works whenever only an owner password is set."""
    try:
        result = reader.decrypt("")
    except Exception as exc:  # DependencyError (no AES backend), unsupported algorithms, ...
        raise ExtractionError(f"encrypted PDF (cannot decrypt: {_cause(exc)})") from exc
    if result == PasswordType.NOT_DECRYPTED:
        raise ExtractionError("encrypted PDF (needs a password)")


def _clean(text: str) -> str:
    # NFKC turns ligatures and presentation forms ("ﬁ", full-width letters) into searchable text.
    text = unicodedata.normalize("NFKC", text.replace("\x00", ""))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def extract_pdf(data: bytes, ocr: bool = False,
                progress: Callable[[Pages], None] | None = None) -> Document:
    """One section per page that has text, numbered from 1 as in the file; with ``ocr``, the
    pages without a text layer (scans) are read by OCR (``progress`` hears of each)."""
    reader = _open(data)
    try:
        count = len(reader.pages)
    except Exception as exc:
        raise ExtractionError(f"corrupt PDF: {_cause(exc)}") from exc
    if count == 0:
        raise ExtractionError("corrupt PDF: no pages found")

    sections: list[Section] = []
    failures: list[BaseException] = []
    blank: list[int] = []  # pages without text: scans, for OCR
    for index in range(count):
        try:
            text = _clean(reader.pages[index].extract_text() or "")
        except Exception as exc:
            logger.debug("skipping unreadable page %d: %s", index + 1, _cause(exc))
            failures.append(exc)
            blank.append(index)
            continue
        if len("".join(text.split())) >= MIN_TEXT_CHARS:
            sections.append(Section(text=text, page=index + 1))
        else:
            blank.append(index)
            if text.strip():  # a page number or a scanner's stamp: kept unless OCR reads more
                sections.append(Section(text=text, page=index + 1))

    unread = None
    if blank and ocr:
        read, unread = _ocr_pages(data, blank, progress)
        if read:
            sections = [s for s in sections if s.page not in read] + list(read.values())
            sections.sort(key=lambda s: s.page or 0)
            failures = []
    if failures and len(failures) == count:
        raise ExtractionError(f"corrupt PDF: no page could be read ({_cause(failures[0])})")
    if not sections:
        if not ocr:
            raise Skipped("no text: a scanned PDF (reading scanned pages is off in Settings)")
        raise Skipped(f"no text: a scanned PDF ({unread})" if unread else
                      "no text (OCR found none on its pages)")
    return Document(kind="pdf", sections=sections)


def _ocr_pages(data: bytes, pages: list[int], progress: Callable[[Pages], None] | None
               ) -> tuple[dict[int, Section], str | None]:
    """The given pages (0-based) read by OCR, by page number; and why none could be, if so.
    A page OCR fails on is left out (logged); the engine missing leaves them all."""
    from desktop.extract import ocr

    reason = ocr.available()
    if reason:
        return {}, reason
    try:
        pdf = ocr.open_pdf(data)
    except ValueError as exc:  # PDFium cannot open what pypdf could: keep pypdf's text
        return {}, str(exc)
    read: dict[int, Section] = {}
    try:
        ocr.load()  # before the first page's clock starts
    except ocr.OcrUnavailable as exc:
        pdf.close()
        return read, str(exc)
    try:
        for n, index in enumerate(pages):
            started = time.monotonic()
            try:
                page = ocr.read_pdf_page(pdf, index)
            except ocr.OcrUnavailable as exc:
                return read, str(exc)
            except Exception as exc:  # one bad page must not lose the others
                logger.debug("OCR of page %d failed: %s", index + 1, _cause(exc))
                page = None
            if progress is not None:
                progress(Pages(n + 1, len(pages), time.monotonic() - started))
            if page is not None and page.text.strip():
                read[index + 1] = Section(text=page.text, page=index + 1, ocr=page.lines)
    finally:
        pdf.close()
    return read, None
