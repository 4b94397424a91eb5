"""The benchmark harness (benchmarks/run.py) on 300 users: every mode does the same work, the report has every row
and every mode's per-document costs (client CPU, wire bytes through the counting proxy, round trips).

Speed is never asserted: this only keeps the harness honest (equal work, nothing missing) as the engine changes.
The harness runs in a Python process of its own, as `python -m benchmarks.run` does: it points Prefect at its own
server by setting the environment before Prefect is imported, which the test session has long done for its own.
"""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import run as bench
from benchmarks.report import LABELS
from tests.support.paths import ROOT

pytestmark = [pytest.mark.slow,  # its own FerretDB and Prefect server, every mode in a child process
              pytest.mark.embedded_server("the benchmark harness measures a FerretDB of its own")]

HARNESS = """
import json, sys
from pathlib import Path
from benchmarks import run as bench
results = bench.run([300], {}, None, Path(sys.argv[1]))
print(json.dumps([[r.step, r.mode, r.done, r.check, r.note, r.usage.cpu_s, r.wire] for r in results]))
"""


def test_every_mode_leaves_the_same_documents_and_the_report_has_every_row(tmp_path):
    out = tmp_path / "table.md"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOCSHIFT_"))}
    ran = subprocess.run([sys.executable, "-c", HARNESS, str(out)], cwd=ROOT, env=environment, capture_output=True,
                         text=True, timeout=1800)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    results = json.loads(ran.stdout.strip().splitlines()[-1])

    assert sorted((step, mode) for step, mode, *_ in results) == sorted((f"{v - 1}→{v}", m) for v, m in bench.MODES)
    assert [(mode, done, check, note) for _, mode, done, check, note, *_ in results] == [
        (m, 300, "identical", "") for _, m in bench.MODES]
    table = out.read_text()
    for version, mode in bench.MODES:
        assert table.count(f"| {version - 1}→{version} | {LABELS[mode]} |") == 2, mode  # throughput, per-document costs
    assert all(cpu_s > 0 and wire["sent"] > 0 and wire["requests"] > 0 for *_, cpu_s, wire in results)
    ratios = [line for line in table.splitlines() if "task runs" in line]  # c/d, c/a, c/b, additive, share
    assert len(ratios) == 1 and "—" not in ratios[0]
