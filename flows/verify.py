"""The verify flow: re-run an applied migration's checks on demand or on a schedule (`verify` deployment)."""

from prefect import flow

from docshift import engine
from docshift.db import connect
from docshift.errors import VerificationFailed
from docshift.ledger import Ledger
from docshift.loader import ScriptDirectory
from docshift.settings import get_settings
from tasks.verify import verify as verify_task


@flow(name="verify", description="Check an applied migration (default: the current version) against the data now.")
def verify(version: int | None = None, database: str | None = None) -> dict:
    """Run the checks and show them as a table artifact; a failed check fails the run (and alerts)."""
    settings = get_settings(database)
    scripts = ScriptDirectory.load(settings.migrations_dir)
    db = connect(settings)
    version = Ledger(db).current_version() if version is None else scripts.check_target(version)
    if version == 1:
        return {"version": 1, "passed": True, "checks": []}
    step = engine.make_step(scripts, version, "up")
    result = verify_task(db, scripts.get(version).migration, step, None)
    if not result.passed:
        raise VerificationFailed(f"migration {version} does not verify: {result.summary()}")
    return {"version": version, "passed": True, "checks": result.checks}
