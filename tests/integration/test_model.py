"""The model of the whole tool (issue 12), bounded for CI: a seeded walk of a few dozen rules on the real server.

tests/model/walk.py has the model, the rules and the invariants; `scripts/soak --steps N --seed S` runs the same walk
longer. DOCSHIFT_MODEL_STEPS and DOCSHIFT_MODEL_SEED change the walk here; DOCSHIFT_MODEL_SKIP turns off the inputs
that provoke a known bug (tests/model/walk.py: KNOWN_BUGS).
"""

import os
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.model.walk import Harness, describe, replay_file, walk

STEPS = int(os.environ.get("DOCSHIFT_MODEL_STEPS", "30"))
SEED = int(os.environ.get("DOCSHIFT_MODEL_SEED", "1"))


@pytest.mark.model
def test_a_seeded_walk_of_commands_keeps_every_document_as_the_model_has_it(mongodb_uri, prefect_api, tmp_path):
    harness = Harness(mongodb_uri, tmp_path, prefect_api, SEED, orders=120, customers=100)
    try:
        with harness:
            result = walk(harness, SEED, STEPS, log=lambda line: print(line, flush=True))
    finally:
        harness.drop()
    if result.failure:
        out = ROOT / "test-output" / "model"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"failure-seed{SEED}.json").write_text(replay_file(result))
        pytest.fail(f"{describe(result)}\n\nreplay: scripts/soak --replay {Path('test-output/model') / f'failure-seed{SEED}.json'}",
                    pytrace=False)
