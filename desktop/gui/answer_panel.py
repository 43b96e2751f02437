"""The answer panel above the results: the answer as it is written, its citations as links.

Hidden until the person presses Ask. The text arrives in pieces (the answerer coalesces
tokens), citations already checked; each [n] is a link that previews passage n, and the
sources the answer cited are listed under it with their place, as links too. Stop stops the
answer at once; a refusal says why, in words.
"""

from __future__ import annotations

import html
import os
import re

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.ask.prompt import Source

_CITE = re.compile(r"\[(\d+)\]")


def answer_html(text: str, sources: dict[int, Source]) -> str:
    """The answer as HTML: escaped, paragraphs kept, each valid [n] a cite:n link."""
    out = []
    for para in re.split(r"\n\s*\n", text.strip()):
        esc = html.escape(para).replace("\n", "<br>")
        esc = _CITE.sub(lambda m: (f'<a href="cite:{m.group(1)}" title="'
                                   f'{html.escape(sources[int(m.group(1))].place())}">'
                                   f"[{m.group(1)}]</a>") if int(m.group(1)) in sources
                        else m.group(0), esc)
        out.append(f"<p>{esc}</p>")
    return "".join(out)


class AnswerPanel(QFrame):
    citation_clicked = Signal(int)  # the passage number
    stop_clicked = Signal()
    closed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("answerPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(self.tr("<b>Answer</b>"))
        self.state = QLabel()
        self.state.setObjectName("answerState")
        self.stop_button = QPushButton(self.tr("Stop"))
        self.stop_button.clicked.connect(self.stop_clicked)
        self.close_button = QPushButton(self.tr("Close"))
        self.close_button.clicked.connect(self._close)
        self.title.setWordWrap(True)
        self.state.setWordWrap(True)
        self.state.setStyleSheet("QLabel#answerState { color: palette(placeholder-text); }")
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.stop_button)
        head.addWidget(self.close_button)
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.text.setOpenExternalLinks(False)
        self.text.anchorClicked.connect(self._anchor)
        self.text.setMinimumHeight(90)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.cited = QLabel()
        self.cited.setWordWrap(True)
        self.cited.setTextFormat(Qt.TextFormat.RichText)
        self.cited.linkActivated.connect(lambda link: self._anchor(QUrl(link)))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addLayout(head)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.cited)
        layout.addWidget(self.state)
        self.sources: dict[int, Source] = {}
        self.answer = ""
        self._cited: list[int] = []
        self.hide()

    # -- from the window ---------------------------------------------------------------------

    def start(self, question: str) -> None:
        self.sources, self.answer, self._cited = {}, "", []
        self.title.setText(self.tr("<b>Answer</b>: {0}").format(html.escape(question)))
        self.state.setText(self.tr("Looking for passages…"))
        self.text.clear()
        self.cited.clear()
        self.stop_button.setEnabled(True)
        self.show()

    def loading(self) -> None:
        self.state.setText(self.tr("Loading the chat model…"))

    def set_sources(self, sources: list[Source]) -> None:
        self.sources = {s.n: s for s in sources}
        self.state.setText(self.tr("Reading {0} passages…").format(len(sources)))

    def add_text(self, text: str) -> None:
        self.answer += text
        self.state.setText(self.tr("Writing…"))
        self.text.setHtml(answer_html(self.answer, self.sources))
        self.text.moveCursor(QTextCursor.MoveOperation.End)

    def add_citation(self, n: int) -> None:
        if n not in self._cited:
            self._cited.append(n)
        self._show_cited()

    def refuse(self, reason: str, before_model: bool) -> None:
        if before_model:
            self.text.setHtml(f"<p><i>{html.escape(self.tr('No answer'))}: "
                              f"{html.escape(reason)}.</i></p>")
        self.state.setText(self.tr("Your documents do not seem to hold the answer"))

    def finish(self, cited: list[int], removed: int, stopped: str, timings: dict) -> None:
        self.stop_button.setEnabled(False)
        self._cited = list(cited)
        self._show_cited()
        first = timings.get("first_token_s")
        parts = []
        if stopped == "cancelled":
            parts.append(self.tr("Stopped"))
        elif stopped == "length":
            parts.append(self.tr("Cut at the length limit"))
        if first is not None:
            parts.append(self.tr("first words after {0:.1f} s, {1:.0f} tokens/s").format(
                first, timings.get("tokens_per_s", 0)))
        if removed:
            parts.append(self.tr("{0} invalid citation(s) removed").format(removed))
        if not cited and stopped not in ("refused", "cancelled"):
            # nothing in it is tied to a passage: it may come from the model, not the files
            parts.append(self.tr("cites none of your files: check it against the sources"))
        if stopped != "refused":
            self.state.setText(" · ".join(parts) or self.tr("Done"))

    def fail(self, message: str) -> None:
        self.stop_button.setEnabled(False)
        self.state.setText(self.tr("Could not answer: {0}").format(message))

    # -- inside ------------------------------------------------------------------------------

    def _show_cited(self) -> None:
        links = []
        for n in self._cited:
            s = self.sources.get(n)
            if s is not None:
                links.append(f'<a href="cite:{n}">[{n}] {html.escape(s.place())}</a>')
        self.cited.setText(self.tr("Sources: ") + " · ".join(links) if links else "")
        self.cited.setToolTip("\n".join(os.path.dirname(self.sources[n].path)
                                        for n in self._cited if n in self.sources))

    def _anchor(self, url: QUrl) -> None:
        text = url.toString()
        if text.startswith("cite:") and text[5:].isdigit():
            self.citation_clicked.emit(int(text[5:]))

    def _close(self) -> None:
        self.stop_clicked.emit()
        self.hide()
        self.closed.emit()
