"""Reading text in pictures: scanned PDF pages and photos of text, on the CPU, offline.

RapidOCR (PaddleOCR's PP-OCRv6 detection and recognition models, run by ONNX Runtime) reads
the lines; PDFium (pypdfium2) renders a PDF's pages and Pillow opens images. The models ship
inside the rapidocr package and are named here by path, so nothing is ever downloaded. All of
it is imported on first use: a folder without scans never pays for it.

A page's text is its lines in reading order (rows top to bottom, left to right within a row),
one row a line; each :class:`OcrLine` keeps its span in that text and its box on the page (as
fractions of the page's width and height), so the window can highlight a passage on the scan.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DPI = 200  # PDF pages are rendered at this resolution for OCR: small print reads, fast enough
MAX_SIDE = 2500  # pixels: larger pages and photos are scaled down to this long side first
MAX_MEGAPIXELS = 150  # a larger image is not decoded at all (a decompression bomb, or a poster)
MAX_FRAMES = 200  # pages of a multi-page TIFF read at the most
MIN_SCORE = 0.5  # lines recognised with less confidence are dropped
# a page read with less confidence than this (over at least this many lines) may be sideways
# or upside down: it is read turned too, and the better reading kept
TURN_BELOW = 0.85
TURN_MIN_LINES = 3
_MODELS = {"det": "PP-OCRv6_det_small.onnx", "rec": "PP-OCRv6_rec_small.onnx",
           "cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx"}
_PACKAGES = {"rapidocr": "rapidocr", "onnxruntime": "onnxruntime", "pypdfium2": "pypdfium2",
             "PIL": "Pillow", "cv2": "opencv-python-headless"}


@dataclass(frozen=True)
class OcrLine:
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1: fractions of the page
    start: int  # its span in the page's text
    end: int
    score: float  # the recogniser's confidence, 0 to 1


@dataclass(frozen=True)
class OcrPage:
    text: str
    lines: tuple[OcrLine, ...]
    seconds: float


class OcrUnavailable(Exception):
    """The OCR engine cannot run here (a package or its models missing, or failing to load)."""


def _model_dir() -> Path | None:
    spec = find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def available() -> str | None:
    """None if OCR can run here; else why not, in a few words for the person."""
    missing = [pip for module, pip in _PACKAGES.items() if find_spec(module) is None]
    if missing:
        return f"OCR is not installed ({', '.join(missing)} missing)"
    models = _model_dir()
    absent = [name for name in _MODELS.values() if models is None or not (models / name).is_file()]
    if absent:
        return f"OCR models missing ({', '.join(absent)})"
    return None


_lock = threading.Lock()
_engine: Any = None


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def load() -> Any:
    """The RapidOCR engine, made once per process (loading its models takes a few seconds);
    raises OcrUnavailable."""
    global _engine
    with _lock:
        if _engine is not None:
            return _engine
        reason = available()
        if reason:
            raise OcrUnavailable(reason)
        models = _model_dir()
        assert models is not None
        for name in ("RapidOCR", "rapidocr"):  # its chatty logger: warnings and errors only
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            from rapidocr import RapidOCR

            _engine = RapidOCR(params={
                "Det.model_path": str(models / _MODELS["det"]),
                "Rec.model_path": str(models / _MODELS["rec"]),
                "Cls.model_path": str(models / _MODELS["cls"]),
                "Global.use_cls": False,  # upright lines: pages and photos of text
                "Global.log_level": "error",
                "Global.max_side_len": MAX_SIDE,
                "EngineConfig.onnxruntime.intra_op_num_threads": _threads(),
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })
        except Exception as exc:
            raise OcrUnavailable(f"the OCR engine failed to start: {type(exc).__name__}: "
                                 f"{exc}") from exc
        return _engine


def read_image(image: Any) -> OcrPage:
    """The text of a PIL image, read by OCR; a page scanned sideways or upside down is turned
    when the upright reading looks like one (each line's box stays on the image as given)."""
    engine = load()  # (its loading is not the page's time)
    started = time.perf_counter()
    image = _fit(_on_white(image))
    width, height = image.size
    if min(width, height) < 8:
        return OcrPage("", (), time.perf_counter() - started)
    found, confidence = _recognise(engine, image)
    best = _upright(found, confidence, image.size)
    turn = 0
    if len(found) >= TURN_MIN_LINES and best < TURN_BELOW:
        for angle in (180, 270, 90):  # upside down; turned left; turned right
            turned = image.rotate(angle, expand=True)
            candidate, confidence = _recognise(engine, turned)
            score = _upright(candidate, confidence, turned.size)
            if score > best + 0.05:
                found, best, turn = candidate, score, angle
            if best >= TURN_BELOW:
                break
    text, lines = _layout(found)  # in the order of the page turned the way up it reads
    if turn:
        lines = tuple(replace(line, box=_unturn(line.box, turn)) for line in lines)
    return OcrPage(text, lines, time.perf_counter() - started)


def _recognise(engine: Any, image: Any
               ) -> tuple[list[tuple[tuple[float, float, float, float], str, float]], float]:
    """The lines RapidOCR reads on an image, with their boxes as fractions of it, and its mean
    confidence over every character it read (low: the page is not the way up it reads)."""
    import numpy as np

    width, height = image.size
    pixels = np.asarray(image)[:, :, ::-1].copy()  # RGB to OpenCV's BGR
    result = engine(pixels)
    found = []
    weighted = chars = 0.0
    for quad, text, score in zip(result.boxes if result.boxes is not None else (),
                                 result.txts or (), result.scores or (), strict=False):
        text = " ".join(str(text).split())
        weighted += float(score) * len(text)
        chars += len(text)
        if not text or float(score) < MIN_SCORE:
            continue
        xs = [float(p[0]) for p in quad]
        ys = [float(p[1]) for p in quad]
        box = (max(0.0, min(xs) / width), max(0.0, min(ys) / height),
               min(1.0, max(xs) / width), min(1.0, max(ys) / height))
        found.append((box, text, float(score)))
    return found, (weighted / chars if chars else 0.0)


def _upright(found: Sequence[tuple[tuple[float, float, float, float], str, float]],
             confidence: float, size: tuple[int, int]) -> float:
    """How much a reading looks like an upright page: its confidence, less a half when most
    of its lines stand on end (a page turned sideways, whose lines OCR can read one by one but
    not in order)."""
    width, height = size
    tall = sum(1 for (x0, y0, x1, y1), _, _ in found
               if (y1 - y0) * height > 1.5 * (x1 - x0) * width)
    return confidence - (0.5 if found and tall > len(found) / 2 else 0.0)


def _unturn(box: tuple[float, float, float, float], angle: int
            ) -> tuple[float, float, float, float]:
    """A box found on the image turned by ``angle`` degrees (anticlockwise, as PIL turns it),
    as fractions of the image as it is."""
    x0, y0, x1, y1 = box
    if angle == 180:
        return 1 - x1, 1 - y1, 1 - x0, 1 - y0
    if angle == 90:  # a point (x, y) of the image went to (y, 1 - x)
        return 1 - y1, x0, 1 - y0, x1
    if angle == 270:  # (x, y) went to (1 - y, x)
        return y0, 1 - x1, y1, 1 - x0
    return box


def _on_white(image: Any) -> Any:
    """An RGB image, transparent parts white (as a viewer shows them: a PNG of black text on
    nothing would otherwise turn black on black)."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit scans: to 8 bits, not clipped
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _fit(image: Any) -> Any:
    from PIL import Image

    width, height = image.size
    scale = MAX_SIDE / max(width, height, 1)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def _layout(found: Sequence[tuple[tuple[float, float, float, float], str, float]]
            ) -> tuple[str, tuple[OcrLine, ...]]:
    """Lines in reading order: grouped into rows (boxes whose middles are within half a line's
    height of each other), rows top to bottom, boxes left to right; a row is a line of text."""
    rows: list[list[tuple[tuple[float, float, float, float], str, float]]] = []
    for item in sorted(found, key=lambda f: (f[0][1] + f[0][3]) / 2):
        box = item[0]
        middle, half = (box[1] + box[3]) / 2, (box[3] - box[1]) / 2
        if rows:
            last = rows[-1]
            y0 = sum(b[0][1] for b in last) / len(last)
            y1 = sum(b[0][3] for b in last) / len(last)
            if abs(middle - (y0 + y1) / 2) <= max(half, (y1 - y0) / 2) * 0.6:
                last.append(item)
                continue
        rows.append([item])
    parts: list[str] = []
    lines: list[OcrLine] = []
    offset = 0
    for r, row in enumerate(rows):
        if r:
            parts.append("\n")
            offset += 1
        for i, (box, text, score) in enumerate(sorted(row, key=lambda f: f[0][0])):
            if i:
                parts.append(" ")
                offset += 1
            parts.append(text)
            lines.append(OcrLine(text, box, offset, offset + len(text), score))
            offset += len(text)
    return "".join(parts), tuple(lines)


def _open_image(data: bytes) -> Any:
    """A PIL image of these bytes, refusing what would take too much memory to decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # Pillow's own limit, over twice ours
        raise ValueError(_too_large(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"corrupt image: {_why(exc)}") from exc
    width, height = image.size
    megapixels = width * height / 1e6
    if megapixels > MAX_MEGAPIXELS:
        raise ValueError(f"too large: {width:,} x {height:,} pixels ({megapixels:,.0f} "
                         f"megapixels; OCR reads images up to {MAX_MEGAPIXELS} megapixels)")
    return image


def _too_large(exc: BaseException) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)) / 1e6:,.0f} megapixels" if found else "too many pixels"
    return f"too large: {size} (OCR reads images up to {MAX_MEGAPIXELS} megapixels)"


