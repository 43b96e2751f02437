"""Every format of a real Documents folder, through the whole pipeline: extracted (the complex
ones in the extraction child), embedded by the starter model, stored, searched, and found at
their slide, sheet, chapter, message or cell; the old binary Office formats reported by name."""

from __future__ import annotations

import json
import os

import openpyxl
import pytest

from desktop.engine import Engine
from desktop.extract.settings import ExtractSettings
from desktop.search import Filters
from desktop.search.display import location
from tests.fixtures.consistency import assert_index_matches_disk
from tests.test_extract_more import make_epub, make_mail
from tests.test_extract_office import odf_bytes, paragraphs, pptx_bytes, shape

pytestmark = pytest.mark.usefixtures("starter_model")


def _workbook() -> bytes:
    import io

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Plants"
    sheet.append(["Plant", "Watering"])
    sheet.append(["Cactus", "once a month"])
    other = book.create_sheet("Garden tools")
    other.append(["Tool", "Where"])
    other.append(["Hedge trimmer", "in the shed behind the greenhouse"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _notebook() -> bytes:
    return json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# Setup"},
            {"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [],
             "source": "# fit a regression of tide height against the phase of the moon\n"
                       "model = fit(tides, moon_phase)"},
        ]}).encode()


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    root = tmp_path_factory.mktemp("documents")
    deck = pptx_bytes([
        (shape(paragraphs("Quarterly review"), "title"), None),
        (shape(paragraphs("Volcano monitoring"), "title")
         + shape(paragraphs("Seismographs recorded magma moving under the caldera")), None),
    ])
    mbox = b"".join(
        b"From sender@example.org Mon Jan  1 10:00:00 2024\n" + m.as_bytes() + b"\n"
        for m in (_mail("Lunch", "Shall we meet for lunch on Friday?"),
                  _mail("Passport", "Your passport renewal appointment is on 3 March.")))
    files = {
        "slides/review.pptx": deck,
        "sheets/budget.xlsx": _workbook(),
        "sheets/birds.csv": b"species,seen\nkingfisher,by the river at dawn\nheron,twice\n",
        "sheets/stars.tsv": b"star\tconstellation\nBetelgeuse\tOrion the hunter\n",
        "docs/minutes.odt": odf_bytes("text", "<text:p>The committee approved the new "
                                              "bicycle parking by the library.</text:p>"),
        "docs/letter.rtf": rb"{\rtf1\ansi The lighthouse keeper rewound the clockwork lamp "
                           rb"every four hours.\par}",
        "books/engine.epub": make_epub(),
        "mail/notes.eml": make_mail().as_bytes(),
        "mail/inbox.mbox": mbox,
        "code/tides.ipynb": _notebook(),
        "old/report.doc": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512,
        "photos/holiday.jpg": b"\xff\xd8\xff\xe0 not read: OCR of images is off",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _mail(subject: str, body: str):
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Ada <ada@example.org>"
    message["To"] = "Charles <charles@example.org>"
    message["Subject"] = subject
    message.set_content(body)
    return message


@pytest.fixture(scope="module")
def indexed(documents, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    with Engine(data) as engine:
        problems = []
        for prog in engine.index([str(documents)]):
            if prog.problem:
                problems.append(prog.problem)
        yield engine, problems


@pytest.mark.parametrize(("query", "name", "place"), [
    ("magma under the volcano caldera", "review.pptx", "slide 2"),
    ("where is the hedge trimmer kept", "budget.xlsx", "sheet 2"),
    ("kingfisher by the river", "birds.csv", None),
    ("Betelgeuse in Orion", "stars.tsv", None),
    ("bicycle parking near the library", "minutes.odt", None),
    ("lighthouse clockwork lamp", "letter.rtf", None),
    ("passport renewal appointment", "inbox.mbox", "message 2"),
    ("Bernoulli numbers step by step", "notes.eml", None),
    ("regression of tide height and moon phase", "tides.ipynb", "cell 2"),
])
def test_each_format_is_found_at_its_place(indexed, query, name, place):
    engine, _ = indexed
    hits = engine.search(query, mode="semantic", k=3)
    assert hits and os.path.basename(hits[0].path) == name, [h.path for h in hits]
    if place is not None:
        assert location(hits[0]) == place


def test_an_epub_chapter_is_found_by_its_chapter(indexed, documents):
    engine, _ = indexed
    hits = engine.search("chapter", mode="keyword", k=10,
                         filters=Filters.of(types=["ebook"]))
    assert hits and all(h.kind == "epub" for h in hits)
    assert all(location(h).startswith("chapter ") for h in hits)


def test_old_office_files_are_reported_by_name_and_images_wait_for_ocr(indexed, documents):
    engine, problems = indexed
    reasons = dict(problems)
    doc = str(documents / "old" / "report.doc")
    assert reasons[doc].startswith("not supported: .doc (Word 97-2003 document)")
    assert ".docx" in reasons[doc]
    rows = engine.store.file_rows()
    assert rows[doc].status == "skipped"
    assert str(documents / "photos" / "holiday.jpg") not in rows  # OCR of images is off
    assert_index_matches_disk(engine, [documents])


def test_type_filters_cover_the_new_groups(indexed):
    engine, _ = indexed
    slides = engine.search("review", mode="keyword", filters=Filters.of(types=["slides"]))
    sheets = engine.search("Orion kingfisher hedge", mode="keyword",
                           filters=Filters.of(types=["sheets"]))
    mail = engine.search("passport lunch Bernoulli", mode="keyword",
                         filters=Filters.of(types=["mail"]))
    assert {h.kind for h in slides} == {"pptx"}
    assert {h.kind for h in sheets} == {"xlsx", "csv", "tsv"}
    assert {h.kind for h in mail} == {"email", "mbox"}


def test_turning_ocr_of_images_on_reads_them_and_off_forgets_them(documents, tmp_path):
    photo = str(documents / "photos" / "holiday.jpg")
    with Engine(tmp_path / "data") as engine:
        list(engine.index([str(documents)]))
        assert photo not in engine.store.file_rows()
    with Engine(tmp_path / "data", extraction=ExtractSettings(ocr_images=True)) as engine:
        list(engine.index([str(documents)]))
        row = engine.store.file_rows()[photo]
        assert row.status == "failed" and "image" in row.reason  # not a real JPEG
        unchanged = engine.store.file_rows()[str(documents / "mail" / "notes.eml")]
        assert unchanged.indexed_at > 0
    with Engine(tmp_path / "data") as engine:
        list(engine.index([str(documents)]))
        assert photo not in engine.store.file_rows()
