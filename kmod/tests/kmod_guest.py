"""The test guest of `make kmod-test`: Debian's kernel in qemu (TCG) with
kmod/guest/init as its init, and the real `kextlog ingest` on the host end
of the relay (qemu's chardev, a Unix socket).

The guest announces its steps on the console ("kmod-test: NAME k=v ...");
Guest.wait() returns each, in order.  The host answers by starting,
stopping and killing ingest; the guest sees that through the module's own
state (connected, acknowledged, connects)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.processes import start

ROOT = Path(__file__).resolve().parents[2]
KMOD = ROOT / "kmod"
STEP = "kmod-test: "
STEP_TIMEOUT = 240.0  # seconds for one step: TCG on a loaded machine is slow
TIMINGS = pytest.StashKey[list[str]]()  # the figures of the run, for the summary
# What the kernel prints when something is wrong, right after the timestamp
# (a record's text may say WARNING: at the same place in a kextlog line).
FORBIDDEN = re.compile(
    r"^\[\s*\d+\.\d+\] (BUG:|WARNING:|Oops|general protection fault|Kernel panic|Call Trace:"
    r"|-+\[ cut here \])|sleeping function called from invalid context|scheduling while atomic"
)


def kernel_version() -> str:
    """The kernel of Debian's linux-headers-amd64, as kmod/Makefile builds for."""
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(KMOD), "kernel-version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def missing(kver: str) -> list[str]:
    """What the test needs and this machine lacks (tests/install-packages.sh kmod)."""
    needs = {
        f"the kernel image /boot/vmlinuz-{kver}": Path(f"/boot/vmlinuz-{kver}").exists(),
        f"its headers /lib/modules/{kver}/build": Path(f"/lib/modules/{kver}/build").exists(),
        "qemu-system-x86_64": shutil.which("qemu-system-x86_64") is not None,
        "busybox (static)": Path("/bin/busybox").exists(),
    }
    return [what for what, there in needs.items() if not there or not kver]


@dataclass
class Step:
    name: str
    fields: dict[str, str]
    seconds: float  # since the guest started
    line: int  # its place on the console

    def __getitem__(self, key: str) -> int:
        return int(self.fields[key])


@dataclass
class Guest:
    """qemu running the guest; every console line is kept, and written to log."""

    process: subprocess.Popen[str]
    log: Path
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _next: int = 0  # the first console line wait() has not looked at
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _ended: bool = False

    @classmethod
    def boot(cls, kver: str, initramfs: Path, socket: Path, log: Path, **sizes: int) -> Guest:
        parameters = " ".join(f"{name}={value}" for name, value in sizes.items())
        command = [
            "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-smp", "2", "-m", "512M", "-serial", "stdio",
            "-kernel", f"/boot/vmlinuz-{kver}", "-initrd", str(initramfs),
            # Debian's kernel has no lockdep, KASAN or KFENCE: full preemption
            # (preempt counts, scheduling while atomic), SLUB's red zones and
            # poisoning, page poisoning; any oops ends the guest at once.
            # no_timer_check: on a loaded host, emulated time runs so unevenly
            # that the kernel's IO-APIC timer check fails and it panics at boot.
            "-append", "console=ttyS0 quiet panic=-1 oops=panic preempt=full no_timer_check "
            f"slub_debug=FZPU page_poison=1 {parameters}",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=relay,path={socket},server=on,wait=off",
            "-device", "virtserialport,chardev=relay,name=kextlog",
        ]  # fmt: skip
        process = subprocess.Popen(
            ["nice", *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        guest = cls(process, log)
        threading.Thread(target=guest._read, daemon=True).start()
        return guest

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.log.open("w") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                with self._changed:
                    self.lines.append(line.rstrip("\r\n"))
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait(self, name: str, timeout: float = STEP_TIMEOUT) -> Step:
        """The guest's next step, which must be name.  A kernel that reports
        a bug ends the wait at once: the guest may hang after it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                while self._next < len(self.lines):
                    line = self.lines[self._next]
                    self._next += 1
                    if FORBIDDEN.search(line):
                        raise AssertionError(f"the guest's kernel says {line!r} (see {self.log})")
                    if line.startswith(STEP):
                        return self._step(name, line[len(STEP) :], self._next - 1)
                if self._ended:
                    raise AssertionError(f"the guest ended before {name!r} (see {self.log})")
                if not self._changed.wait(max(deadline - time.monotonic(), 0)):
                    raise TimeoutError(
                        f"no {name!r} from the guest in {timeout} s (see {self.log})"
                    )

    def _step(self, name: str, text: str, line: int) -> Step:
        words = text.split()
        fields = dict(word.split("=", 1) for word in words if "=" in word)
        said = " ".join(word for word in words if "=" not in word)
        if said != name:
            raise AssertionError(f"the guest said {text!r}, expected {name!r} (see {self.log})")
        return Step(said, fields, time.monotonic() - self.started, line)

    def finish(self, timeout: float = 60) -> int:
        """qemu's exit status, once the guest has powered off."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def console(self) -> list[str]:
        with self._changed:
            return list(self.lines)


@dataclass
class Ingest:
    """The real daemon on the host end of the relay, started and stopped at will."""

    socket: Path
    db: Path
    log: Path
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = start(
            "ingest", "--source", f"unix:{self.socket}", "--db", str(self.db), log=self.log
        )

    def wait_connected(self, connections: int, timeout: float = 60) -> None:
        """Until the daemons started so far have connected (and sent RESUME)
        this many times in all."""
        deadline = time.monotonic() + timeout
        while self.log.read_text().count("connected to") < connections:
            if time.monotonic() > deadline:
                raise TimeoutError(f"ingest did not connect (see {self.log})")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: a clean stop (commit, ACK, exit 0)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=60) == 0
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no flush, no ACK, maybe in the middle of a transaction."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


def matches(lines: list[str], pattern: str) -> list[re.Match[str]]:
    """The lines matching pattern (a regular expression), in order."""
    return [match for line in lines if (match := re.search(pattern, line))]
