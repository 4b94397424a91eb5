"""Where things are: the project, its seed migrations, the venv's executables; and a free loopback port."""

import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEED_MIGRATIONS = ROOT / "migrations"
BIN = Path(sys.executable).parent  # the venv's `docshift` and `prefect`


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
