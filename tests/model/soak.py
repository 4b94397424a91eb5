"""The model walk, longer: `scripts/soak --steps N --seed S` (see tests/model/walk.py).

Runs episodes of the walk on a FerretDB and a Prefect server (its own, or given with --uri/--prefect-api): each
episode starts from fresh seed data in a database of its own and walks until it fails or the steps run out; a failed
episode is recorded (seed, steps to replay, what broke, whether it is a known bug) and the next one starts. Prints
steps held / steps tried, documents lost, and the wall time.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="rules to run in all (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first episode; the next ones count up")
    parser.add_argument("--episode", type=int, default=0, help="longest episode before a fresh database (0: no limit)")
    parser.add_argument("--orders", type=int, default=150)
    parser.add_argument("--customers", type=int, default=120)
    parser.add_argument("--replay", type=Path, help="a JSON file written by an earlier failure: run exactly its steps")
    parser.add_argument("--minimize", action="store_true",
                        help="with --replay: drop steps one at a time while the same failure still happens")
    parser.add_argument("--out", type=Path, default=Path("test-output/soak"), help="where failures are written")
    parser.add_argument("--uri", help="a running FerretDB/MongoDB (default: start one)")
    parser.add_argument("--prefect-api", help="a running Prefect server's API URL (default: start one)")
    args = parser.parse_args(argv)

    from tests.model import walk as model

    args.out.mkdir(parents=True, exist_ok=True)
    if args.minimize:
        with servers(args.uri, args.prefect_api) as (uri, prefect_env):
            return minimize(model, json.loads(args.replay.read_text()), uri, prefect_env, args)
    with servers(args.uri, args.prefect_api) as (uri, prefect_env):
        started = time.monotonic()
        tried = held = lost = 0
        failures = []
        seed = args.seed
        replay = json.loads(args.replay.read_text()) if args.replay else None
        skipped = sorted(model.SKIP)
        print(f"soak: up to {args.steps} steps from seed {args.seed}; known-bug inputs off: {', '.join(skipped) or 'none'}")
        while tried < args.steps:
            seed = replay["seed"] if replay else seed
            budget = args.steps - tried if not args.episode else min(args.episode, args.steps - tried)
            with tempfile.TemporaryDirectory(prefix="docshift-soak-") as work:
                harness = model.Harness(uri, Path(work), prefect_env, seed, args.orders, args.customers)
                try:
                    with harness:
                        result = model.walk(harness, seed, budget, replay["steps"] if replay else None,
                                            log=lambda line: print(f"[{seed}] {line}", flush=True))
                finally:
                    harness.drop()
            tried += len(result.steps)
            held += result.held
            if result.failure:
                lost += result.failure.lost
                bug = model.known_bug(result.failure, result.steps)
                failures.append((seed, len(result.steps), bug, str(result.failure)))
                (args.out / f"failure-seed{seed}.json").write_text(model.replay_file(result))
                (args.out / f"failure-seed{seed}.txt").write_text(model.describe(result))
                print(model.describe(result), flush=True)
            if replay:
                break
            seed += 1
        seconds = time.monotonic() - started
    print(f"\nsoak: {held} / {tried} steps held, {len(failures)} failures, {lost} documents lost, {seconds:.0f} s wall time")
    for seed, n, bug, text in failures:
        print(f"  seed {seed}, step {n - 1}: {'known bug ' + bug if bug else 'NEW'}: {text[:400]}")
    return 1 if failures else 0


def replay(model, seed: int, steps: list[dict], uri: str, prefect_env: dict, args):
    with tempfile.TemporaryDirectory(prefix="docshift-soak-") as work:
        harness = model.Harness(uri, Path(work), prefect_env, seed, args.orders, args.customers)
        try:
            with harness:
                return model.walk(harness, seed, len(steps), steps, log=lambda line: None)
        finally:
            harness.drop()


def signature(model, result) -> tuple | None:
    """What a failure is, to tell whether a shorter replay still shows it: its known bug, or its kinds of problem."""
    if result.failure is None:
        return None
    return model.known_bug(result.failure, result.steps) or tuple(sorted({k for k, _ in result.failure.problems}))


def minimize(model, failure: dict, uri: str, prefect_env: dict, args) -> int:
    """Greedy: drop each step in turn (last first) and keep it dropped while the replay fails the same way."""
    seed, steps = failure["seed"], failure["steps"]
    wanted = signature(model, replay(model, seed, steps, uri, prefect_env, args))
    print(f"minimize: {len(steps)} steps, failure {wanted}")
    if wanted is None:
        print("minimize: the replay did not fail")
        return 1
    i = len(steps) - 2  # the failing step stays
    while i >= 0:
        shorter = steps[:i] + steps[i + 1:]
        result = replay(model, seed, shorter, uri, prefect_env, args)
        if signature(model, result) == wanted:
            steps = shorter[: len(result.steps)]
            print(f"minimize: dropped step {i}: {len(steps)} left")
        i -= 1
    minimal = {"seed": seed, "steps": steps}
    path = args.out / f"minimal-seed{seed}.json"
    path.write_text(json.dumps(minimal, indent=1))
    print(f"minimize: {len(steps)} steps still fail with {wanted}: {path}")
    for s in steps:
        print(f"  {s['rule']} {json.dumps(s['params'])}")
    return 0


class servers:
    """The given servers, or a FerretDB (scripts/ferretdb) and a Prefect server of this run, stopped at the end."""

    def __init__(self, uri, api):
        self.uri, self.api, self.stack = uri, api, None

    def __enter__(self):
        import contextlib
        import subprocess

        from docshift.deployments.local_server import local_prefect_server
        from tests.support.paths import ROOT, free_port as _free_port

        self.stack = contextlib.ExitStack()
        uri, prefect_env = self.uri, {"PREFECT_API_URL": self.api} if self.api else None
        if uri is None:
            folder = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-ferretdb-")))
            env = {**os.environ, "FERRETDB_PORT": str(_free_port()), "FERRETDB_DIR": str(folder),
                   "DOCSHIFT_PYTHON": sys.executable}
            script = str(ROOT / "scripts" / "ferretdb")
            started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=600, check=True)
            uri = started.stdout.strip()
            self.stack.callback(subprocess.run, [script, "stop"], env=env, timeout=60)
        if prefect_env is None:
            home = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-prefect-")))
            prefect_env = self.stack.enter_context(local_prefect_server(home, _free_port()))
        return uri, prefect_env

    def __exit__(self, *exc):
        self.stack.close()


if __name__ == "__main__":
    sys.exit(main())
