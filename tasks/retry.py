"""When a failed task, or a run that failed in Prefect itself, is worth retrying."""

import httpx
from prefect.exceptions import PrefectException

from docshift.errors import ConnectionClosedAfterWrite, DocshiftError

ORCHESTRATION_ERRORS = (PrefectException, httpx.HTTPError)
"""What Prefect raises when it fails, not the migration: its API refusing under load (503) after the client's retries."""


def transient(task, task_run, state) -> bool:
    """Retry database and network trouble; never a user's error (a bad `up` fails the same way every time); a
    connection the server closed while docshift wrote, although it answers, only once (see refusals_named)."""
    try:
        state.result()
    except DocshiftError:
        return False
    except ConnectionClosedAfterWrite:
        return task_run.run_count < 2
    except Exception:
        return True
    return False


def orchestration_failure(error: Exception) -> str:
    """What failed in Prefect, on one line (an HTTP error's text goes on with the response and a link)."""
    return f"{type(error).__name__}: {next(iter(str(error).splitlines()), '')}"
