"""Text extraction speed per file format, against the embedding it feeds (issue 14).

Goal: extraction is never the bottleneck. For every format, extraction's throughput in
characters of text out per second must be at least 5x the starter model's embedding throughput
on the same extracted text, both measured in the same run (the machines are shared and noisy:
compare ratios taken in one run, never absolute times).

1. A corpus per format is written under OUT/extract/corpus-N/ (N files a format): NFCorpus
   abstracts (../shared/data/nfcorpus/corpus.jsonl, title and text) grouped `--passages` (20)
   to a file, the very same passages in file i of every format, so sizes and text compare:
   .txt, .md, .py (docstrings), .html, .pdf (a text layer, one passage a page), .docx, .pptx
   (a slide a passage), .xlsx, .odt, .ods, .odp, .epub (chapters of 5), .rtf, .eml (one
   message), .mbox (a message a passage), .ipynb (markdown cells), .csv and .tsv. The builders
   are the tests' own where they have one (tests/fixtures/documents.py for PDF and DOCX,
   tests/test_extract_office.py for PPTX and OpenDocument, tests/test_extract_more.py for
   EPUB), openpyxl for XLSX, the standard library for the rest.
2. Per format, `--rounds` (3) times after an untimed warm-up: every file's bytes (read
   beforehand: extraction never touches the disk) through `desktop.extract.extract` in this
   process; the median round gives files/s, MB/s of input and characters/s of text out, and
   "words" is the fraction of the source passages' words found in the text out (a check that
   nothing was lost). PDF and DOCX also go through `extract_file` (the extraction child the
   indexer uses, started before the timing), so the cost of the process hop shows.
3. The embedding: about `--embed-passages` (300) passages of the extracted text, an equal
   share from every format, cut as the indexer cuts them (`chunk_text`, the model's passage
   length, 1/8 overlap) and embedded with the starter model (`--model`) after a warm-up, once
   in each round right after that round's extraction, so both see the same spells of load
   (the rate does not depend on the format, so one sample serves them all). Its rate is
   characters of extracted text per second of `embed_tokens` (tokenizing and cutting, timed
   apart, left out: the strictest comparison). ratio = extraction chars/s / embedding
   chars/s (medians); goal >= 5 (`--goal`).
4. OCR (unless `--no-ocr`, or desktop.extract.ocr is missing or `available()` gives a
   reason): `--ocr-pages` scanned pages, prose rendered with Pillow's default font at 200 dpi,
   as PNG (read with ExtractSettings(ocr_images=True)) and as an image-only PDF (OCR'd pages):
   seconds a page (median), pages/s, characters/s against the embedding, and the fraction of
   the rendered words OCR recovered.

Usage:
    python bench/extract.py                 # 20 files a format, 3 rounds: a few minutes
    python bench/extract.py --quick         # 5 files, 1 round, 64 passages embedded

Prints Markdown tables headed by the command; writes OUT/extract.json (OUT: bench/out).
"""

from __future__ import annotations

import argparse
import csv
import email.policy
import io
import json
import os
import platform
import re
import shutil
import statistics
import sys
import textwrap
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "nfcorpus"

Passage = tuple[str, str]  # (title, text)

# --------------------------------------------------------------------------------------------
# the corpus: one builder per format, each given a file's passages and returning its bytes
# --------------------------------------------------------------------------------------------


def load_passages(data: Path, n: int) -> list[Passage]:
    out: list[Passage] = []
    path = data / "corpus.jsonl"
    if not path.is_file():
        raise SystemExit(f"no NFCorpus at {path} (--data DIR)")
    with path.open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            text = " ".join(doc.get("text", "").split())
            if len(text) >= 200:  # abstracts, not one-line stubs
                out.append((" ".join(doc.get("title", "").split()) or "Untitled", text))
                if len(out) == n:
                    break
    if len(out) < n:
        raise SystemExit(f"NFCorpus has only {len(out)} usable documents; {n} needed")
    return out


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def build_text(ps: list[Passage]) -> bytes:
    return "\n\n".join(f"{t}\n\n{x}" for t, x in ps).encode("utf-8") + b"\n"


