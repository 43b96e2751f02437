"""Big and hostile files: extraction in a child process with a time limit (a pathological PDF
is given up on, a crash is a failed file, never a stuck or dead indexer), a limit on the text
extracted from one file, archives that would inflate beyond reason refused before they are
read, and progress that moves within a large file."""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile

import pytest

from desktop import extract
from desktop.engine import Engine
from desktop.extract import ExtractionError, ExtractSettings, Skipped
from desktop.extract.archive import open_zip
from desktop.extract.isolated import IsolatedExtractor
from desktop.index import indexer as indexer_module
from tests.fixtures.documents import docx_bytes, pdf_bytes, slow_pdf_bytes


@pytest.fixture
def child():
    iso = IsolatedExtractor(timeout=60)
    yield iso
    iso.close()


def test_the_child_extracts_what_the_process_would(child):
    data = pdf_bytes(["The lighthouse keeper lit the lamp.", "Second page."])
    doc = child.extract("a.pdf", data)
    assert doc == extract.extract("a.pdf", data)
    with pytest.raises(ExtractionError, match="corrupt PDF"):
        child.extract("b.pdf", b"%PDF-1.4 not really")
    with pytest.raises(Skipped):
        child.extract("c.pdf", pdf_bytes([""]))


def test_a_file_that_takes_too_long_is_given_up_and_the_next_one_works(child):
    t0 = time.monotonic()
    with pytest.raises(ExtractionError, match=r"gave up: extracting it took over 1 s"):
        child.extract("slow.pdf", slow_pdf_bytes(100_000), timeout=1.0)
    assert time.monotonic() - t0 < 5  # killed, not waited for
    doc = child.extract("fine.pdf", pdf_bytes(["back to normal"]))
    assert "back to normal" in doc.text


def test_a_crash_in_the_child_is_a_failed_file(child):
    child.extract("warm.pdf", pdf_bytes(["start the child"]))
    pid = child._proc.pid
    killer = threading.Timer(0.5, lambda: os.kill(pid, 9))
    killer.start()
    with pytest.raises(ExtractionError, match="crashed"):
        child.extract("slow.pdf", slow_pdf_bytes(100_000), timeout=60)
    assert "again" in child.extract("next.pdf", pdf_bytes(["again"])).text


def test_the_text_of_one_file_is_limited(tmp_path):
    settings = ExtractSettings(max_text_mb=0.1)
    with pytest.raises(Skipped, match=r"too large: 0\.2 MB of text, limit 0\.1 MB"):
        extract.extract_file("big.txt", b"word " * 40_000, settings)
    assert extract.extract_file("small.txt", b"word " * 1000, settings).text


def _bomb(part: str, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open(part, "w") as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
    return buf.getvalue()


def test_an_archive_that_would_inflate_beyond_reason_is_refused_unread():
    data = _bomb("word/document.xml", 600 << 20)  # 600 MB of zeros, about 0.6 MB packed
    assert len(data) < 2 << 20
    with pytest.raises(ExtractionError, match=r"too large: inflates to 600 MB"):
        open_zip(data, "DOCX")
    with pytest.raises(ExtractionError, match="too large"):
        extract.extract("bomb.docx", data)
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as z:
        for i in range(20_001):
            z.writestr(f"p{i}", b"")
    with pytest.raises(ExtractionError, match="too many parts"):
        open_zip(many.getvalue(), "DOCX")
    assert extract.extract("fine.docx", docx_bytes(["A normal document."])).text


def test_progress_moves_within_a_large_file(tmp_path, starter_model, monkeypatch):
    monkeypatch.setattr(indexer_module, "_EMBED_SLICE", 8)
    docs = tmp_path / "docs"
    docs.mkdir()
    sentences = [f"Line {i}: the maintenance log records pump {i % 7} checked at hour {i}."
                 for i in range(900)]
    (docs / "big.log").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    (docs / "small.txt").write_text("A small note.\n", encoding="utf-8")
    seen = []
    with Engine(tmp_path / "data") as engine:
        for prog in engine.index([str(docs)]):
            if prog.file_passages_total:
                seen.append((os.path.basename(prog.current), prog.file_passages_done,
                             prog.file_passages_total))
    big = [s for s in seen if s[0] == "big.log"]
    assert len(big) >= 3, seen
    dones = [d for _, d, _ in big]
    assert dones == sorted(dones) and dones[-1] == big[-1][2]  # up to all of its passages


def test_the_file_being_read_is_said_while_the_embedder_waits(tmp_path, starter_model,
                                                              monkeypatch):
    monkeypatch.setattr(indexer_module, "_WAIT_TICK", 0.05)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "slow.pdf").write_bytes(slow_pdf_bytes(40_000))  # a few seconds to extract
    cancel = threading.Event()
    reading = []
    with Engine(tmp_path / "data") as engine:
        for prog in engine.index([str(docs)], cancel=cancel):
            if prog.reading:
                reading.append(prog.reading)
    assert reading and reading[0] == str(docs / "slow.pdf")
