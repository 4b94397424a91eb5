"""When a failed task is worth retrying."""

from docshift.errors import ConnectionClosedAfterWrite, DocshiftError


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
