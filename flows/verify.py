"""The verify flow: re-run an applied migration's checks on demand or on a schedule (`verify` deployment)."""

from prefect import flow

from docshift.context import RunContext
from docshift.engine.verify import Verification
from docshift.errors import VerificationFailed
from docshift.settings import get_settings
from docshift.tasks.verify import verify_applied


@flow(name="verify", description="Check an applied migration (default: the current version) against the data now.")
def verify(version: int | None = None, database: str | None = None) -> Verification:
    """Run the checks (documents behind their collection's recorded version too) and show them as a table artifact;
    a failed check fails the run (and alerts)."""
    ctx = RunContext.open(get_settings(database))
    version, result = verify_applied(ctx, version)
    if not result.passed:
        raise VerificationFailed(f"migration {version} does not verify: {result.summary()}")
    return result