def build_markdown(ps: list[Passage]) -> bytes:
    body = "\n\n".join(f"## {t}\n\n{x}" for t, x in ps)
    return f"# Reading notes\n\n{body}\n".encode()


def build_code(ps: list[Passage]) -> bytes:
    def doc(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"""', "'''")

    funcs = []
    for i, (t, x) in enumerate(ps):
        wrapped = textwrap.fill(doc(x), 92, initial_indent="    ", subsequent_indent="    ")
        funcs.append(f'def passage_{i:02d}() -> int:\n    """{doc(t)}\n\n{wrapped}\n    """\n'
                     f"    return {i}\n")
    return ('"""Abstracts, one function each."""\n\nfrom __future__ import annotations\n\n\n'
            + "\n\n".join(funcs)).encode("utf-8")


def build_html(ps: list[Passage]) -> bytes:
    arts = "\n".join(f"<article><h2>{escape(t)}</h2>\n<p>{escape(x)}</p></article>"
                     for t, x in ps)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Reading notes</title><style>body{font-family:serif;max-width:40em}"
            "</style><script>console.log('x')</script></head><body><nav><a href=\"#\">Home"
            f"</a></nav><main>\n{arts}\n</main><footer>Notes</footer></body></html>\n"
            ).encode()


def build_pdf(ps: list[Passage]) -> bytes:
    from tests.fixtures.documents import pdf_bytes

    return pdf_bytes([f"{t}\n\n{x}" for t, x in ps])


def build_docx(ps: list[Passage]) -> bytes:
    from tests.fixtures.documents import docx_bytes

    return docx_bytes([p for t, x in ps for p in (t, x)])


def build_pptx(ps: list[Passage]) -> bytes:
    from tests.test_extract_office import paragraphs, pptx_bytes, shape

    return pptx_bytes([(shape(paragraphs(t), "title") + shape(paragraphs(*sentences(x))), None)
                       for t, x in ps])


def build_xlsx(ps: list[Passage]) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = "Passages"
    sheet.append(["Number", "Title", "Text"])
    for i, (t, x) in enumerate(ps, 1):
        sheet.append([i, t, x])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def build_odt(ps: list[Passage]) -> bytes:
    from tests.test_extract_office import odf_bytes

    body = "".join(f'<text:h text:outline-level="2">{escape(t)}</text:h>'
                   f"<text:p>{escape(x)}</text:p>" for t, x in ps)
    return odf_bytes("text", body)


def build_ods(ps: list[Passage]) -> bytes:
    from tests.test_extract_office import cell, odf_bytes

    rows = [("Number", "Title", "Text")] + [(str(i), t, x) for i, (t, x) in enumerate(ps, 1)]
    body = ('<table:table table:name="Passages">'
            + "".join("<table:table-row>" + "".join(cell(v) for v in r) + "</table:table-row>"
                      for r in rows) + "</table:table>")
    return odf_bytes("spreadsheet", body)


def build_odp(ps: list[Passage]) -> bytes:
    from tests.test_extract_office import frame, odf_bytes

    body = "".join(f'<draw:page draw:name="page{i}">{frame(t, "title")}{frame(x)}</draw:page>'
                   for i, (t, x) in enumerate(ps, 1))
    return odf_bytes("presentation", body)


def build_epub(ps: list[Passage]) -> bytes:
    from tests.test_extract_more import make_epub

    chapters = [ps[i:i + 5] for i in range(0, len(ps), 5)]
    items, spine, files = [], [], {}
    for n, chapter in enumerate(chapters, 1):
        body = "".join(f"<h2>{escape(t)}</h2><p>{escape(x)}</p>" for t, x in chapter)
        files[f"OEBPS/Text/part{n}.xhtml"] = (
            '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>Part {n}</title></head><body><h1>Part {n}</h1>{body}</body></html>")
        items.append(f'<item id="p{n}" href="Text/part{n}.xhtml" '
                     'media-type="application/xhtml+xml"/>')
        spine.append(f'<itemref idref="p{n}"/>')
    opf = ('<?xml version="1.0" encoding="utf-8"?>\n<package xmlns="http://www.idpf.org/2007/opf"'
           ' version="3.0" unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/'
           'elements/1.1/"><dc:title>Reading notes</dc:title></metadata><manifest>'
           f"{''.join(items)}</manifest><spine>{''.join(spine)}</spine></package>")
    return make_epub(nav=False, ncx=False, opf=opf, extra=files)


def _rtf_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch in "\\{}":
            out.append("\\" + ch)
        elif ord(ch) < 128:
            out.append(ch)
        else:  # \uN? per UTF-16 code unit, N signed
            raw = ch.encode("utf-16-le")
            for i in range(0, len(raw), 2):
                code = int.from_bytes(raw[i:i + 2], "little")
                out.append(f"\\u{code - 65536 if code > 32767 else code}?")
    return "".join(out)


def build_rtf(ps: list[Passage]) -> bytes:
    paras = "\n".join(f"{{\\b {_rtf_escape(t)}\\b0}}\\par\n{_rtf_escape(x)}\\par\\par"
                      for t, x in ps)
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\froman\\fcharset0 Times New Roman;}}"
            "{\\colortbl ;\\red0\\green0\\blue0;}\n\\f0\\fs24\n" + paras + "\n}").encode("ascii")


def _message(subject: str, body: str, n: int) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Reading Group <group@example.org>"
    m["To"] = "Ada Lovelace <ada@example.org>"
    m["Date"] = f"Tue, 02 Jan 2024 09:{n % 60:02d}:00 +0000"
    m["Subject"] = subject
    m["Message-ID"] = f"<bench-{n}@example.org>"
    m.set_content(body)
    return m


def build_eml(ps: list[Passage]) -> bytes:
    body = "\n\n".join(f"{t}\n\n{x}" for t, x in ps)
    return _message(ps[0][0], body, 0).as_bytes(policy=email.policy.SMTP)


def build_mbox(ps: list[Passage]) -> bytes:
    policy = email.policy.default.clone(linesep="\n", mangle_from_=True)
    out = bytearray()
    for n, (t, x) in enumerate(ps):
        out += f"From group@example.org Tue Jan  2 09:{n % 60:02d}:00 2024\n".encode()
        out += _message(t, textwrap.fill(x, 76), n).as_bytes(policy=policy) + b"\n"
    return bytes(out)


def build_ipynb(ps: list[Passage]) -> bytes:
    cells = [{"cell_type": "markdown", "id": f"c{i:03d}", "metadata": {},
              "source": [f"## {t}\n", "\n", x]} for i, (t, x) in enumerate(ps)]
    nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3",
                                                      "language": "python", "name": "python3"},
                                       "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1, ensure_ascii=False).encode("utf-8")


def _table(ps: list[Passage], delimiter: str) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(["number", "title", "text"])
    for i, (t, x) in enumerate(ps, 1):
        w.writerow([i, t, x])
    return buf.getvalue().encode("utf-8")


# format label -> (file suffix, builder); the label is the extractor's kind
FORMATS: dict[str, tuple[str, Callable[[list[Passage]], bytes]]] = {
    "text": (".txt", build_text),
    "markdown": (".md", build_markdown),
    "code": (".py", build_code),
    "html": (".html", build_html),
    "pdf": (".pdf", build_pdf),
    "docx": (".docx", build_docx),
    "pptx": (".pptx", build_pptx),
    "xlsx": (".xlsx", build_xlsx),
    "odt": (".odt", build_odt),
    "ods": (".ods", build_ods),
    "odp": (".odp", build_odp),
    "epub": (".epub", build_epub),
    "rtf": (".rtf", build_rtf),
    "eml": (".eml", build_eml),
    "mbox": (".mbox", build_mbox),
    "ipynb": (".ipynb", build_ipynb),
    "csv": (".csv", lambda ps: _table(ps, ",")),
    "tsv": (".tsv", lambda ps: _table(ps, "\t")),
}
CHILD_FORMATS = ("pdf", "docx")  # also timed through extract_file (the extraction child)


def write_corpus(base: Path, formats: list[str], groups: list[list[Passage]]
                 ) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """The files of each format (written afresh), and why a format could not be built."""
    shutil.rmtree(base, ignore_errors=True)
    files: dict[str, list[Path]] = {}
    broken: dict[str, str] = {}
    for fmt in formats:
        suffix, build = FORMATS[fmt]
        folder = base / fmt
        folder.mkdir(parents=True)
        try:
            paths = []
            for i, group in enumerate(groups):
                p = folder / f"notes-{i:03d}{suffix}"
                p.write_bytes(build(group))
                paths.append(p)
            files[fmt] = paths
        except Exception as exc:  # noqa: BLE001 - a builder that broke: say so, go on
            broken[fmt] = f"{type(exc).__name__}: {exc}"
    return files, broken


# --------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> Counter[str]:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return Counter(_WORD.findall(folded))


def recovered(expected: Counter[str], got: Counter[str]) -> float:
    total = sum(expected.values())
    return sum((expected & got).values()) / total if total else 1.0


def extract_round(items: list[tuple[str, bytes]], run: Callable[[str, bytes], object]
                  ) -> tuple[float, list, dict[str, str]]:
    """Every file through `run` once: the seconds, the documents (None where one failed) and
    why each failure failed."""
    from desktop.extract import ExtractionError, Skipped

    docs, failures = [], {}
    t0 = time.perf_counter()
    for name, data in items:
        try:
            docs.append(run(name, data))
        except (Skipped, ExtractionError) as exc:
            docs.append(None)
            failures[name] = f"{type(exc).__name__}: {exc.reason}"
    return time.perf_counter() - t0, docs, failures


def summarize(items: list[tuple[str, bytes]], timing: dict, expected: list[Counter[str]],
              emb: dict) -> dict:
    docs = timing["docs"]
    chars = sum(sum(len(s.text) for s in d.sections) for d in docs if d is not None)
    got = [words(d.text) if d is not None else Counter() for d in docs]
    med = statistics.median(timing["seconds"])
    n_bytes = sum(len(data) for _, data in items)
    cps = chars / med if med > 0 else float("inf")
    return {
        "files": len(items), "bytes": n_bytes, "chars_out": chars,
        "sections": sum(len(d.sections) for d in docs if d is not None),
        "words_recovered": round(recovered(sum(expected, Counter()), sum(got, Counter())), 4),
        "failed": len(timing["failures"]), "failures": timing["failures"],
        "round_seconds": [round(s, 4) for s in timing["seconds"]],
        "median_s": round(med, 4), "files_per_s": round(len(items) / med, 2),
        "mb_per_s": round(n_bytes / 1e6 / med, 3), "chars_per_s": round(cps, 1),
        "ratio": round(cps / emb["chars_per_s"], 2),
        "ratio_vs_fastest_embed": round(cps / emb["chars_per_s_fastest"], 2),
    }


class Embedding:
    """The model, loaded once; the sample cut into passages as the indexer cuts them; each
    embed() timed (characters of extracted text per second of embed_tokens)."""

    def __init__(self, model: str | None, threads: int) -> None:
        from desktop.models.embedder import Embedder, EmbedderSettings
        from desktop.models.starter import starter_model_path

        self.path = Path(model) if model else starter_model_path()
        self.threads = threads
        t0 = time.perf_counter()
        self.e = Embedder(self.path, EmbedderSettings(threads=threads))
        self.load_s = time.perf_counter() - t0
        self.seqs: list[list[int]] = []
        self.chars, self.sections, self.chunk_s = 0, 0, 0.0
        self.seconds: list[float] = []

    def cut(self, sections: list[str]) -> None:
        from desktop.index.chunking import ChunkSettings, chunk_text

        self.settings = ChunkSettings(self.e.chunk_tokens, self.e.chunk_tokens // 8)
        t0 = time.perf_counter()
        self.seqs = [c.tokens for text in sections
                     for c in chunk_text(text, self.e, self.settings)]
        self.chunk_s = time.perf_counter() - t0
        self.chars, self.sections = sum(len(t) for t in sections), len(sections)
        self.e.embed_tokens(self.seqs[:4])  # warm-up: the first decodes allocate

    def embed(self) -> float:
        t0 = time.perf_counter()
        self.e.embed_tokens(self.seqs)
        self.seconds.append(time.perf_counter() - t0)
        return self.seconds[-1]

    def summary(self) -> dict:
        med = statistics.median(self.seconds)
        tokens = sum(len(s) for s in self.seqs)
        return {"model": self.e.info.name, "file": self.path.name, "threads": self.threads,
                "chunk_tokens": self.e.chunk_tokens, "overlap": self.settings.overlap,
                "sections": self.sections, "chars": self.chars, "passages": len(self.seqs),
                "tokens": tokens, "load_s": round(self.load_s, 2),
                "chunk_s": round(self.chunk_s, 3),
                "round_seconds": [round(x, 3) for x in self.seconds],
                "embed_s": round(med, 3), "chars_per_s": round(self.chars / med, 1),
                "chars_per_s_fastest": round(self.chars / min(self.seconds), 1),
                "tokens_per_s": round(tokens / med, 1)}

    def close(self) -> None:
        self.e.close()


def sample_sections(docs_of: dict[str, list], target: int) -> list[str]:
    """An equal share of extracted text from every format, about `target` passages' worth in
    all (at ~900 characters a passage): each format's sections in order, the last one cut at
    a space where the share ends."""
    share = max(1, target * 900 // max(1, len(docs_of)))
    out = []
    for docs in docs_of.values():
        left = share
        for text in (s.text for d in docs if d is not None for s in d.sections):
            if left <= 0:
                break
            if len(text) > left:
                cut = text.rfind(" ", 0, left)
                text = text[:cut if cut > 0 else left]
            if text.strip():
                out.append(text)
                left -= len(text)
    return out


# --------------------------------------------------------------------------------------------
# OCR
# --------------------------------------------------------------------------------------------


def ocr_unavailable() -> str | None:
    try:
        from desktop.extract import ocr
    except Exception as exc:  # noqa: BLE001 - not written yet, or its engine cannot load
        return f"desktop.extract.ocr cannot be imported ({type(exc).__name__}: {exc})"
    try:
        return ocr.available()
    except Exception as exc:  # noqa: BLE001
        return f"desktop.extract.ocr.available() failed ({type(exc).__name__}: {exc})"


def render_page(text: str, size: int = 30):
    """A US Letter page at 200 dpi: the text (ASCII-folded, so the default font has every
    glyph) in black on white, wrapped to the margins; returns (image, the text drawn)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    width, height, margin = 1700, 2200, 150
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    lines: list[str] = []
    for para in folded.split("\n"):
        line = ""
        for word in para.split():
            trial = f"{line} {word}".strip()
            if font.getlength(trial) <= width - 2 * margin:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    step = int(size * 1.5)
    fit = (height - 2 * margin) // step
    lines = lines[:fit]
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * step), line, fill=0, font=font)
    return img, "\n".join(lines)


