"""Why a Prefect server failed to start, read from its log (deployments/local_server.py `failure_reason`)."""

from docshift.deployments.local_server import failure_reason

FAILED_STARTUP = """\
02:38:38.402 | ERROR   | uvicorn.error - Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py", line 145, in __init__
    self._dbapi_connection = engine.raw_connection()
sqlite3.OperationalError: unable to open database file

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/starlette/routing.py", line 661, in lifespan
    async with self.lifespan_context(app) as maybe_state:
sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) unable to open database file
(Background on this error at: https://sqlalche.me/e/21/e3q8)

02:38:38.491 | ERROR   | uvicorn.error - Application startup failed. Exiting.
"""


def test_the_reason_is_the_exception_of_the_last_traceback():
    assert failure_reason(FAILED_STARTUP) == ("sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) "
                                              "unable to open database file")


def test_without_a_traceback_the_reason_is_the_last_line_and_an_empty_log_gives_none():
    log = ("02:40:01.100 | ERROR   | uvicorn.error - [Errno 98] error while attempting to bind on address "
           "('127.0.0.1', 4200): address already in use\n\n")
    assert failure_reason(log) == log.strip()
    assert failure_reason("") == ""
