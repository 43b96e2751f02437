"""Render the main window in its key states to PNG files, offscreen.

    python -m desktop.gui.screenshots [OUTDIR]      (default: resources/screenshots)

Everything happens in a throwaway home folder (so paths read ~/Documents/..., and nothing of
the person's own index, settings or models is touched), with the real worker, the real starter
model and real files: the sample documents are made with tests/fixtures/documents.py, so run it
from a source checkout. States: the first-run welcome, results with a PDF page previewed and
the passage highlighted, indexing in progress, and the model picker.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1280, 800)

_MANUAL = [
    "Heating system manual\n\nThis manual covers the boiler, the radiators and the hot water "
    "cylinder of the house. Keep it with the boiler's service record.",
    "Pressure and topping up\n\nThe boiler pressure gauge should read between one and two bar "
    "when the system is cold. If it reads lower, top it up with the filling loop under the "
    "boiler: open both valves slowly until the needle reaches 1.5 bar, then close them.\n\n"
    "A pressure above three bar opens the relief valve; call an engineer if this happens "
    "more than once.",
    "Bleeding radiators\n\nA radiator that is cold at the top has air in it. Turn the heating "
    "off, open the bleed valve a quarter turn with the radiator key until water appears, then "
    "check the boiler pressure again.",
]
_DOCS = {
    "Recipes/plum-cake.md": "# Grandmother's plum cake\n\nCream 200 g butter with 180 g "
    "sugar, beat in three eggs, fold in 250 g flour and a teaspoon of cinnamon. Press halved "
    "plums into the batter and bake for 50 minutes at 180 °C.\n",
    "Recipes/bread.md": "# Everyday bread\n\n500 g flour, 7 g yeast, 10 g salt, 320 ml warm "
    "water. Knead for ten minutes, rise for an hour, bake at 230 °C for 30 minutes.\n",
    "House/insurance.txt": "Home insurance renews on 1 March. The policy covers escape of "
    "water from the heating system, but not wear and tear of the boiler itself.\n",
    "House/garden.txt": "The hedge between our garden and the neighbours' needs trimming "
    "before the birds nest in spring. The lawnmower blade was sharpened in April.\n",
    "House/plumber.txt": "Plumber's visit, 14 January: replaced the filling loop washer; "
    "the pressure drop was a leaking valve on the bathroom radiator.\n",
    "Travel/lisbon.md": "# Lisbon, May\n\nTram 28 early in the morning before the crowds; "
    "custard tarts in Belém; the view from the Graça viewpoint at sunset.\n",
}
_NOTE_TOPICS = ("meeting notes about the school fete", "a reminder to renew the passport",
                "ideas for the allotment this year", "what the dentist said about flossing",
                "the book club's list for autumn", "a packing list for the camping trip")


def make_samples(home: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.documents import make_corrupt_pdf, make_pdf

    docs = home / "Documents"
    for rel, text in _DOCS.items():
        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    make_pdf(docs / "House" / "heating-manual.pdf", _MANUAL)
    make_corrupt_pdf(docs / "House" / "scan-damaged.pdf")
    notes = home / "Notes"
    notes.mkdir(parents=True)
    for i in range(400):
        topic = _NOTE_TOPICS[i % len(_NOTE_TOPICS)]
        (notes / f"note-{i:03d}.md").write_text(
            f"# Note {i}\n\n" + " ".join(f"About {topic}, point {j}." for j in range(6)) + "\n",
            encoding="utf-8")
    return docs, notes


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else ROOT / "resources" / "screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="semdex-shots-")) / "home"
    home.mkdir()
    cache = os.environ.get("SEMDEX_MODEL_CACHE")
    os.environ.update(HOME=str(home), SEMDEX_CONFIG_DIR=str(home / ".config" / "semdex"),
                      SEMDEX_DATA_DIR=str(home / ".local" / "share" / "semdex"),
                      SEMDEX_LOG_DIR=str(home / ".local" / "state" / "semdex"),
                      QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    if cache:
        os.environ["SEMDEX_MODEL_CACHE"] = cache
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        os.environ.pop(var, None)
    try:
        return _shoot(out, home)
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)


def _shoot(out: Path, home: Path) -> int:
    from PySide6.QtWidgets import QApplication

    from desktop.gui import index_worker as w
    from desktop.gui.main_window import MainWindow
    from desktop.logs import setup_logging

    setup_logging()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    QApplication.setApplicationName("Semdex")
    docs, notes = make_samples(home)

    def wait(cond: Callable[[], object], seconds: float = 120.0, what: str = "") -> None:
        end = time.monotonic() + seconds
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError(f"timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.01)

    def settle(seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def shot(widget, name: str) -> None:
        settle()
        path = out / name
        widget.grab().save(str(path))
        print(f"wrote {path}")

    win = MainWindow(launch=False)
    win.resize(*SIZE)
    win.show()
    wait(lambda: win.worker_state() == w.IDLE, what="the model")
    shot(win, "01-welcome.png")

    win.add_folders([str(docs)])
    wait(lambda: win.worker_state() == w.WATCHING and win.status().get("files"),
         what="the first index")
    win.search_field.setText("how do I top up the boiler pressure")
    done: list[int] = []
    win.search_finished.connect(done.append)
    win.search_bar.search_now()
    wait(lambda: done, what="search results")
    rows = [i for i, h in enumerate(win.results.hits()) if h.kind == "pdf" and h.page == 2]
    win.results_view.setCurrentIndex(win.results.index(rows[0] if rows else 0))
    wait(lambda: win.preview.highlight_rects() or not rows, 10, "the highlight")
    shot(win, "02-results-pdf-preview.png")

    win.add_folders([str(notes)])
    wait(lambda: win.library.progress() is not None and win.library.progress().phase
         == "indexing" and win.library.progress().files_done >= 40
         and "\n0 files" not in win.library.folder_text(str(notes)), what="indexing progress")
    shot(win, "03-indexing.png")

    from desktop.gui.model_picker import ModelPickerDialog

    dialog = ModelPickerDialog(win.config, str(win.searcher.engine.model.path), win)
    dialog.resize(*SIZE)
    dialog.show()
    wait(lambda: not dialog.is_loading(), 60, "the model list")
    shot(dialog, "04-model-picker.png")
    dialog.close()
    t0 = time.monotonic()
    win.close()
    print(f"closed in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
