"""The results list's model: scores a person can read, whatever the search mode."""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop.gui.results import SCORE_ROLE, ResultsModel
from desktop.search import RRF_K, Hit


def hit(score: float) -> Hit:
    return Hit(path="/home/me/notes/boiler.txt", score=score, page=None, start=0, end=10,
               line_start=3, line_end=5, text="Top up the boiler pressure to 1.5 bar.",
               kind="text")


def test_scores_read_on_each_modes_own_scale(qtbot):
    model = ResultsModel()
    best = 2.0 / (RRF_K + 1)  # first in the semantic and in the keyword ranking
    model.set_results("boiler pressure", [hit(best), hit(1.0 / (RRF_K + 1))], "hybrid")
    assert [model.data(model.index(i), SCORE_ROLE) for i in range(2)] == ["1.00", "0.50"]
    tip = Qt.ItemDataRole.ToolTipRole
    assert "first by meaning and by keywords" in model.data(model.index(0), tip)
    model.set_results("boiler pressure", [hit(0.6234)], "semantic")
    assert model.data(model.index(0), SCORE_ROLE) == "0.62"
    model.set_results("boiler pressure", [hit(12.345)], "keyword")
    assert model.data(model.index(0), SCORE_ROLE) == "12.3"
    assert "BM25" in model.data(model.index(0), tip)
