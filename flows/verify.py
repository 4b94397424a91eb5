"""The verify flow: re-run an applied migration's checks on demand or on a schedule (`verify` deployment)."""

from prefect import flow

from docshift.context import RunContext
from docshift.engine.steps import make_step
from docshift.engine.verify import Verification
from docshift.errors import VerificationFailed
from docshift.ledger import Ledger
from docshift.settings import get_settings
from docshift.spec import INITIAL_VERSION
from docshift.tasks.verify import verify as verify_task


@flow(name="verify", description="Check an applied migration (default: the current version) against the data now.")
def verify(version: int | None = None, database: str | None = None) -> Verification:
    """Run the checks and show them as a table artifact; a failed check fails the run (and alerts)."""
    ctx = RunContext.open(get_settings(database))
    version = Ledger(ctx.db).current_version() if version is None else ctx.scripts.check_target(version)
    if version == INITIAL_VERSION:
        return Verification()
    step = make_step(ctx.scripts, version, "up")
    result = verify_task(ctx.db, ctx.scripts.get(version).migration, step, None)
    if not result.passed:
        raise VerificationFailed(f"migration {version} does not verify: {result.summary()}")
    return result
