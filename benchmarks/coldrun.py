"""Whole-process wall time and peak RSS of cold commands; run inside the client namespace.

``python benchmarks/coldrun.py --location URL --spec JSON`` where JSON is a list of
``{"label": ..., "argv": [...], "port": P}``. Each command runs once, in the given order (run.py
rotates it per repetition); ``os.wait4`` gives the child's own ``ru_maxrss``. A command that
mapped ``port`` has it deleted afterwards over a plain socket (not timed), so every run finds
the same empty table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time

from _common import emit, now
from floor import Soap


def run_one(argv: list[str]) -> tuple[float, float, int, str]:
    """(wall ms, peak RSS MB, exit status, output tail) of one child process."""
    with tempfile.TemporaryFile() as out:
        t0 = now()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = now() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
        out.seek(0)
        tail = out.read()[-400:].decode(errors="replace")
    return wall, usage.ru_maxrss / 1024.0, proc.returncode, tail


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--location", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--gap", type=float, default=0.05)
    a = p.parse_args()
    soap = Soap(a.location)
    series: dict[str, list[float]] = {}
    failures: dict[str, str] = {}
    for item in json.loads(a.spec):
        label = item["label"]
        wall, rss, rc, tail = run_one(item["argv"])
        if rc != 0:
            failures[label] = f"rc {rc}: {tail}"
        else:
            series.setdefault(label, []).append(wall)
            series.setdefault(f"{label}#rss", []).append(rss)
        if item.get("port"):
            try:
                soap.delete(int(item["port"]))
            except RuntimeError:
                pass  # 714: the command did not map it (it failed)
        time.sleep(a.gap)
    emit(series, failures=failures)


if __name__ == "__main__":
    main()
