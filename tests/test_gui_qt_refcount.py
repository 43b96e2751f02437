"""The installed PySide6 must not drop references to None.

PySide6 6.12.0 decrements None's reference count on every Qt call that returns nothing. From
Python 3.12 None is immortal and nothing happens; on 3.11 the count runs down with each label
update and tree item, and after some minutes of use the window dies with "Fatal Python error:
none_dealloc". pyproject.toml keeps such a PySide6 off Python 3.11; this test fails if one is
installed anyway.
"""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QLabel, QProgressBar, QTreeWidget, QTreeWidgetItem

CALLS = 2000


@pytest.mark.skipif(sys.version_info >= (3, 12),
                    reason="None is immortal from Python 3.12: its reference count never moves, "
                           "so this test could not fail (and the crash cannot happen)")
def test_void_qt_calls_keep_their_reference_to_none(qtbot) -> None:
    label, bar, tree = QLabel(), QProgressBar(), QTreeWidget()
    for w in (label, bar, tree):
        qtbot.addWidget(w)
    item = QTreeWidgetItem(["folder"])
    tree.addTopLevelItem(item)
    calls = [
        lambda: label.setText("3 of 7 files"),
        lambda: bar.setValue(3),
        lambda: item.setToolTip(0, "a tooltip"),
        lambda: item.setData(0, 257, "/a/path"),
        lambda: item.setExpanded(True),
        lambda: tree.currentItem(),  # returns None: no item is current
    ]
    for call in calls:
        call()  # anything created once (caches, type objects) is created here
        before = sys.getrefcount(None)
        for _ in range(CALLS):
            call()
        lost = before - sys.getrefcount(None)
        assert lost < CALLS // 10, (
            f"PySide6 lost {lost} references to None in {CALLS} calls: this PySide6 crashes "
            "the window on Python < 3.12; install one below 6.12")
