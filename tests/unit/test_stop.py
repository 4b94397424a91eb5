"""The supervised run's stop (docshift.stop): a signal stops it at its next boundary; an orchestration gone for the
timeout stops it and exits."""

import os
import signal
import threading
import time

import pytest

from docshift import stop
from docshift.errors import Interrupted

@pytest.fixture
def fresh_stop(monkeypatch):
    monkeypatch.setattr(stop, "_stop", threading.Event())
    monkeypatch.setattr(stop, "_signals", [])
    monkeypatch.setattr(stop, "_why", [])

def batches():
    """A run's batch loop in miniature: checks for a stop at every boundary."""
    for done in range(0, 10_000, 10):
        stop.check_stop(f"at {done} of 10000 documents", "docshift migrate")
        time.sleep(0.01)
    return "finished"

def test_a_signal_asks_the_run_to_stop_at_its_next_boundary(fresh_stop):
    watch = stop.Watch(health=lambda: None, let_go=lambda: None, poll_s=0.05)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()

    with pytest.raises(Interrupted, match=r"interrupted at \d+ of 10000 documents; `docshift migrate` resumes"):
        stop.supervise(batches, watch)
    assert stop.received_signal() == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is not stop._ask_to_stop  # the handlers before the run are back

def test_an_orchestration_gone_for_the_timeout_stops_the_run_and_exits(fresh_stop, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(stop.os, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    watch = stop.Watch(health=lambda: stop.Unhealthy("the API does not answer"), let_go=lambda: calls.append("let go"),
                       timeout_s=0.3, grace_s=2, poll_s=0.05)
    started = time.monotonic()

    with pytest.raises(SystemExit) as exited:
        stop.supervise(batches, watch)

    assert exited.value.code == 1 and calls == ["let go"] and time.monotonic() - started < 3
    assert stop.stop_requested()
    assert capsys.readouterr().err == ("docshift: error: the API does not answer for 0.3 s: the run cannot report to its "
                                       "orchestration, so it stopped; the checkpoint is kept: run `docshift migrate` again\n")
