"""What the fuzz targets share: the input as a source of choices, and the
runner.

With atheris installed (the dev extra), `python fuzz/fuzz_X.py [libFuzzer
options]` is coverage-guided: atheris instruments kextlog_store's Python as it
is imported, and libFuzzer keeps the inputs that reach new lines.  Without it
the same targets run on seeded random inputs (`-runs=N`, `-seed=N`,
`-max_total_time=S` are understood either way).  A target only returns or
raises one of kextlog's typed errors; anything else is a finding.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import atheris
except ImportError:  # plain mode: random inputs, no coverage feedback
    atheris = None


def instrumented() -> contextlib.AbstractContextManager:
    """Imports in this context are instrumented for coverage (with atheris)."""
    return atheris.instrument_imports() if atheris else contextlib.nullcontext()


class Choices:
    """The fuzzer's input read as a series of choices; once it runs out,
    every choice is the smallest."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def bytes(self, count: int) -> bytes:
        taken = self._data[self._at : self._at + count]
        self._at += len(taken)
        return taken

    def int(self, limit: int) -> int:
        """0 <= n < limit."""
        size = max((limit - 1).bit_length() + 7, 8) // 8
        return int.from_bytes(self.bytes(size).ljust(size, b"\0"), "little") % limit

    def bool(self) -> bool:
        return self.int(2) == 1

    @property
    def left(self) -> bool:
        return self._at < len(self._data)


def _options(argv: list[str]) -> dict[str, str]:
    return dict(arg[1:].partition("=")[::2] for arg in argv[1:] if arg.startswith("-"))


def _random_inputs(seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    while True:
        yield rng.randbytes(rng.choice((8, 64, 512, 4096)))


# Targets build many frames from one input: long inputs from the start.
DEFAULTS = ("-max_len=4096", "-len_control=0")


def main(target: Callable[[bytes], None]) -> None:
    """Fuzzes target with the command line's options (libFuzzer's)."""
    if atheris is not None:
        given = {arg.partition("=")[0] for arg in sys.argv[1:]}
        defaults = [arg for arg in DEFAULTS if arg.partition("=")[0] not in given]
        atheris.Setup([*sys.argv, *defaults], target)
        atheris.Fuzz()
        return
    inputs = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    for name in inputs:  # inputs to run again, as libFuzzer takes them
        target(Path(name).read_bytes())
    if inputs:
        return
    options = _options(sys.argv)
    runs = int(options.get("runs", 10_000))
    seconds = float(options.get("max_total_time", 0))  # 0: no limit, as in libFuzzer
    deadline = time.monotonic() + (seconds or math.inf)
    done = 0
    for data in _random_inputs(int(options.get("seed", 1))):
        if done == runs or time.monotonic() > deadline:
            break
        try:
            target(data)
        except Exception:
            # As libFuzzer does: the input, to run again with `python fuzz/fuzz_X.py FILE`.
            name = f"crash-{hashlib.sha1(data).hexdigest()}"
            Path(name).write_bytes(data)
            print(f"{sys.argv[0]}: a finding, written to {name}", file=sys.stderr)
            raise
        done += 1
    print(
        f"{sys.argv[0]}: {done:,} random inputs (plain mode: atheris is not installed), no finding"
    )
