"""A model of the whole tool, checked by seeded random walks of commands on the real server (issue 12).

The tool runs as a user runs it: the `docshift` command line (in this process, through its typer app, where the
rule is not about the process; as a `docshift` subprocess killed with SIGKILL at a fault point otherwise), on the
session's FerretDB and Prefect server, with the migrations of tests/model/migrations (orders: 2 additive,
3 transformative; customers: 4 destructive, 5 transformative, which a rule breaks on purpose to quarantine documents).

The model keeps, for each document, its version-1 value (its *base*): its value at any version is the base run
through the migrations' `up` functions (`docshift.engine.steps.transform_one`, as a run does). Migrations, downs and
rollbacks never change a base; the application's writes do (an added `note`, a new amount or name), and a restore
sets a document's base to that of the pre-image it put back. A field that the restored version does not show (the
`legacy_code` that migration 4 removed) comes back on a later `down` from the newest pre-image docshift holds, which
may be one saved after the backup: the model accepts any value the document ever had there (Model.hidden) and adopts
it. After every rule (and after the commands inside one):

- every document equals the model's value at the document's own version, compared as MongoDB stores them;
- no document lost, duplicated or invented;
- the recorded version is the one the rule predicts, and every document is at its collection's version for it,
  unless the tool says so loudly (`docshift quarantine` lists the document, or `docshift status` reports drift);
- the lock is free and no run is left unfinished.

A walk is seeded: every rule's parameters are drawn from the seed and logged, so a failing walk can be replayed
(`scripts/soak --replay FILE`). Known bugs that other changes are fixing are named in KNOWN_BUGS; each is checked
by default, and `DOCSHIFT_MODEL_SKIP=name,...` turns off the rule input that provokes it until its fix lands.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bson
import pymongo

from docshift import dump
from docshift.engine.planning import plan_steps
from docshift.engine.steps import make_step, transform_one
from docshift.errors import DocshiftError
from docshift.loader import ScriptDirectory
from docshift.testing import as_bson, first_difference
from docshift.transform import version_filter

HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations"
BIN = Path(sys.executable).parent

COLLECTIONS = {"orders": (2, 3), "customers": (4, 5)}
"""Each collection and the migrations that change it, in order."""
HEAD = 5
BROKEN_VERSION, BROKEN_FILE = 5, "0005_customer_name.py"

KNOWN_BUGS = {
    "restore-ledger": "restore puts documents back at an older version but leaves the recorded version, and neither "
                      "status nor migrate reports the drift (the restore rule)",
    "rollback-added-field": "a rollback puts the pre-image back over a document whose only change since the run is a "
                            "field the application added, erasing it (the application's `note` writes)",
    "old-version-insert": "a document the application inserts at an old version during a run fails the run's "
                          "verification or is left behind silently (the application's inserts at version 1)",
}
NOT_FIXED_ON_MAIN = ""
"""Known-bug inputs kept off by default until their fix lands (comma-separated names of KNOWN_BUGS); none now: issue 12
item 2 (restore and the recorded version) has landed, so the restore rule is on. DOCSHIFT_MODEL_SKIP overrides it."""
SKIP = {name for name in os.environ.get("DOCSHIFT_MODEL_SKIP", NOT_FIXED_ON_MAIN).split(",") if name}
ENABLED = {name: name not in SKIP for name in KNOWN_BUGS}
"""Which known-bug inputs are on: all by default; DOCSHIFT_MODEL_SKIP=restore-ledger,... turns some off."""

MIGRATE_FAULTS = ("backup", "pre-images-saved", "batch-written", "checkpoint-saved", "verify", "finish")
ROLLBACK_FAULT = "rollback-batch"
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tony")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Hoare")


class ModelFailure(AssertionError):
    """An invariant did not hold: `problems` are (kind, detail) pairs."""

    def __init__(self, context: str, problems: list[tuple[str, str]], drifted: set | None = None):
        self.context, self.problems, self.drifted = context, problems, drifted or set()
        super().__init__(f"{context}: " + "; ".join(f"[{k}] {d}" for k, d in problems))

    @property
    def lost(self) -> int:
        return sum(int(d.split()[0]) for k, d in self.problems if k == "lost")


# --- the model ------------------------------------------------------------------------------------------------


def collection_version(collection: str, recorded: int) -> int:
    """The version of `collection`'s documents when the database is at `recorded`."""
    return max((v for v in COLLECTIONS[collection] if v <= recorded), default=1)


def collection_of(version: int) -> str:
    return next(c for c, versions in COLLECTIONS.items() if version in versions)


