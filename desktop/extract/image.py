"""Photos and scans of text (.png, .jpg, .tiff, .webp, .bmp), read by OCR (desktop.extract.ocr).

Only when the person asks for it (Settings, `--ocr-images`): most images in a Documents folder
are photos, and reading each takes seconds. A multi-page TIFF gives one section per page.
"""

from __future__ import annotations

from collections.abc import Callable

from desktop.extract.model import Document, ExtractionError, Pages, Section, Skipped


def extract_image(data: bytes, progress: Callable[[Pages], None] | None = None) -> Document:
    """The text OCR reads in an image, with its lines' places (Section.ocr)."""
    from desktop.extract import ocr

    missing = ocr.available()
    if missing:
        raise ExtractionError(f"cannot read text in images: {missing}")
    def frame_read(done: int, total: int, seconds: float) -> None:
        if progress is not None:
            progress(Pages(done, total, seconds))

    try:
        pages = ocr.read_image_frames(data, progress=frame_read)
    except ocr.OcrUnavailable as exc:
        raise ExtractionError(f"cannot read text in images: {exc}") from exc
    except ValueError as exc:
        reason = str(exc)
        if reason.startswith("too large"):
            raise Skipped(reason) from exc
        raise ExtractionError(reason if reason.startswith("corrupt") else
                              f"corrupt image: {reason}") from exc
    several = len(pages) > 1
    sections = [Section(text=page.text, page=n + 1 if several else None, ocr=page.lines)
                for n, page in enumerate(pages) if page.text.strip()]
    if not sections:
        raise Skipped("no text found in the image")
    return Document(kind="image", sections=sections)