def read_image_bytes(data: bytes) -> OcrPage:
    """The text of an image file's first frame."""
    pages = read_image_frames(data, max_frames=1)
    return pages[0] if pages else OcrPage("", (), 0.0)


def read_image_frames(data: bytes, progress: Callable[[int, int, float], None] | None = None,
                      max_frames: int = MAX_FRAMES) -> list[OcrPage]:
    """The text of each frame of an image file (the pages of a multi-page TIFF), read by OCR;
    ``progress(done, total, seconds)`` after each. Raises ValueError "corrupt image: ..." or
    "too large: ..." for what cannot be decoded."""
    from PIL import Image, ImageOps

    image = _open_image(data)
    total = min(getattr(image, "n_frames", 1) or 1, max_frames)
    pages: list[OcrPage] = []
    for index in range(total):
        try:
            image.seek(index)
            frame = ImageOps.exif_transpose(image)  # a phone's photo, the way up it was taken
            frame.load()
        except Image.DecompressionBombError as exc:
            raise ValueError(_too_large(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if pages:  # a truncated multi-page file: keep the pages before
                logger.debug("image frame %d unreadable: %s", index + 1, _why(exc))
                break
            raise ValueError(f"corrupt image: {_why(exc)}") from exc
        pages.append(read_image(frame))
        if progress is not None:
            progress(index + 1, total, pages[-1].seconds)
    return pages


def open_pdf(data: bytes) -> Any:
    """A PDFium document of these bytes (close it after). Raises ValueError with a reason."""
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise ValueError("encrypted PDF (needs a password)") from exc
        raise ValueError(f"corrupt PDF: {message}") from exc


def render_pdf_page(pdf: Any, index: int, dpi: int = DPI) -> Any:
    """Page ``index`` (0-based) of a PDFium document as a PIL image, at ``dpi`` but never over
    MAX_SIDE pixels on its long side."""
    page = pdf[index]
    try:
        width, height = page.get_size()  # points, 72 to the inch
        scale = min(dpi / 72, MAX_SIDE / max(width, height, 1.0))
        return page.render(scale=scale, grayscale=True).to_pil()
    finally:
        page.close()


def page_has_text_layer(pdf: Any, index: int) -> bool:
    """Whether PDFium finds any characters on page ``index`` (0-based)."""
    page = pdf[index]
    try:
        text = page.get_textpage()
        try:
            return text.count_chars() > 0
        finally:
            text.close()
    finally:
        page.close()


def read_pdf_page(pdf: Any, index: int, dpi: int = DPI) -> OcrPage:
    """Page ``index`` (0-based) of a PDFium document read by OCR."""
    started = time.perf_counter()
    page = read_image(render_pdf_page(pdf, index, dpi))
    return OcrPage(page.text, page.lines, time.perf_counter() - started)


def _why(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return message[:160] or type(exc).__name__
