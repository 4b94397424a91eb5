"""Fault points for the fault suite (tests/integration/test_faults.py); off unless DOCSHIFT_FAULT is set."""

import functools
import os
import signal
import time
from collections import Counter

from ..errors import DocshiftError
from ..settings import get_settings

_hits: Counter = Counter()


@functools.cache
def _fault() -> str | None:
    """DOCSHIFT_FAULT, read once per process (the fault suite sets it for a whole `docshift` process)."""
    return get_settings().fault


class InjectedFault(DocshiftError):
    """The failure DOCSHIFT_FAULT=`POINT:N:raise` raises, as a refused write would (not retried), so the run rolls back."""


def fault_point(name: str) -> None:
    """With DOCSHIFT_FAULT=`name`:N, the N-th pass through this point kills the process with SIGKILL, as `kill -9`
    would, at an exact place; with `name`:N:raise it raises InjectedFault there instead; with `name`:N:hang:S that
    pass stops for S seconds and goes on (a task stuck on a dead connection, a frozen worker)."""
    fault = _fault()
    if fault is None or fault.split(":")[0] != name:
        return
    _hits[name] += 1
    _, count, *mode = fault.split(":")
    if _hits[name] == int(count):
        if mode == ["raise"]:
            raise InjectedFault(f"injected fault at {name} (DOCSHIFT_FAULT)")
        if mode[:1] == ["hang"]:
            time.sleep(float(mode[1]))
            return
        os.kill(os.getpid(), signal.SIGKILL)
