"""Kernel-to-commit latency: the simulated kext at a steady rate, the ingest
daemon as a real process, every 16th record's latency from its own kernel
timestamp to the COMMIT that stored it (ingest's run histogram).

    python bench/latency.py [--rate 50000] [--duration 30] [--socket-type seqpacket]

Ingest starts first, so records never wait for a daemon that is starting up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEXTLOG = [sys.executable, "-m", "kextlog_store.cli"]


def run(rate: int, duration: float, socket_type: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="kextlog-bench-") as scratch:
        sock, db = Path(scratch) / "sim.sock", Path(scratch) / "k.db"
        env = dict(os.environ, KEXTLOG_DB=str(db))
        ingest = subprocess.Popen(
            [*KEXTLOG, "ingest", "--source", f"unix:{sock}", "--db", str(db)],
            stderr=subprocess.DEVNULL,
            env=env,
        )
        status = Path(f"{db}-ingest.json")
        while not status.exists():  # migrations done, readers waiting for the socket
            time.sleep(0.05)
        simulator = subprocess.run(
            [*KEXTLOG, "simulate", "--socket", str(sock), "--socket-type", socket_type,
             "--rate", str(rate), "--duration", str(duration)],
            capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(timeout=60)
        counters = json.loads(simulator.stdout)
        final = json.loads(status.read_text())
        return {
            "rate": rate,
            "duration_s": duration,
            "socket": socket_type,
            "generated": counters["generated"],
            "lost": counters["lost"],
            "stored": final["stored"],
            "p50_ms": final["latency_ms"]["run"]["p50"],
            "p99_ms": final["latency_ms"]["run"]["p99"],
            "samples": final["latency_ms"]["run"]["samples"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--socket-type", default="seqpacket", choices=["seqpacket", "stream"])
    args = parser.parse_args()
    result = run(args.rate, args.duration, args.socket_type)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
