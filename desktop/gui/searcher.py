"""The window's searcher: the latest query, answered off the GUI thread.

`Searcher` runs queries on a one-thread pool of its own, so a search never waits behind
indexing: it shares the worker's Engine, whose embedder serialises decodes (a query waits at
most for one batch of passages) and whose store may be read while it is written. Only the
latest query's answer is delivered; older ones are skipped or dropped.
"""

from __future__ import annotations

import logging
import time
from functools import partial

from PySide6.QtCore import QObject, QThreadPool, Signal

from desktop.engine import Engine
from desktop.logs import error_details
from desktop.search import Query

log = logging.getLogger(__name__)


class Searcher(QObject):
    """Runs the latest query off the GUI thread; results arrive as `results_arrived`."""

    results_arrived = Signal(int, object, list, float)  # serial, request, hits, seconds
    search_failed = Signal(int, object, str, str)  # serial, request, message, details

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._serial = 0
        self.engine: Engine | None = None

    @property
    def latest(self) -> int:
        return self._serial

    def set_engine(self, engine: Engine | None) -> None:
        self.engine = engine

    def search(self, req: Query) -> int:
        """Queue a search; any earlier one still waiting is skipped. Returns its serial."""
        self._serial += 1
        if self.engine is None:
            return self._serial
        self._pool.start(partial(self._run, self._serial, req, self.engine))
        return self._serial

    def cancel(self) -> None:
        """Forget every search asked for so far (their answers will not arrive)."""
        self._serial += 1

    def shutdown(self, timeout_ms: int = 5000) -> None:
        self.cancel()
        self._pool.clear()
        self._pool.waitForDone(timeout_ms)

    def _run(self, serial: int, req: Query, engine: Engine) -> None:
        if serial != self._serial:
            return  # a newer query came in while this one waited
        t0 = time.perf_counter()
        try:
            hits = engine.run_query(req)
        except Exception as exc:
            log.warning("search for %r failed", req.text, exc_info=True)
            if serial == self._serial:
                details = error_details(exc)
                self.search_failed.emit(serial, req, str(exc), details)
            return
        if serial == self._serial:
            self.results_arrived.emit(serial, req, hits, time.perf_counter() - t0)
