"""Start-up: ``python main.py`` to the first painted map, against the floor that any PySide6 +
torch program pays, side by side in one run.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/startup.py [--repeats 5]

Each repeat runs, alternately (so that a noisy neighbour hits both alike):

* the reference ``python -c "import torch, PySide6.QtWidgets"``, timed to the line it prints
  once imported;
* ``python main.py --first-map`` with a fresh ``HOME`` (first start: the default checkpoint and
  sample image), timed from the launch to the line it prints once the first map is painted
  (closing the window afterwards is not counted).

It prints the median wall time of each, their ratio (goal, issue 11: at most 1.5), and each
child's peak resident memory at that line (``ru_maxrss``; goal: at most 500 MiB for the app)
with the reference's beside it, since the part of the app's peak that is torch's own import is
not ours to cut. The peaks at exit (``os.wait4``) follow: Python's teardown of torch adds ~130
MiB to both.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The reference prints its peak once the imports are done, as the app prints its own once the
# first map is painted: both wall times and both peaks then stop before Python's teardown, which
# costs torch ~130 MiB of RSS and 0.1-0.3 s at exit.
REFERENCE = [
    sys.executable,
    "-c",
    "import torch, PySide6.QtWidgets, resource; "
    "print('imported, peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'MiB')",
]
APP = [sys.executable, str(ROOT / "main.py"), "--first-map"]


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one child process. The wall time ends when the
    child prints its first line (the app: "first map painted ...", before it closes the
    window), or when it exits (the reference prints nothing)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # blocks until the first line, or EOF at exit
    wall = time.perf_counter() - start
    _, status, usage = os.wait4(proc.pid, 0)
    out = (first + proc.stdout.read()).decode()
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return wall, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    return measure(args.repeats)


def measure(repeats: int) -> int:
    """Run ``repeats`` alternating pairs and print the figures."""
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    ref_wall, ref_rss, ref_at, app_wall, app_rss, painted, at_map = [], [], [], [], [], [], []
    # The package byte-compiled, as `make run` leaves it: where PYTHONDONTWRITEBYTECODE is set
    # (this machine), an editable install would otherwise compile ~130 modules on every start.
    compileall.compile_dir(ROOT / "inspector", quiet=1)
    _run(REFERENCE, env)  # warm the page cache for both: the first import reads ~1 GB of .so
    with tempfile.TemporaryDirectory() as home:
        for _ in range(repeats):
            w, r, out = _run(REFERENCE, env)
            ref_wall.append(w)
            ref_rss.append(r)
            ref_at.append(float(out.split()[-2]))  # "imported, peak Y MiB"
            fresh = Path(tempfile.mkdtemp(dir=home))  # no saved window state, no recent files
            w, r, out = _run(APP, {**env, "HOME": str(fresh), "XDG_CONFIG_HOME": str(fresh)})
            app_wall.append(w)
            app_rss.append(r)
            words = out.split()  # "first map painted X s after start, peak Y MiB"
            painted.append(float(words[3]))
            at_map.append(float(words[-2]))
    ref, app = statistics.median(ref_wall), statistics.median(app_wall)
    print(f"repeats: {repeats}, alternating; python {sys.version.split()[0]}")
    print(f"import torch, PySide6.QtWidgets : {ref:6.2f} s wall   peak {max(ref_at):6.0f} MiB")
    print(
        f"main.py to first painted map    : {app:6.2f} s wall   peak {max(at_map):6.0f} MiB"
        f"   (painted {statistics.median(painted):.2f} s after the interpreter started)"
    )
    print(f"ratio app / reference           : {app / ref:6.2f}   (goal <= 1.5)")
    print(
        f"peak memory                     : {max(at_map):6.0f} MiB (goal <= 500); "
        f"{max(at_map) - max(ref_at):+.0f} MiB over the reference's own"
    )
    print(
        f"peaks with Python's teardown    : app {max(app_rss):.0f} MiB, reference "
        f"{max(ref_rss):.0f} MiB (ru_maxrss at exit; not counted above)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