def run_ocr(passages: list[Passage], pages: int, out: Path, rounds: int, emb: dict) -> dict:
    from desktop.extract import ExtractionError, ExtractSettings, Skipped, extract

    folder = out / "ocr"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    settings = ExtractSettings(ocr_images=True)
    items: dict[str, list[tuple[str, bytes, str]]] = {"png": [], "pdf": []}
    for i in range(pages):
        ps = passages[2 * i:2 * i + 2]
        img, drawn = render_page("\n\n".join(f"{t}\n{x}" for t, x in ps))
        for fmt in items:
            buf = io.BytesIO()
            if fmt == "pdf":
                img.save(buf, "PDF", resolution=200)
            else:
                img.save(buf, "PNG")
            name = f"scan-{i:02d}.{fmt}"
            (folder / name).write_bytes(buf.getvalue())
            items[fmt].append((name, buf.getvalue(), drawn))
    results: dict = {}
    t0 = time.perf_counter()  # the first page loads the engine: timed apart, not in the rows
    try:
        extract(*items["png"][0][:2], settings)
    except (Skipped, ExtractionError) as exc:
        print(f"  OCR warm-up: {type(exc).__name__}: {exc.reason}", file=sys.stderr)
    results["first_call_s"] = round(time.perf_counter() - t0, 3)
    for fmt, files in items.items():
        per_page, chars, acc, failures = [], 0, [], {}
        for r in range(rounds):
            for name, data, drawn in files:
                t0 = time.perf_counter()
                try:
                    doc = extract(name, data, settings)
                except (Skipped, ExtractionError) as exc:
                    failures[name] = f"{type(exc).__name__}: {exc.reason}"
                    doc = None
                per_page.append(time.perf_counter() - t0)
                if r == 0:
                    text = doc.text if doc is not None else ""
                    chars += len(text)
                    acc.append(recovered(words(drawn), words(text)))
        total = sum(per_page) / rounds
        cps = chars / total if total else 0.0
        results[fmt] = {
            "pages": len(files), "bytes": sum(len(d) for _, d, _ in files),
            "s_per_page_median": round(statistics.median(per_page), 3),
            "s_per_page_max": round(max(per_page), 3),
            "pages_per_s": round(len(files) / total, 3), "chars_out": chars,
            "chars_per_s": round(cps, 1),
            "ratio": round(cps / emb["chars_per_s"], 3),
            "ratio_vs_fastest_embed": round(cps / emb["chars_per_s_fastest"], 3),
            "words_recovered": round(statistics.mean(acc), 4) if acc else None,
            "words_recovered_min": round(min(acc), 4) if acc else None,
            "failed": len(failures), "failures": failures,
        }
    return results


