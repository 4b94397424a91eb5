"""Issue 12, item 8: `status` counts quarantined documents and `history` has a quarantined column; on an 80-column
terminal `history` prints one block per run so that no run id or flow-run id is cut."""

import re

from tests.support.orders import add_orders_migrations, break_state, seed_orders


def test_status_and_history_show_quarantined_documents(env):
    add_orders_migrations(env.migrations, without_users=True)
    seed_orders(env.db, 300, seed=71)
    break_state(env.migrations, ["o-17", "o-230"])  # migration 7 raises for these two

    assert env.cli("migrate", "--max-failures", "2").returncode == 0
    status = env.cli("status")
    history = env.cli("history")

    assert status.returncode == 0
    assert ("quarantined     2 documents (migration 7: 2), left unchanged: `docshift quarantine` lists them"
            in status.stdout), status.stdout
    assert "drift           none" in status.stdout  # quarantined documents are behind on purpose, not drift
    header = next(line for line in history.stdout.splitlines() if line.startswith("┃"))
    columns = [c.strip() for c in header.strip("┃").split("┃")]
    rows = {r.split("│")[2].strip(): [c.strip() for c in r.strip("│").split("│")]
            for r in history.stdout.splitlines() if r.startswith("│ v")}
    q = columns.index("quarantined")
    assert {v: row[q] for v, row in rows.items()} == {"6": "0", "7": "2", "8": "0"}

    narrow = env.cli("history", extra={"COLUMNS": "80"})

    entries = list(env.ledger.find({"kind": "history"}))
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines()), narrow.stdout
    for entry in entries:
        assert re.search(rf"^{entry['_id']}  migration {entry['version']} up, applied$", narrow.stdout, re.M), narrow.stdout
        assert f"flow run {entry['flow_run_id']}" in narrow.stdout
    assert re.search(r"(^  |   )quarantined 2(   |$)", narrow.stdout, re.MULTILINE), narrow.stdout
