"""Stopping a run from outside it: SIGINT, SIGTERM, or its orchestration gone.

The run works in a thread of its own while the main thread, where Python delivers signals, waits for it. A first
SIGINT or SIGTERM asks the run to stop at its next batch boundary (the batch loop calls `check_stop`): the checkpoint
stays, the flow releases the lock and records the run as interrupted, and the command exits 130 or 143. A second
signal stops at once, as kill -9 would (the checkpoint is safe), after releasing the lock. While it waits, the main
thread also asks the orchestration whether it still answers: after `timeout` seconds without an answer (at once
when it cannot come back) the run is asked to stop, and when it cannot finish stopping within a grace period,
because every step of it needs the orchestration, the lock is released and the process exits, instead of hanging
while the lock is renewed for ever.
"""

import contextvars
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import Interrupted

_stop = threading.Event()
_why: list[str] = []
_signals: list[int] = []


@dataclass(frozen=True)
class Unhealthy:
    """Why the orchestration does not answer; `final` when it cannot come back (its own server has exited)."""

    why: str
    final: bool = False


@dataclass(frozen=True)
class Watch:
    """How the main thread watches a run: the orchestration's health, how long it may fail, and what to let go of
    (the lock, a temporary server) when the process must exit without the run."""

    health: Callable[[], Unhealthy | None]
    let_go: Callable[[], Any]
    timeout_s: float = 60.0
    grace_s: float = 10.0
    poll_s: float = 1.0


def request_stop(why: str) -> None:
    """Ask the running work to stop at its next batch boundary."""
    _why.append(why)
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def sleep(seconds: float) -> None:
    """Sleep between batches, cut short when the run is asked to stop."""
    _stop.wait(seconds)


def received_signal() -> int | None:
    """The first signal that asked this process to stop, if any."""
    return _signals[0] if _signals else None


def check_stop(where: str, resume: str) -> None:
    """At a batch boundary: raise Interrupted if a stop was asked for (the caller's checkpoint is saved)."""
    if _stop.is_set():
        raise Interrupted(f"interrupted {where}; `{resume}` resumes")


class SignalStop(BaseException):
    """A signal that stops the main thread at once (a BaseException, so that no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def stop_at_once(signum: int, frame) -> None:
    """The handler outside a supervised run: stop the command where it is."""
    _signals.append(signum)
    raise SignalStop(signum)


def _ask_to_stop(signum: int, frame) -> None:
    """The handler during a supervised run: the first signal asks the run to stop, a second one stops at once."""
    if _signals:
        stop_at_once(signum, frame)
    _signals.append(signum)
    request_stop(signal.Signals(signum).name)


def supervise(work: Callable[[], Any], watch: Watch) -> Any:
    """Run `work` in a thread (with this context: settings, the Prefect server) and wait for it, handling SIGINT and
    SIGTERM and watching the orchestration; returns its result or raises its exception. Called from another thread
    (signals reach the main thread only), it just runs `work`."""
    if threading.current_thread() is not threading.main_thread():
        return work()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="docshift-run", daemon=True)
    previous = {s: signal.signal(s, _ask_to_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        thread.start()
        _wait(thread, watch)
    except SignalStop as exc:
        _exit_now(f"stopped at once by a second signal ({exc}); the checkpoint is kept: run the command again to resume",
                  128 + _signals[0], watch)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def _wait(thread: threading.Thread, watch: Watch) -> None:
    """Wait for the run; when the orchestration fails for too long, stop the run, and if it cannot stop, exit."""
    failing_since: float | None = None
    while thread.is_alive():
        thread.join(watch.poll_s)
        if not thread.is_alive():
            continue
        problem = watch.health()
        if problem is None:
            failing_since = None
            continue
        failing_since = failing_since or time.monotonic()
        if problem.final or time.monotonic() - failing_since >= watch.timeout_s:
            request_stop(problem.why)
            thread.join(watch.grace_s)
            message = (f"{problem.why}{'' if problem.final else f' for {watch.timeout_s:g} s'}: the run cannot report "
                       f"to its orchestration, so it stopped; the checkpoint is kept: run `docshift migrate` again")
            _exit_now(message, 1, watch)


def _exit_now(message: str, code: int, watch: Watch) -> None:
    """Let go of the lock and the temporary server, say why in one line, and exit without waiting for the run's thread
    (it is stuck, or stopping it was refused; its checkpoint is as safe as after kill -9)."""
    try:
        watch.let_go()
    except Exception:  # the database may be gone too: the lease then runs out, or the next run here takes it over
        pass
    print(f"docshift: error: {message}", file=sys.stderr, flush=True)
    os._exit(code)