# --------------------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in ("pypdf", "openpyxl", "rapidocr", "onnxruntime", "pypdfium2", "pillow",
                 "llama_cpp_python"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:,.1f} M"
    if x >= 1e4:
        return f"{x / 1e3:,.0f} k"
    if x >= 1e3:
        return f"{x / 1e3:,.1f} k"
    return f"{x:,.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, help="files a format (default 20; --quick 5)")
    ap.add_argument("--passages", type=int, default=20, help="NFCorpus abstracts a file")
    ap.add_argument("--rounds", type=int,
                    help="timed rounds, medians reported (default 3; --quick 1)")
    ap.add_argument("--formats", default=",".join(FORMATS),
                    help="comma-separated subset of: " + ", ".join(FORMATS))
    ap.add_argument("--embed-passages", type=int,
                    help="about how many passages of extracted text to embed (default 300; "
                         "--quick 64)")
    ap.add_argument("--goal", type=float, default=5.0,
                    help="extraction chars/s at least this many times embedding's")
    ap.add_argument("--no-child", action="store_true",
                    help="leave out extract_file (the extraction child) for PDF and DOCX")
    ap.add_argument("--no-ocr", action="store_true", help="leave out the OCR section")
    ap.add_argument("--ocr-pages", type=int,
                    help="scanned pages, as PNG and as PDF each (default 4; --quick 1)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: the defaults become --files 5 --rounds 1 "
                         "--embed-passages 64 --ocr-pages 1")
    ap.add_argument("--data", type=Path, default=DATA, help="NFCorpus folder (corpus.jsonl)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out",
                    help="where the corpus (OUT/extract/) and extract.json go "
                         "(default bench/out)")
    ap.add_argument("--model", help="GGUF embedder (default: the starter model)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for the model (default: the app's default)")
    args = ap.parse_args()
    for name, full, quick in (("files", 20, 5), ("rounds", 3, 1), ("embed_passages", 300, 64),
                              ("ocr_pages", 4, 1)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        ap.error(f"--formats: unknown {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    if min(args.files, args.passages, args.rounds) < 1:
        ap.error("--files, --passages and --rounds must be at least 1")

    from desktop.extract import extract, extract_file
    from desktop.models.embedder import default_threads

    t_start = time.perf_counter()
    load_before = os.getloadavg()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    threads = args.threads or default_threads()
    base = args.out / "extract"

    # -- the corpus
    passages = load_passages(args.data, args.files * args.passages)
    groups = [passages[i * args.passages:(i + 1) * args.passages] for i in range(args.files)]
    expected = [words("\n".join(f"{t}\n{x}" for t, x in g)) for g in groups]
    t0 = time.perf_counter()
    files, broken = write_corpus(base / f"corpus-{args.files}", formats, groups)
    print(f"corpus: {args.files} files x {args.passages} passages in {len(files)} formats "
          f"written in {time.perf_counter() - t0:.1f} s under {base}", file=sys.stderr)
    for fmt, why in broken.items():
        print(f"  could not build {fmt}: {why}", file=sys.stderr)
    if not files:
        raise SystemExit("no format's corpus could be built")

    # -- what is timed: each format in this process; PDF and DOCX through the child too
    runs: dict[str, tuple[str, Callable[[str, bytes], object]]] = {f: (f, extract) for f in files}
    if not args.no_child:
        runs.update({f"{f} via extract_file": (f, extract_file) for f in CHILD_FORMATS
                     if f in files})
    items_of = {fmt: [(p.name, p.read_bytes()) for p in paths] for fmt, paths in files.items()}
    child_start_s = None
    for label, (fmt, run) in runs.items():  # warm-up (imports; the child's start, timed)
        t0 = time.perf_counter()
        try:
            run(*items_of[fmt][0])
        except Exception as exc:  # noqa: BLE001 - the rounds report failures
            print(f"  {label} warm-up: {type(exc).__name__}: {exc}", file=sys.stderr)
        if run is extract_file and child_start_s is None:
            child_start_s = time.perf_counter() - t0
    emb_run = Embedding(args.model, threads)

    # -- rounds: every format, then the embedding, so both see the same spells of load
    timings: dict[str, dict] = {label: {"seconds": []} for label in runs}
    try:
        for r in range(args.rounds):
            for label, (fmt, run) in runs.items():
                seconds, docs, failures = extract_round(items_of[fmt], run)
                timings[label]["seconds"].append(seconds)
                if r == 0:
                    timings[label].update(docs=docs, failures=failures)
            if r == 0:
                emb_run.cut(sample_sections({f: timings[f]["docs"] for f in files},
                                            args.embed_passages))
            emb_s = emb_run.embed()
            print(f"  round {r + 1}/{args.rounds}: extraction "
                  f"{sum(t['seconds'][-1] for t in timings.values()):.1f} s, embedding "
                  f"{len(emb_run.seqs)} passages {emb_s:.1f} s", file=sys.stderr)
    finally:
        emb_run.close()
        if child_start_s is not None:
            from desktop.extract.isolated import shared

            shared().close()
    emb = emb_run.summary()
    child = [label for label in runs if label not in files]

    rows = {}
    for label, timing in timings.items():
        fmt = label.split(" ")[0]
        rows[label] = summarize(items_of[fmt], timing, expected, emb)

    # -- OCR
    ocr_reason = "left out (--no-ocr)" if args.no_ocr else ocr_unavailable()
    ocr = None
    if ocr_reason is None:
        print(f"OCR: {args.ocr_pages} pages as PNG and as PDF ...", file=sys.stderr)
        ocr = run_ocr(passages, args.ocr_pages, base, 1, emb)

    results = {
        "command": command, "model": emb["model"], "threads": threads, "cpus": os.cpu_count(),
        "python": platform.python_version(), "versions": versions(),
        "files_per_format": args.files, "passages_per_file": args.passages,
        "rounds": args.rounds, "goal_ratio": args.goal, "embedding": emb,
        "formats": rows, "not_built": broken,
        "child_first_call_s": round(child_start_s, 3) if child_start_s is not None else None,
        "ocr": ocr, "ocr_skipped": ocr_reason,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "script_s": round(time.perf_counter() - t_start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "extract.json").write_text(json.dumps(results, indent=2))

    # -- the report
    print(f"\n`{command}` ({emb['model']}, {threads} threads on {results['cpus']} CPUs; "
          f"{args.files} files a format, {args.passages} NFCorpus abstracts a file; median of "
          f"{args.rounds} round{'s' if args.rounds > 1 else ''}; load average "
          f"{load_before[0]:.1f} before, {results['load_avg_after'][0]:.1f} after; script "
          f"{results['script_s']:.0f} s)\n")
    print(f"Embedding, once a round after the round's extraction (median): "
          f"{emb['passages']} passages ({emb['chars']:,} characters "
          f"of extracted text, an equal share from each of the {len(rows) - len(child)} formats, "
          f"{emb['tokens']:,} tokens; {emb['chunk_tokens']}-token passages, overlap "
          f"{emb['overlap']}) in {emb['embed_s']:.1f} s: **{emb['chars_per_s']:,.0f} "
          f"characters/s** ({emb['tokens_per_s']:,.0f} tokens/s); cutting them into passages "
          f"(tokenizing) took {emb['chunk_s']:.2f} s more, not counted.\n")
    print(f"| format | files | input | text out | words kept | files/s | MB/s | chars/s | "
          f"× embedding (× fastest round) | ≥ {args.goal:g}× |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        ok = r["ratio"] is not None and r["ratio"] >= args.goal and not r["failed"]
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        print(f"| {label}{failed} | {r['files']} | {r['bytes'] / 1e6:.2f} MB | "
              f"{r['chars_out'] / 1e6:.2f} M | {r['words_recovered'] * 100:.1f}% | "
              f"{r['files_per_s']:,.1f} | {r['mb_per_s']:,.2f} | {fmt_rate(r['chars_per_s'])} | "
              f"{r['ratio']:,.1f} ({r['ratio_vs_fastest_embed']:,.1f}) | "
              f"{'PASS' if ok else 'FAIL'} |")
    worst = min(rows, key=lambda k: rows[k]["ratio_vs_fastest_embed"])
    print(f"\nSlowest against the embedding: {worst}, {rows[worst]['ratio']:,.1f}× the median "
          f"embedding round and {rows[worst]['ratio_vs_fastest_embed']:,.1f}× its fastest "
          f"(embedding rounds: {', '.join(f'{x:.1f}' for x in emb['round_seconds'])} s).")
    if child_start_s is not None:
        print(f"\nextract_file runs the complex formats in the extraction child: its first "
              f"call (starting the child) took {child_start_s:.2f} s, not in the rows.")
    for fmt, why in broken.items():
        print(f"\n{fmt}: not measured, its corpus could not be built ({why}).")
    for label, r in rows.items():
        for name, why in list(r["failures"].items())[:3]:
            print(f"\n{label}: {name}: {why}")
    if ocr is None:
        print(f"\nOCR: skipped: {ocr_reason}")
    else:
        per_page = ocr["png"]["chars_out"] // max(1, ocr["png"]["pages"])
        print(f"\nOCR: {args.ocr_pages} scanned US Letter pages at 200 dpi (two abstracts, "
              f"about {per_page:,} characters read a page; Pillow's default font at 30 px), "
              "read through extract() with ocr_images on:\n")
        print("| scan as | pages | s/page (median) | s/page max | pages/s | chars/s | "
              "× embedding (× fastest round) | words recovered (mean / min) |")
        print("|---|---|---|---|---|---|---|---|")
        for fmt, r in ocr.items():
            if fmt == "first_call_s":
                continue
            failed = f" ({r['failed']} failed)" if r["failed"] else ""
            acc = (f"{r['words_recovered'] * 100:.1f}% / {r['words_recovered_min'] * 100:.1f}%"
                   if r["words_recovered"] is not None else "–")
            print(f"| {fmt}{failed} | {r['pages']} | {r['s_per_page_median']:.2f} | "
                  f"{r['s_per_page_max']:.2f} | {r['pages_per_s']:.2f} | "
                  f"{fmt_rate(r['chars_per_s'])} | {r['ratio']:,.2f} "
                  f"({r['ratio_vs_fastest_embed']:,.2f}) | {acc} |")
            for name, why in list(r["failures"].items())[:3]:
                print(f"\n{fmt}: {name}: {why}")
        print(f"\nThe first page read, loading the OCR engine included, took "
              f"{ocr['first_call_s']:.1f} s, not in the rows.")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SEMDEX_MODEL_CACHE", str(ROOT / "bench" / "out" / "models"))
    sys.exit(main())
