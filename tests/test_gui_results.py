"""The results list's model: scores a person can read, whatever the search mode."""

from __future__ import annotations

import pytest
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


@pytest.mark.qt_log_level_fail("WARNING")  # Qt's own tester reports through qWarning
@pytest.mark.parametrize("force_py", [False, True], ids=["qt-tester", "python-tester"])
def test_results_model_passes_the_model_tester(qtmodeltester, force_py):
    """Qt's QAbstractItemModelTester (and pytest-qt's Python one) check the model, and keep
    checking it while searches replace the results and clear them."""
    pdf = Hit(path="/home/me/manuals/boiler.pdf", score=0.71, page=4, start=120, end=380,
              line_start=0, line_end=0, text="Bleed the radiators before topping up.",
              kind="pdf")
    model = ResultsModel()
    model.set_results("boiler pressure", [hit(0.62), pdf], "semantic")
    qtmodeltester.check(model, force_py=force_py)
    model.set_results("radiators", [pdf, hit(0.3), hit(0.2)], "hybrid")
    model.set_results("nothing matches", [], "keyword")
    model.set_results("boiler", [hit(12.3)], "keyword")
    model.clear()
    assert model.rowCount() == 0
