"""How files are extracted: limits a person can change (Settings, config.json)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractSettings:
    # text extracted from one file, at most: a 45 MB log is rarely worth hours of embedding
    max_text_mb: float = 16.0
    timeout_s: float = 120.0  # one file's extraction, at most (PDF, Office, e-books, mail)
    ocr_pdfs: bool = True  # read PDF pages that have no text layer (scans) with OCR
    ocr_images: bool = False  # read photos and scans of text (.png, .jpg, .tiff, .webp)

    @property
    def max_text_chars(self) -> int:
        return int(self.max_text_mb * 1_000_000)