def spelled(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


MISSING = object()
"""A field a document does not have."""


class Model:
    """Every document's base (its value at version 1), every base it ever had (with when it got it), and the value at
    any version."""

    def __init__(self):
        self.scripts = ScriptDirectory.load(MIGRATIONS)  # the pristine files, whatever a rule does to the copies
        self.bases: dict[tuple[str, Any], dict] = {}
        self.past: dict[tuple[str, Any], list[tuple[float, dict]]] = {}
        self.hidden: dict[tuple[str, Any], dict[str, list]] = {}
        """Per restored document, the values each field its restored version does not show may come back with."""
        self.next_id = {c: 1 for c in COLLECTIONS}
        self.lock = threading.Lock()

    def add(self, collection: str, base: dict) -> None:
        with self.lock:
            key = (collection, base["_id"])
            self.bases[key] = base
            self.past.setdefault(key, []).append((time.time(), base))

    def change(self, collection: str, doc_id: Any, base: dict) -> None:
        """The application wrote the document: a hidden field it wrote is known again."""
        key = (collection, doc_id)
        if hidden := self.hidden.get(key):
            before = self.bases[key]
            for name in [f for f in hidden if base.get(f, MISSING) != before.get(f, MISSING)]:
                del hidden[name]
        self.add(collection, base)

    def restored(self, collection: str, base: dict, version: int) -> None:
        """A restore put back the document with this base at `version`: which fields that version does not show
        may come back on a down, and with which values (any the document had)."""
        key = (collection, base["_id"])
        shown = as_bson(self.value(collection, base, version))
        hidden = {}
        for name in {f for _, b in self.past.get(key, []) for f in b} - {"_id"}:
            try:
                probe = self.value(collection, {**base, name: "\x00probe"}, version)
            except Exception:  # a field the ups read (an amount): shown
                continue
            if as_bson(probe) == shown:
                hidden[name] = [b.get(name, MISSING) for _, b in self.past.get(key, [])]
        self.change(collection, base["_id"], base)
        self.hidden[key] = hidden

    def adopt(self, collection: str, doc: dict, version: int) -> bool:
        """Whether `doc` is its restored base with hidden fields at values it had (then the base takes them)."""
        key = (collection, doc["_id"])
        base = dict(self.bases[key])
        for name, values in self.hidden.get(key, {}).items():
            now = doc.get(name, MISSING)
            if now is MISSING and MISSING in values:
                base.pop(name, None)
            elif now is not MISSING and now in values:
                base[name] = now
        if base == self.bases[key] or as_bson(self.value(collection, base, version)) != as_bson(doc):
            return False
        self.hidden.pop(key)
        self.add(collection, base)
        return True

    def new_id(self, collection: str) -> int:
        with self.lock:
            self.next_id[collection] += 1
            return self.next_id[collection] - 1

    def value(self, collection: str, base: dict, version: int) -> dict:
        """What the document with this base is at `version`: the ups applied as a run applies them."""
        doc = dict(base)
        for v in COLLECTIONS[collection]:
            if v <= version:
                doc = transform_one(self.scripts.get(v).migration, make_step(self.scripts, v, "up"), doc, None)
        return doc

    def base_of(self, collection: str, doc: dict, taken: float) -> dict | None:
        """Which of the document's past bases gives `doc` at its version (a pre-image restored from a backup sealed
        at `taken`), or None. Bases that differ only in fields the version does not show (a `legacy_code` that
        migration 4 removed) give the same document: the newest of them the backup could have read is the one."""
        version = doc.get("schema_version") or 1
        wanted = as_bson(doc)
        matching = [(at, base) for at, base in self.past.get((collection, doc["_id"]), [])
                    if version in (1, *COLLECTIONS[collection]) and as_bson(self.value(collection, base, version)) == wanted]
        readable = [base for at, base in matching if at <= taken]
        return (readable or [base for _, base in matching] or [None])[-1]

    def ids(self, collection: str) -> set:
        return {i for c, i in self.bases if c == collection}


def seed_data(model: Model, rng: random.Random, orders: int, customers: int) -> dict[str, list[dict]]:
    """Version-1 orders and customers: amounts spelled several ways, some customers without legacy_code."""
    docs: dict[str, list[dict]] = {"orders": [], "customers": []}
    for _ in range(customers):
        docs["customers"].append(new_customer(model, rng))
    for _ in range(orders):
        docs["orders"].append(new_order(model, rng, customers))
    return docs


def new_order(model: Model, rng: random.Random, customers: int, version: int = 1) -> dict:
    """An order whose amount is spelled as people write it: '70.12', '070.12', '70.1', '70'; inserted at version 3
    (in cents), only as 0003's `down` spells it without a pre-image."""
    unit = rng.choice([1, 10, 100])
    cents = rng.randrange(0, 999_999 // unit) * unit
    whole, fraction = divmod(cents, 100)
    forms = [spelled(cents), "0" + spelled(cents)]
    if fraction % 10 == 0:
        forms.append(f"{whole}.{fraction // 10}")
    if fraction == 0:
        forms.append(str(whole))
    if version >= 3:
        forms = [spelled(cents)]
    return {"_id": model.new_id("orders"), "customer": rng.randrange(1, customers + 1), "amount": rng.choice(forms),
            "status": rng.choice(["open", "paid", "shipped"]),
            "items": [{"sku": f"SKU-{rng.randrange(100)}", "qty": rng.randrange(1, 5)} for _ in range(rng.randrange(0, 3))]}


def new_customer(model: Model, rng: random.Random, version: int = 1) -> dict:
    """A customer; inserted at version 4 or later, without the legacy_code that 0004 removed (nothing can give it back)."""
    doc = {"_id": model.new_id("customers"), "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
           "email": f"c{rng.randrange(10**6)}@example.com", "points": rng.randrange(0, 5000),
           "tags": rng.sample(["vip", "new", "eu", "b2b"], rng.randrange(0, 3))}
    if rng.random() < 0.7 and version < 4:
        doc["legacy_code"] = f"L-{rng.randrange(10**4):04d}"
    return doc


# --- the application ------------------------------------------------------------------------------------------


class App:
    """The application writing meanwhile: inserts, updates that add a field (`note`, which no migration touches),
    updates of migrated fields (the amount, a customer's name or legacy_code, written as the document's version has
    them).

    Between commands it inserts at each collection's current version (its code is up to date). During a run it
    inserts at the version each collection had when the run started: the instances of the application that the run
    has not replaced yet (at version 1 when a walk starts from the seed data). Every acknowledged write goes into the
    model. Updates of migrated fields are guarded by the version read, as an application using the schema-versioning
    pattern writes them; one that lost a race to a migration is read again and retried."""

    def __init__(self, db, model: Model, rng: random.Random, recorded: int, concurrent: bool):
        self.db, self.model, self.rng, self.recorded, self.concurrent = db, model, rng, recorded, concurrent
        self.ops: list[str] = []
        self.inserted: set[tuple[str, Any]] = set()  # during a run
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def kinds(self) -> list[str]:
        kinds = ["update-migrated", "update-migrated"]
        if not self.concurrent or ENABLED["old-version-insert"]:
            kinds.append("insert")
        if ENABLED["rollback-added-field"]:
            kinds += ["add-note", "add-note"]
        return kinds

    def op(self) -> None:
        kind = self.rng.choice(self.kinds())
        collection = self.rng.choice(list(COLLECTIONS))
        if kind == "insert":
            self.insert(collection, collection_version(collection, self.recorded))
        elif kind == "add-note":
            self.add_note(collection)
        else:
            self.update_migrated(collection)

    def insert(self, collection: str, version: int) -> None:
        base = (new_order(self.model, self.rng, self.model.next_id["customers"] - 1, version) if collection == "orders"
                else new_customer(self.model, self.rng, version))
        self.db[collection].insert_one(self.model.value(collection, base, version))
        self.model.add(collection, base)
        self.ops.append(f"insert {collection} {base['_id']} at {version}" + (" during the run" if self.concurrent else ""))
        if self.concurrent:
            self.inserted.add((collection, base["_id"]))

    def pick(self, collection: str) -> Any:
        with self.model.lock:
            ids = sorted(i for c, i in self.model.bases if c == collection)
        return self.rng.choice(ids)

    def add_note(self, collection: str) -> None:
        doc_id = self.pick(collection)
        note = f"note {self.rng.randrange(10**6)}"
        self.db[collection].update_one({"_id": doc_id}, {"$set": {"note": note}})
        self.model.change(collection, doc_id, {**self.model.bases[(collection, doc_id)], "note": note})
        self.ops.append(f"note {collection} {doc_id}")

    def update_migrated(self, collection: str) -> None:
        doc_id = self.pick(collection)
        for _ in range(5):
            doc = self.db[collection].find_one({"_id": doc_id})
            version = doc.get("schema_version") or 1
            base = dict(self.model.bases[(collection, doc_id)])
            if collection == "orders":
                cents = self.rng.randrange(1_000_000, 100_000_000)  # never an amount of the seed: see 0003's down
                update = {"amount_cents": cents} if version >= 3 else {"amount": spelled(cents)}
                base["amount"] = spelled(cents)
            elif version < 4 and self.rng.random() < 0.5:
                update = {"legacy_code": f"L-{self.rng.randrange(10**4, 10**5)}"}
                base["legacy_code"] = update["legacy_code"]
            else:
                first, last = self.rng.choice(FIRST_NAMES), f"{self.rng.choice(LAST_NAMES)}{self.rng.randrange(100)}"
                update = {"first_name": first, "last_name": last} if version >= 5 else {"name": f"{first} {last}"}
                base["name"] = f"{first} {last}"
            if self.db[collection].update_one({"_id": doc_id, **version_filter(version)}, {"$set": update}).matched_count:
                self.model.change(collection, doc_id, base)
                self.ops.append(f"update {collection} {doc_id} at {version}: {sorted(update)}")
                return

    def run(self, n: int) -> None:
        for _ in range(n):
            self.op()

    def start(self, n: int) -> None:
        """Write up to `n` times in a thread, tenths of a second apart (through the whole run), until stopped."""
        def loop():
            try:
                for _ in range(n):
                    if self._stop.wait(self.rng.uniform(0.02, 0.3)):
                        return
                    self.op()
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self.error = exc
        self._thread = threading.Thread(target=loop, name="model-app", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread:
            self._stop.set()
            self._thread.join()
        if self.error:
            raise ModelFailure("the application", [("app-error", f"{type(self.error).__name__}: {self.error}")])


# --- the tool as a user runs it ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def told(self) -> list[list[str]]:
        """The first complete `docshift ...` command the tool tells the user to run (in backticks, or ending its
        sentence), as a list of at most one: "re-run `docshift migrate`, or `docshift rollback --run X`" offers
        alternatives. None with a placeholder (RUN_ID, N, ...)."""
        text = self.out + "\n" + self.err
        for found in re.finditer(r"`(docshift [^`]+)`|(?<![`\w])(docshift (?:migrate|rollback|restore|unlock)\b[^;,`()\n]*)", text):
            args = shlex.split((found.group(1) or found.group(2)).strip().rstrip("."))[1:]
            if args and not any(re.search(r"[A-Z]{2,}|\.\.\.|…|\[|<", a) for a in args):
                return [args]
        return []


@dataclass
class Step:
    index: int
    rule: str
    params: dict
    seconds: float = 0.0
    held: bool = True
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    inserted_during: set = field(default_factory=set)  # by the application while a command ran


class Harness:
    """One database, a private copy of the model migrations and backup folder, the model, and the rules."""

    def __init__(self, uri: str, workdir: Path, prefect_env: dict, seed: int, orders: int = 150, customers: int = 120,
                 database: str | None = None, log=None):
        self.uri, self.workdir, self.prefect_env, self.seed = uri, Path(workdir), prefect_env, seed
        self.database = database or f"model_{seed}_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
        self.migrations = self.workdir / "migrations"
        if self.migrations.exists():
            shutil.rmtree(self.migrations)
        shutil.copytree(MIGRATIONS, self.migrations, ignore=shutil.ignore_patterns("__pycache__"))
        self.env = {"DOCSHIFT_MONGODB_URI": uri, "DOCSHIFT_DATABASE": self.database,
                    "DOCSHIFT_MIGRATIONS_DIR": str(self.migrations), "DOCSHIFT_BACKUP_DIR": str(self.workdir / "backups"),
                    "DOCSHIFT_LOCK_LEASE_SECONDS": "30"}
        self.client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
        self.db = self.client[self.database]
        self.model = Model()
        self.recorded = 1
        self.log = log or (lambda line: None)
        rng = random.Random(seed)
        for collection, docs in seed_data(self.model, rng, orders, customers).items():
            for doc in docs:
                self.model.add(collection, doc)
            self.db[collection].insert_many(docs)
        self._saved_env: dict = {}
        self.retries: set[str] = set()  # runs that retried quarantined documents (the recorded version stays)
        self.undos: set[str] = set()  # runs that took back an interrupted run's partial changes

    # the process environment of in-process commands: DOCSHIFT_* (read by every get_settings()) and Prefect's API
    def __enter__(self) -> "Harness":
        for k, v in self.env.items():
            self._saved_env[k] = os.environ.get(k)
            os.environ[k] = v
        from prefect.settings import PREFECT_API_URL, temporary_settings

        self._prefect = temporary_settings(updates={PREFECT_API_URL: self.prefect_env["PREFECT_API_URL"]})
        self._prefect.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._prefect.__exit__(*exc)
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def drop(self) -> None:
        self.client.drop_database(self.database)

    # --- commands ---
    def cli(self, *args: str) -> Outcome:
        """`docshift ARGS` in this process, through the command line's own typer app."""
        from docshift.cli import app

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                app(list(args), standalone_mode=False, prog_name="docshift")
            except DocshiftError as exc:
                return Outcome(1, out.getvalue(), str(exc))
        return Outcome(0, out.getvalue(), "")

    def process(self, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
        """`docshift ARGS` as its own process (to be killed at a fault point)."""
        variables = {**os.environ, **self.prefect_env, **self.env, "PREFECT_LOGGING_LEVEL": "WARNING", "COLUMNS": "200",
                     **(extra or {})}
        return subprocess.run([str(BIN / "docshift"), *args], env=variables, capture_output=True, text=True, timeout=600)

    def expect_ok(self, outcome: Outcome, what: str) -> Outcome:
        if not outcome.ok:
            raise ModelFailure(what, [("refused", outcome.err or outcome.out[-500:])])
        return outcome

    # --- what the ledger says ---
    def ledger(self):
        return self.db["_migrations"]

    def current(self) -> int:
        doc = self.ledger().find_one({"_id": "current"})
        return doc["version"] if doc else 1

    def checkpoint(self) -> dict | None:
        return self.ledger().find_one({"_id": "checkpoint"})

    def history(self) -> list[dict]:
        return sorted(self.ledger().find({"kind": "history"}), key=lambda e: e["started_at"])

    def latest_run(self) -> tuple[dict | None, bool]:
        """The latest run in the history, and whether `rollback --run` of it should be accepted."""
        entries = self.history()
        if not entries:
            return None, False
        latest = entries[-1]
        finished = [e for e in entries if e["outcome"] in ("applied", "reverted")]
        step = make_step(self.model.scripts, latest["version"], latest["direction"])
        if latest.get("recorded_before") == latest.get("recorded_after") == self.current():
            self.retries.add(latest["_id"])  # it carried documents behind up (drift): the tool treats it as a retry
        accepted = (self.checkpoint() is None and latest["outcome"] in ("applied", "reverted")
                    and finished[-1]["_id"] == latest["_id"] and self.current() == step.recorded_after
                    and latest["_id"] not in self.retries and latest["_id"] not in self.undos)
        return latest, accepted

    def expire_lease(self) -> None:
        """A killed run's lease runs out (written into the past; nobody sleeps)."""
        self.ledger().update_one({"_id": "lock"}, {"$set": {"expires_at": datetime.now(timezone.utc) - timedelta(hours=1)}})

    def path(self, target: int) -> list:
        return plan_steps(self.model.scripts, self.recorded, target, None)

    # --- the invariants ---
    def check(self, context: str, expect_recorded: int | None) -> None:
        """Every invariant of the issue; raises ModelFailure listing every one that fails."""
        problems: list[tuple[str, str]] = []
        recorded = self.current()
        if expect_recorded is not None and recorded != expect_recorded:
            problems.append(("recorded-version", f"the ledger records {recorded}, the model expects {expect_recorded}"))
        if (lock := self.ledger().find_one({"_id": "lock"})) is not None:
            problems.append(("lock-held", f"held by {lock.get('owner')} until {lock.get('expires_at')}"))
        if (checkpoint := self.checkpoint()) is not None:
            problems.append(("unfinished-run", f"checkpoint of run {checkpoint.get('run_id')} left: "
                                               f"{ {k: checkpoint.get(k) for k in ('version', 'direction', 'rolling_back')} }"))
        behind = []
        for collection in COLLECTIONS:
            docs = list(self.db[collection].find())
            counts = Counter(d["_id"] for d in docs)
            if dup := [i for i, n in counts.items() if n > 1]:
                problems.append(("duplicated", f"{len(dup)} {collection} documents more than once, e.g. _id={dup[0]!r}"))
            model_ids = self.model.ids(collection)
            if lost := sorted(model_ids - set(counts)):
                problems.append(("lost", f"{len(lost)} {collection} documents missing, e.g. _id={lost[:5]}"))
            if extra := sorted(set(counts) - model_ids, key=repr):
                problems.append(("invented", f"{len(extra)} {collection} documents the model never had, e.g. _id={extra[:5]}"))
            mismatched, notes_lost = [], []
            for doc in docs:
                key = (collection, doc["_id"])
                if key not in self.model.bases:
                    continue
                version = doc.get("schema_version") or 1
                if version not in (1, *COLLECTIONS[collection]):
                    mismatched.append(f"_id={doc['_id']!r} at version {version!r}, not one of {collection}'s")
                    continue
                expected = self.model.value(collection, self.model.bases[key], version)
                if as_bson(doc) != as_bson(expected) and self.model.adopt(collection, doc, version):
                    expected = doc
                if as_bson(doc) != as_bson(expected) and "note" in expected and "note" not in doc and \
                        as_bson(doc) == as_bson({k: v for k, v in expected.items() if k != "note"}):
                    notes_lost.append(f"_id={doc['_id']!r}")
                elif as_bson(doc) != as_bson(expected):
                    mismatched.append(f"_id={doc['_id']!r} at version {version}: "
                                      f"{first_difference(expected, doc)} (model before, database after)")
                if version != collection_version(collection, recorded):
                    behind.append((collection, doc["_id"], version))
            if mismatched:
                problems.append(("value", f"{len(mismatched)} {collection} documents differ from the model, e.g. "
                                          + " | ".join(mismatched[:3])))
            if notes_lost:
                problems.append(("note-lost", f"{len(notes_lost)} {collection} documents lost the `note` the application "
                                              f"added, and only that, e.g. {', '.join(notes_lost[:5])}"))
        drifted = set()
        if behind:
            quarantined = {(e["collection"], e["doc_id"]) for e in self.db["_quarantine"].find()}
            silent = [b for b in behind if b[:2] not in quarantined]
            drifted = {b[:2] for b in silent}
            if silent:
                status = self.cli("status")
                if "drift" not in (status.out + status.err).lower():
                    by = Counter((c, v) for c, _, v in silent)
                    problems.append(("silent-drift", f"the ledger records version {recorded} but "
                                     + ", ".join(f"{n} {c} at version {v}" for (c, v), n in sorted(by.items()))
                                     + f" (e.g. _id={silent[0][1]!r}), and neither `docshift status` nor "
                                       f"`docshift quarantine` says so"))
        if problems:
            raise ModelFailure(context, problems, drifted)
        self.recorded = recorded

    # --- rules: each draws its parameters (draw_*) and runs them (rule_*) ---
    def app_for(self, params: dict, concurrent: bool) -> App | None:
        if not params.get("app"):
            return None
        return App(self.db, self.model, random.Random(params["app"]), self.recorded, concurrent)

    def batch_size(self, rng: random.Random) -> int:
        """Several batches per step: an eighth to a half of the larger collection."""
        most = max(len(self.model.ids(c)) for c in COLLECTIONS)
        return rng.randrange(max(3, most // 8), max(4, most // 2))

    @staticmethod
    def stop_writer(step: Step, writer: App | None) -> None:
        if writer is None:
            return
        try:
            writer.stop()
        finally:
            step.notes += writer.ops
            step.inserted_during |= writer.inserted

    def draw_migrate(self, rng: random.Random) -> dict:
        return {"target": rng.choice([v for v in (1, 2, 3, 4, 5)]), "batch_size": self.batch_size(rng),
                "app": rng.randrange(10**6) if rng.random() < 0.5 else 0}

    def rule_migrate(self, step: Step, target: int, batch_size: int, app: int) -> None:
        writer = self.app_for(step.params, concurrent=True)
        if writer:
            writer.start(40)
        try:
            outcome = self.cli("migrate", str(target), "--batch-size", str(batch_size))
        finally:
            self.stop_writer(step, writer)
        self.expect_ok(outcome, f"migrate {target}")
        self.check(f"after migrate {target}", target)

    def draw_app_writes(self, rng: random.Random) -> dict:
        return {"app": rng.randrange(1, 10**6), "n": rng.randrange(1, 12)}

    def rule_app_writes(self, step: Step, app: int, n: int) -> None:
        writer = self.app_for(step.params, concurrent=False)
        writer.run(n)
        step.notes += writer.ops
        self.check("after the application's writes", self.recorded)

    def draw_rollback(self, rng: random.Random) -> dict:
        return {"app": rng.randrange(10**6) if rng.random() < 0.3 else 0, "since": rng.randrange(10**6),
                "writes": rng.choice([0, 0, 2, 6])}

    def rule_rollback(self, step: Step, app: int, since: int = 0, writes: int = 0) -> None:
        latest, accepted = self.latest_run()
        if latest is None:
            step.notes.append("no run to roll back")
            return
        if writes:  # the application wrote since the run (the concurrent writer below writes during the rollback)
            before = App(self.db, self.model, random.Random(since), self.recorded, concurrent=False)
            before.run(writes)
            step.notes += [f"{op} (before the rollback)" for op in before.ops]
        run_step = make_step(self.model.scripts, latest["version"], latest["direction"])
        step.notes.append(f"rollback --run {latest['_id']} ({latest['outcome']}, expected "
                          f"{'accepted' if accepted else 'refused'})")
        writer = self.app_for(step.params, concurrent=True)
        if writer:
            writer.start(40)
        try:
            outcome = self.cli("rollback", "--run", latest["_id"])
        finally:
            self.stop_writer(step, writer)
        if accepted:
            self.expect_ok(outcome, f"rollback --run {latest['_id']}")
            self.check(f"after rollback --run {latest['_id']}", run_step.recorded_before)
        elif outcome.ok:
            raise ModelFailure(f"rollback --run {latest['_id']}", [("accepted", "a rollback the model expects to be "
                                                                                 "refused was done: " + outcome.out[-300:])])
        elif latest["_id"] in self.retries | self.undos:
            # refused: a retry of quarantined documents, or the undoing of an interrupted run, is not undone alone;
            # the tool says what reverts (or applies) the migration for every document
            step.notes.append(f"refused: {outcome.err[:300]}")
            if not outcome.told():
                raise ModelFailure(f"rollback --run {latest['_id']}", [("no-advice", outcome.err)])
            self.follow_advice(step, outcome, f"rollback --run {latest['_id']}")
            expected = (run_step.recorded_before if latest["_id"] in self.retries else
                        make_step(self.model.scripts, latest["version"],
                                  "up" if latest["direction"] == "down" else "down").recorded_after)
            self.check(f"after the advice of a refused rollback --run {latest['_id']}", expected)
        else:
            step.notes.append(f"refused: {outcome.err[:300]}")
            self.check(f"after a refused rollback --run {latest['_id']}", self.recorded)

    def draw_restore(self, rng: random.Random) -> dict:
        return {"pick": rng.random()}

    def rule_restore(self, step: Step, pick: float) -> None:
        backups = list(self.db["_backups"].find().sort("created", 1))
        if not backups:
            step.notes.append("no backup yet")
            return
        entry = backups[int(pick * len(backups))]
        outcome = self.cli("restore", entry["_id"])
        step.notes.append(f"restore {entry['_id']} ({entry.get('documents', '?')} documents, "
                          f"{'sealed' if 'sha256' in entry else 'unsealed'}): "
                          + (outcome.out.strip().splitlines() or [""])[-1][:300] + outcome.err[:300])
        if "sha256" not in entry:
            if outcome.ok:
                raise ModelFailure("restore of an unfinished backup", [("accepted", outcome.out[-300:])])
        elif outcome.ok:
            self.restored(entry)
        self.follow_advice(step, outcome, "restore")
        self.check(f"after restore {entry['_id']} and what the tool said to run", None)

    def restored(self, entry: dict) -> None:
        """The model after a restore: each document of the backup file has that pre-image's base again."""
        last: dict = {}
        for raw in dump.read(Path(entry["path"])):
            doc = bson.decode(raw.raw)
            last[doc["_id"]] = doc
        unknown = []
        for doc in last.values():
            base = self.model.base_of(entry["collection"], doc, entry["sealed"].replace(tzinfo=timezone.utc).timestamp())
            if base is None:
                unknown.append(repr(doc["_id"]))
            else:
                self.model.restored(entry["collection"], base, doc.get("schema_version") or 1)
        if unknown:
            raise ModelFailure(f"restore {entry['_id']}", [("backup", f"{len(unknown)} documents of the backup are "
                               f"values the documents never had, e.g. _id={unknown[:5]}")])

    def follow_advice(self, step: Step, outcome: Outcome, what: str) -> None:
        """Run the complete commands the tool told the user to run, in order."""
        for args in outcome.told():
            try:
                advised = self.cli(*args)
            except Exception as exc:  # click's own errors: the advice does not parse as a command
                step.notes.append(f"advice `docshift {' '.join(args)}` not runnable: {type(exc).__name__}: {exc}")
                continue
            step.notes.append(f"ran advice `docshift {' '.join(args)}`: "
                              f"{'ok' if advised.ok else 'refused: ' + advised.err[:200]}")
            if not advised.ok:
                raise ModelFailure(f"after {what}", [("advice-failed", f"`docshift {' '.join(args)}` that the tool "
                                                                      f"told to run failed: {advised.err}")])

    def draw_quarantine(self, rng: random.Random) -> dict:
        modulus = rng.randrange(7, 40)
        return {"modulus": modulus, "residue": rng.randrange(modulus), "max_failures": rng.randrange(0, 12),
                "below": rng.randrange(1, 5), "batch_size": self.batch_size(rng)}

    def rule_quarantine(self, step: Step, modulus: int, residue: int, max_failures: int, below: int, batch_size: int) -> None:
        if self.recorded >= BROKEN_VERSION:
            self.expect_ok(self.cli("migrate", str(below)), f"migrate {below}")
            self.check(f"after migrate {below}", below)
        path = self.migrations / BROKEN_FILE
        pristine = path.read_text()
        path.write_text(pristine.replace(
            "def up(doc: dict) -> dict:\n",
            "def up(doc: dict) -> dict:\n"
            f"    if doc['_id'] % {modulus} == {residue}:\n"
            "        raise ValueError(f\"cannot split the name of customer {doc['_id']}\")\n", 1))
        try:
            failing = sorted(d["_id"] for d in self.db.customers.find({"schema_version": {"$ne": BROKEN_VERSION}}, {"_id": 1})
                             if d["_id"] % modulus == residue)
            outcome = self.cli("migrate", str(HEAD), "--max-failures", str(max_failures), "--batch-size", str(batch_size))
            step.notes.append(f"{len(failing)} customers fail, --max-failures {max_failures}: "
                              + ("ok" if outcome.ok else outcome.err[:200]))
            if len(failing) > max_failures:
                if outcome.ok or "more than --max-failures" not in outcome.err:
                    raise ModelFailure("migrate over --max-failures", [("not-refused", outcome.err or outcome.out[-300:])])
                self.check("after a migrate rolled back over --max-failures", BROKEN_VERSION - 1)
            else:
                self.expect_ok(outcome, "migrate with quarantined documents")
                listed = sorted(e["doc_id"] for e in self.db["_quarantine"].find({"version": BROKEN_VERSION, "direction": "up"}))
                if listed != failing:
                    raise ModelFailure("docshift quarantine", [("quarantine", f"lists {listed[:10]}, the model expects "
                                                                              f"{failing[:10]}")])
                self.check("after a migrate that quarantined documents", HEAD)
        finally:
            path.write_text(pristine)  # the fix
        if failing and len(failing) <= max_failures:
            refused = self.cli("migrate")
            if refused.ok or "--allow-changed" not in refused.err:
                raise ModelFailure("migrate after editing an applied file", [("not-refused", refused.err or refused.out[-300:])])
        known = {e["_id"] for e in self.history()}
        at = self.current()
        self.expect_ok(self.cli("migrate", "--allow-changed", "--batch-size", str(batch_size)), "migrate --allow-changed")
        self.retries |= {e["_id"] for e in self.history() if e["_id"] not in known and e["version"] <= at}
        if self.db["_quarantine"].count_documents({"version": BROKEN_VERSION, "direction": "up"}):
            raise ModelFailure("migrate --allow-changed", [("quarantine", "quarantined documents left after the retry")])
        self.check("after the fix and migrate --allow-changed", HEAD)

    def draw_kill(self, rng: random.Random) -> dict:
        command = "rollback" if rng.random() < 0.25 else "migrate"
        batch_size = self.batch_size(rng)
        target = rng.choice([v for v in (1, 2, 3, 4, 5) if v != self.recorded])
        path = self.path(target)
        batches = sum(len(self.model.ids(s.collection)) // batch_size + 2 for s in path) or 1
        point = rng.choice(MIGRATE_FAULTS) if command == "migrate" else ROLLBACK_FAULT
        limit = {"backup": len(path), "verify": len(path), "finish": len(path)}.get(point, batches)
        limit = 1 if command == "rollback" else max(1, limit)
        return {"command": command, "target": target, "batch_size": batch_size, "point": point,
                "n": rng.randrange(1, limit + 1), "then": rng.choice(["rerun", "rerun", "rollback", "elsewhere"]),
                "elsewhere": rng.choice([1, 2, 3, 4, 5]), "app": rng.randrange(10**6) if rng.random() < 0.4 else 0}

    def rule_kill(self, step: Step, command: str, target: int, batch_size: int, point: str, n: int, then: str,
                  elsewhere: int, app: int) -> None:
        if command == "rollback":
            latest, accepted = self.latest_run()
            if not accepted:
                command = "migrate"
                point = "batch-written"
        before = self.recorded
        if command == "rollback":
            args = ["rollback", "--run", latest["_id"]]
            killed_step = make_step(self.model.scripts, latest["version"], latest["direction"])
        else:
            args = ["migrate", str(target), "--batch-size", str(batch_size)]
        writer = self.app_for(step.params, concurrent=True)
        if writer:
            writer.start(40)
        try:
            result = self.process(*args, extra={"DOCSHIFT_FAULT": f"{point}:{n}"})
        finally:
            self.stop_writer(step, writer)
        step.notes.append(f"`docshift {' '.join(args)}` with DOCSHIFT_FAULT={point}:{n}: exit {result.returncode}")
        if result.returncode == 0:  # finished before the fault point
            self.check(f"after {' '.join(args)} (not killed)", target if command == "migrate" else killed_step.recorded_before)
            return
        if result.returncode != -signal.SIGKILL:
            raise ModelFailure(" ".join(args), [("failed", f"exit {result.returncode}: {result.stderr[-500:]}")])
        self.expire_lease()
        checkpoint = self.checkpoint()
        if checkpoint is None:
            raise ModelFailure(f"killed {' '.join(args)} at {point}:{n}", [("no-checkpoint", "a killed run left no checkpoint")])
        if command == "rollback":
            # what a user does next: any command; the tool says to finish the rollback first
            refused = self.cli("migrate", str(self.recorded))
            step.notes.append(f"migrate after the killed rollback: {'ok' if refused.ok else refused.err[:200]}")
            if refused.ok:
                raise ModelFailure("migrate after a killed rollback", [("not-refused", refused.out[-300:])])
            self.follow_advice(step, refused, "a killed rollback")
            if not refused.told():
                raise ModelFailure("migrate after a killed rollback", [("no-advice", refused.err)])
            self.check(f"after finishing the killed rollback of {latest['_id']}", killed_step.recorded_before)
            return
        path = self.path(target)
        done = [s for s in path if (s.version, s.direction) == (checkpoint["version"], checkpoint["direction"])]
        if done:
            index = path.index(done[0])
            at_kill = path[index - 1].recorded_after if index else before
        elif checkpoint["direction"] == "up" and checkpoint["version"] <= before:
            at_kill = before  # killed while carrying documents behind the recorded version up (drift), before the path
        else:
            raise ModelFailure(f"killed {' '.join(args)}", [("checkpoint", f"names step {checkpoint['version']} "
                                                                          f"{checkpoint['direction']}, not on the path")])
        if self.current() != at_kill:
            raise ModelFailure(f"killed {' '.join(args)}", [("recorded-version", f"{self.current()} after the kill, "
                                                                                f"the model expects {at_kill}")])
        if then == "rollback":
            outcome = self.cli("rollback", "--run", checkpoint["run_id"])
            self.expect_ok(outcome, f"rollback --run {checkpoint['run_id']} of the killed run")
            self.check(f"after rollback --run of the run killed at {point}:{n}", at_kill)
        else:
            again = target if then == "rerun" else elsewhere
            known = {e["_id"] for e in self.history()}
            outcome = self.cli("migrate", str(again), "--batch-size", str(batch_size))
            self.undos |= {e["_id"] for e in self.history() if e["_id"] not in known and e["version"] == checkpoint["version"]
                           and e["direction"] != checkpoint["direction"]}
            self.expect_ok(outcome, f"migrate {again} after the kill")
            self.check(f"after migrate {again}, re-run after the kill at {point}:{n}", again)

    RULES = {"migrate": 30, "app_writes": 12, "rollback": 12, "restore": 10, "kill": 14, "quarantine": 10}

    def rules(self) -> dict[str, int]:
        rules = dict(self.RULES)
        if not ENABLED["restore-ledger"]:
            rules.pop("restore")
        return rules

    def draw(self, rng: random.Random) -> tuple[str, dict]:
        rules = self.rules()
        name = rng.choices(list(rules), weights=list(rules.values()))[0]
        return name, getattr(self, f"draw_{name}")(rng)

    def run_step(self, step: Step) -> None:
        started = time.monotonic()
        try:
            getattr(self, f"rule_{step.rule}")(step, **step.params)
        except ModelFailure as failure:
            step.held, step.problems = False, failure.problems
            step.notes.append(str(failure))
            raise
        except Exception as exc:
            step.held = False
            step.problems = [("exception", f"{type(exc).__name__}: {exc}")]
            step.notes.append(traceback.format_exc())
            raise ModelFailure(f"rule {step.rule}", step.problems) from exc
        finally:
            step.seconds = time.monotonic() - started


def attribution(failure: ModelFailure, steps: list[Step]) -> list[tuple[str, str | None]]:
    """Each problem of a failure with the known bug (KNOWN_BUGS) it is, or None for a new one."""
    last = steps[-1]
    result = []
    for kind, detail in failure.problems:
        bug = None
        if kind == "silent-drift" and last.rule == "restore":
            bug = "restore-ledger"
        elif kind == "silent-drift" and failure.drifted and failure.drifted <= last.inserted_during:
            bug = "old-version-insert"
        elif kind == "note-lost":
            bug = "rollback-added-field"
        elif kind in ("refused", "exception") and "verification failed" in detail and last.inserted_during:
            bug = "old-version-insert"
        result.append((kind, bug))
    return result


def known_bug(failure: ModelFailure, steps: list[Step]) -> str | None:
    """The known bug(s) a failure is, when every problem of it is one; None when any is new."""
    bugs = attribution(failure, steps)
    if any(bug is None for _, bug in bugs):
        return None
    return ", ".join(sorted({bug for _, bug in bugs}))


@dataclass
class WalkResult:
    seed: int
    steps: list[Step]
    failure: ModelFailure | None
    seconds: float

    @property
    def held(self) -> int:
        return sum(s.held for s in self.steps)


def walk(harness: Harness, seed: int, steps: int, replay: list[dict] | None = None, log=print) -> WalkResult:
    """Up to `steps` rules drawn from `seed` (or the `replay`ed ones); stops at the first failure."""
    rng = random.Random(f"walk-{seed}")
    done: list[Step] = []
    started = time.monotonic()
    harness.check("the seed data", 1)
    for i in range(len(replay) if replay is not None else steps):
        rule, params = (replay[i]["rule"], replay[i]["params"]) if replay is not None else harness.draw(rng)
        step = Step(i, rule, params)
        done.append(step)
        try:
            harness.run_step(step)
        except ModelFailure as failure:
            log(f"step {i} {rule} {json.dumps(params)}: FAILED after {step.seconds:.1f} s: {failure}")
            return WalkResult(seed, done, failure, time.monotonic() - started)
        log(f"step {i} {rule} {json.dumps(params)}: held at version {harness.recorded} ({step.seconds:.1f} s)")
    return WalkResult(seed, done, None, time.monotonic() - started)


def describe(result: WalkResult) -> str:
    """A failing walk as its seed, the sequence of rules to replay, and what broke."""
    lines = [f"seed {result.seed}: {result.held} of {len(result.steps)} steps held in {result.seconds:.0f} s"]
    for s in result.steps:
        lines.append(f"  {s.index:3} {s.rule:10} {json.dumps(s.params)} {'held' if s.held else 'FAILED'}")
        for note in s.notes[-8:] if s.held else s.notes:
            lines.append(f"        {note}")
    if result.failure:
        for kind, bug in attribution(result.failure, result.steps):
            lines.append(f"[{kind}]: " + (f"known bug {bug} ({KNOWN_BUGS[bug]})" if bug else "NOT a known bug"))
    return "\n".join(lines)


def replay_file(result: WalkResult) -> str:
    return json.dumps({"seed": result.seed, "steps": [{"rule": s.rule, "params": s.params} for s in result.steps]}, indent=1)
