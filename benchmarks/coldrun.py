"""Whole-process wall time and peak RSS of cold commands; run inside the client namespace.

``python benchmarks/coldrun.py --location URL --spec JSON`` where JSON is a list of
``{"label": ..., "argv": [...], "port": P}``. Each command runs once, in the given order (run.py
rotates it per repetition). Peak RSS comes from GNU ``time`` (``/usr/bin/time -f %M``), which
forks the command from its own ~1 MB process: ``os.wait4`` on a child of this Python process
reports at least this process's ~22 MB, because the kernel's ``ru_maxrss`` keeps the high-water
mark of the address space the child had before ``exec`` (a fork/vfork of this one). Without GNU
``time`` that upper bound is reported, flagged. A command that mapped ``port`` has it deleted
afterwards over a plain socket (not timed), so every run finds the same empty table.
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

GNU_TIME = "/usr/bin/time"


def run_one(argv: list[str]) -> tuple[float, float, int, str]:
    """(wall ms, peak RSS MB, exit status, output tail) of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        timed = os.access(GNU_TIME, os.X_OK)
        cmd = [GNU_TIME, "-f", "%M", "-o", rss.name, *argv] if timed else argv
        t0 = now()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = now() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
        out.seek(0)
        tail = out.read()[-400:].decode(errors="replace")
        peak_kb = float(rss.read().split()[-1]) if timed else float(usage.ru_maxrss)
    return wall, peak_kb / 1024.0, proc.returncode, tail


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
