"""Upkeep beside the writer: a task run now and then on a thread of its own
(the pid index merge, retention), so that the writer keeps committing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..errors import KextlogError

log = logging.getLogger("kextlog.ingest")


class Periodic:
    """Runs task(finishing) on a thread named name: every seconds() seconds,
    and at once when wake() is called.  A failure (KextlogError) is
    reported once, until a run works again, and tried at the next turn.
    finish() ends it: with last_run, after one more run in which finishing
    is set (a task that pauses between steps waits on it, so it does not
    pause then), else as soon as the run under way returns."""

    def __init__(
        self,
        name: str,
        task: Callable[[threading.Event], object],
        seconds: Callable[[], float],
        *,
        last_run: bool = False,
    ) -> None:
        self._name = name
        self._task = task
        self._seconds = seconds
        self._last_run = last_run
        self._wake = threading.Event()
        self.finishing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Run now (or as soon as the run under way returns)."""
        self._wake.set()

    def finish(self) -> None:
        """Stops it, and waits until it has."""
        self.finishing.set()
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        failed: str | None = None
        while True:
            last = self.finishing.is_set()
            if not last:
                self._wake.wait(self._seconds())
                self._wake.clear()
                if self.finishing.is_set() and not self._last_run:
                    return
            try:
                self._task(self.finishing)
                failed = None
            except KextlogError as error:
                if str(error) != failed:
                    log.warning("%s: %s; trying again later", self._name, error)
                    failed = str(error)
            if last or (self.finishing.is_set() and not self._last_run):
                return
