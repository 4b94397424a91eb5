"""The benchmark harness (benchmarks/run.py) on 500 users: every mode does the same work, the report has every row.

Speed is never asserted: this only keeps the harness honest (equal work, nothing missing) as the engine changes.
"""

import pytest

from benchmarks import run as bench

pytestmark = pytest.mark.slow  # its own FerretDB and Prefect server, every mode in a child process


def test_every_mode_leaves_the_same_documents_and_the_report_has_every_row(tmp_path):
    out = tmp_path / "table.md"
    results = bench.run([500], {}, None, out)

    assert sorted((r.step, r.mode) for r in results) == sorted((f"{v - 1}→{v}", m) for v, m in bench.MODES)
    assert [(r.mode, r.done, r.check, r.note) for r in results] == [(m, 500, "identical", "") for _, m in bench.MODES]
    table = out.read_text()
    for label in bench.LABELS.values():
        assert label in table
    ratios = [line for line in table.splitlines() if "task runs" in line]  # c/d, c/a, c/b, d/a, additive, share
    assert len(ratios) == 1 and "—" not in ratios[0]
