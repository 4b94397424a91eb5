"""The temporary Prefect server's process (`python -m docshift.deployments.tethered UVICORN-ARGS`): uvicorn, ended
when the `docshift` process that started it is gone.

That server runs in a session of its own (a Ctrl-C in the terminal must reach `docshift` alone), so nothing else ends
it: a `docshift` killed with kill -9 or by the OOM killer left it running for good. Its stdin is a pipe whose other end
only `docshift` holds; the kernel closes that end when `docshift` exits, however it exits, and end of file here starts
uvicorn's graceful shutdown (SIGTERM), made final after `GRACE_S`.
"""

import os
import signal
import sys
import threading
import time

GRACE_S = 5.0


def _end_with_parent() -> None:
    while os.read(0, 4096):  # nothing is ever written: this returns at end of file (the raw descriptor, not
        pass                 # sys.stdin, whose lock this thread would hold when the interpreter exits: SIGABRT)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_S)
    os._exit(1)


def main() -> None:
    threading.Thread(target=_end_with_parent, name="end-with-parent", daemon=True).start()
    import uvicorn

    uvicorn.main.main(args=sys.argv[1:], prog_name="uvicorn")


if __name__ == "__main__":
    main()
