"""Scans and photos of text through the whole pipeline: OCR'd in the extraction child, embedded
by the starter model, stored with the lines' places, found by search, marked as OCR, shown in
the preview with the passage highlighted on the scan; and forgotten when the file goes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.engine import Engine
from desktop.extract.settings import ExtractSettings
from desktop.search.display import hit_json, location
from tests.fixtures.consistency import assert_index_matches_disk
from tests.fixtures.documents import image_bytes, make_pdf, scan_image, scanned_pdf_bytes

pytestmark = pytest.mark.usefixtures("starter_model")
ROOT = Path(__file__).resolve().parent.parent

SCAN_PAGE_1 = ["Invoice 2024-117 for the zebra enclosure",
               "Total due: 4,250 euros by the end of March",
               "The keeper asked for a second water trough"]
SCAN_PAGE_2 = ["Typed page of the same letter", "Nothing about animals on this one"]
PHOTO = ["Recipe for grandmother's plum dumplings",
         "Boil the potatoes and press them while warm",
         "Wrap each plum in dough with a cube of sugar"]
IMAGES_ON = ExtractSettings(ocr_images=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    docs = tmp_path_factory.mktemp("scans")
    (docs / "letter-scan.pdf").write_bytes(
        scanned_pdf_bytes([SCAN_PAGE_1, SCAN_PAGE_2], text_pages={2}))
    (docs / "recipe photo.jpg").write_bytes(
        image_bytes(scan_image(PHOTO, width=1600, height=900, mode="RGB"), "JPEG", quality=85))
    make_pdf(docs / "manual.pdf", ["The boiler pressure gauge should read one bar when cold."])
    return docs


@pytest.fixture(scope="module")
def engine(folder, tmp_path_factory):
    with Engine(tmp_path_factory.mktemp("data"), extraction=IMAGES_ON) as eng:
        problems = [p.problem for p in eng.index([str(folder)]) if p.problem]
        assert problems == []
        yield eng


def test_a_scanned_page_is_found_and_marked_as_read_by_ocr(engine, folder):
    hits = engine.search("invoice for the zebra enclosure", mode="semantic", k=3)
    top = hits[0]
    assert top.path == str(folder / "letter-scan.pdf") and top.page == 1
    assert top.ocr and top.ocr_lines and "zebra" in top.text
    assert location(top) == "p. 1, OCR"
    assert hit_json(top, "semantic")["ocr"] is True
    # the text page of the same file is not marked
    typed = engine.search("typed page of the same letter", mode="keyword", k=3)
    assert typed[0].page == 2 and not typed[0].ocr
    boiler = engine.search("boiler pressure gauge", mode="hybrid", k=1)[0]
    assert boiler.path.endswith("manual.pdf") and not boiler.ocr and boiler.ocr_lines is None


def test_a_photo_of_text_is_found_with_its_lines(engine, folder):
    top = engine.search("plum dumplings recipe", mode="hybrid", k=3)[0]
    assert top.path == str(folder / "recipe photo.jpg") and top.kind == "image"
    assert top.ocr and top.page is None and location(top) == "OCR"
    # each stored line: [start, end, x0, y0, x1, y1]; the passage's lines lie on the image
    covered = [ln for ln in top.ocr_lines if ln[0] < top.end and ln[1] > top.start]
    assert len(covered) == 3 and all(0 <= ln[2] < ln[4] <= 1 for ln in covered)


def test_the_index_matches_the_folder_and_forgets_a_deleted_scan(engine, folder):
    assert_index_matches_disk(engine, [str(folder)])
    scan = folder / "letter-scan.pdf"
    row = engine.store.file_rows()[str(scan)]
    assert engine.store.ocr_lines([(row.hash, 1)])
    data = scan.read_bytes()
    scan.unlink()
    try:
        list(engine.index([str(folder)]))
        engine.store.purge_orphans()
        assert str(scan) not in engine.store.file_rows()
        assert not engine.store.ocr_lines([(row.hash, 1)])
        assert all(h.path != str(scan) for h in engine.search("zebra invoice", k=5))
    finally:
        scan.write_bytes(data)
        list(engine.index([str(folder)]))


@pytest.mark.slow
def test_the_command_line_says_which_hits_were_read_by_ocr(engine, folder, tmp_path):
    data = tmp_path / "data"
    env = dict(os.environ, SEMDEX_DATA_DIR=str(data))
    run = [sys.executable, "-m", "desktop.cli"]
    proc = subprocess.run([*run, "index", "--ocr-images", str(folder)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([*run, "search", "--json", "-k", "2", "zebra enclosure invoice"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)["results"]
    assert hits[0]["path"].endswith("letter-scan.pdf") and hits[0]["ocr"] is True
    proc = subprocess.run([*run, "search", "-k", "1", "zebra enclosure invoice"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert "p. 1, OCR" in proc.stdout, proc.stdout


def test_turning_scanned_pages_on_reads_again_only_the_pdfs(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scan.pdf").write_bytes(scanned_pdf_bytes([SCAN_PAGE_1]))
    (docs / "note.txt").write_text("A note about the garden hose.\n", encoding="utf-8")
    (docs / "birds.csv").write_text("bird,seen\nkingfisher,river\n", encoding="utf-8")
    scan = str(docs / "scan.pdf")
    with Engine(tmp_path / "data", extraction=ExtractSettings(ocr_pdfs=False)) as engine:
        list(engine.index([str(docs)]))
        row = engine.store.file_rows()[scan]
        assert row.status == "skipped" and "reading scanned pages is off" in row.reason
    with Engine(tmp_path / "data") as engine:
        last = list(engine.index([str(docs)]))[-1]
        assert (last.files_total, last.files_unchanged) == (1, 2)  # the PDF alone
        assert engine.store.file_rows()[scan].status == "ok"
        assert engine.search("zebra enclosure invoice", k=1)[0].path == scan
        assert_index_matches_disk(engine, [str(docs)])
