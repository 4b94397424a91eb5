"""Fault points for the fault suite (tests/integration/test_faults.py); off unless DOCSHIFT_FAULT is set."""

import functools
import os
import signal
from collections import Counter

from ..settings import get_settings

_hits: Counter = Counter()


@functools.cache
def _fault() -> str | None:
    """DOCSHIFT_FAULT, read once per process (the fault suite sets it for a whole `docshift` process)."""
    return get_settings().fault


def fault_point(name: str) -> None:
    """With DOCSHIFT_FAULT=`name`:N, the N-th pass through this point kills the process with SIGKILL, as `kill -9`
    would, at an exact place."""
    fault = _fault()
    if fault is None or fault.rpartition(":")[0] != name:
        return
    _hits[name] += 1
    if _hits[name] == int(fault.rpartition(":")[2]):
        os.kill(os.getpid(), signal.SIGKILL)
