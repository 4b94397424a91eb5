"""When a failed task is worth retrying."""

from docshift.errors import DocshiftError


def transient(task, task_run, state) -> bool:
    """Retry database and network trouble; never a user's error (a bad `up` fails the same way every time)."""
    try:
        state.result()
    except DocshiftError:
        return False
    except Exception:
        return True
    return False
