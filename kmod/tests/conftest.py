"""make kmod-test's figures (boot, scenarios, records), after the results."""

from __future__ import annotations

import pytest
from kmod_guest import TIMINGS


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    for line in config.stash.get(TIMINGS, []):
        terminalreporter.write_line(f"kmod-test: {line}")
