"""The `_migrations` collection: current version, history, checkpoint, and the lease lock."""

import os
import socket
import threading
from datetime import datetime, timedelta, timezone

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from .errors import LockHeldError, LockLostError
from .spec import INITIAL_VERSION
from .storage import LEDGER

CURRENT, LOCK, CHECKPOINT = "current", "lock", "checkpoint"
KEPT_PRE_IMAGES = "kept_pre_images"
"""A record of pre-images that a restore kept for the documents it put back (Ledger.keep_pre_images)."""
UNDONE = ("rolled_back", "restored")
"""Outcomes of runs whose changes were undone: by a rollback, or by restoring their backup."""


def now() -> datetime:
    """UTC now at BSON's millisecond precision, so what is written reads back equal."""
    t = datetime.now(timezone.utc)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def as_utc(t: datetime) -> datetime:
    """A datetime read back from BSON (naive UTC) made comparable with now()."""
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def holder_is_dead(holder: dict | None) -> bool:
    """Whether the lock's owner (`host:pid:purpose`) is a process of this host that no longer exists. A holder on
    another host, or one whose process exists (or cannot be told), counts as alive until its lease runs out."""
    host, _, rest = (holder or {}).get("owner", "").partition(":")
    pid = rest.partition(":")[0]
    if (holder or {}).get("stalled") or host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by another user
    return False


def describe_lock(holder: dict | None) -> str:
    """The lock as `status` shows it: free, held until when, or held by a dead process (taken over by the next run)."""
    if holder is None:
        return "free"
    if holder.get("stalled"):
        return (f"{holder['owner']}, kept by its stalled run ({holder['stalled']}): `docshift unlock` once that task "
                f"is stopped")
    text = f"{holder['owner']} until {holder['expires_at']}"
    if holder_is_dead(holder):
        return text + " (dead: that process is gone from this host; the next run takes the lock over)"
    if as_utc(holder["expires_at"]) <= now():
        return text + " (lease ran out: free)"
    return text


def lock_held(holder: dict) -> LockHeldError:
    if holder.get("stalled"):
        return LockHeldError(f"the lock is kept by a stalled run ({holder['stalled']}): stop that task, then run "
                             f"`docshift unlock` and `docshift migrate` resumes")
    return LockHeldError(
        f"another migration run holds the lock: {holder.get('owner', '?')} since {holder.get('acquired_at')}, "
        f"lease until {holder.get('expires_at')}; wait for it, or run `docshift unlock` if it is dead"
    )


class Ledger:
    """Reads and writes docshift's own records in the target database."""

    def __init__(self, db: Database):
        self.db = db
        self.coll = db[LEDGER]

    def current_version(self) -> int:
        doc = self.coll.find_one({"_id": CURRENT})
        return doc["version"] if doc else INITIAL_VERSION

    def set_current(self, version: int) -> None:
        self.coll.update_one({"_id": CURRENT}, {"$set": {"version": version, "updated_at": now()}}, upsert=True)

    def history(self) -> list[dict]:
        """History entries, oldest first (entry ids are the run ids, so sort by start time)."""
        return sorted(self.coll.find({"kind": "history"}), key=lambda e: e["started_at"])

    def start_entry(self, entry: dict) -> None:
        self.coll.replace_one({"_id": entry["_id"]}, {"kind": "history", **entry}, upsert=True)

    def entry(self, run_id: str) -> dict | None:
        return self.coll.find_one({"_id": run_id, "kind": "history"})

    def update_entry(self, run_id: str, fields: dict) -> None:
        self.coll.update_one({"_id": run_id}, {"$set": fields})

    def applied_checksums(self, current: int, history: list[dict] | None = None) -> dict[int, str]:
        """For every version at or below `current`: the checksum of the file when it was last applied (from `history`
        when the caller has read it already)."""
        checksums = {}
        for entry in self.history() if history is None else history:
            if entry["direction"] == "up" and entry["outcome"] == "applied" and entry["version"] <= current:
                checksums[entry["version"]] = entry["checksum"]
        return checksums

    def pre_image_runs(self, version: int, before: str | None = None, part: int | None = None) -> list[str]:
        """The runs whose backups hold the pre-images for reverting `version`, oldest first: every `up` of it since it
        was last reverted that was not rolled back (the first run, its quarantine retries, resumed, paused and
        partitioned runs alike), an interrupted one, and the pre-images a restore kept for the documents it put back.
        Each document's pre-image is in the newest of them that read it. With `before`: as they were when that run
        started. With `part`: of that step of a migration of several steps only (None: of every step).
        """
        runs: list[str] = []
        for e in sorted([*self.history(), *self.kept_pre_images()], key=lambda e: e["started_at"]):
            if e["_id"] == before:
                break
            if e["version"] != version or part not in (None, e.get("part", 0)):
                continue
            if e["direction"] == "down" and e["outcome"] == "reverted":
                runs.clear()
            elif e["direction"] == "up" and e["outcome"] not in UNDONE and e.get("phase") != "cleanup":
                runs.append(e["_id"])  # cleanup's pre-images are already at `version`
        return runs

    def kept_pre_images(self) -> list[dict]:
        """The records of pre-images that restores kept (keep_pre_images)."""
        return list(self.coll.find({"kind": KEPT_PRE_IMAGES}))

    def keep_pre_images(self, version: int, store: str, restored_from: str, part: int = 0) -> None:
        """Record that `store` holds the pre-images for reverting `version` (its step `part`) of documents that a restore
        of `restored_from` put back: newer than every run's, a `down` takes those documents' pre-images from it."""
        self.coll.insert_one({"_id": store, "kind": KEPT_PRE_IMAGES, "version": version, "direction": "up",
                              "outcome": "kept", "started_at": now(), "restored_from": restored_from, "part": part})

    def phases(self, version: int) -> dict:
        """Which phases of migration `version`'s expand-contract change completed: phase -> {completed_at, verified, …}."""
        doc = self.coll.find_one({"_id": f"phases:{version}"}) or {}
        return {k: v for k, v in doc.items() if k not in ("_id", "kind", "version")}

    def phased_versions(self) -> list[int]:
        """The migrations with any expand-contract phase recorded (one read of the ledger)."""
        return [doc["version"] for doc in self.coll.find({"kind": "phases"})
                if set(doc) - {"_id", "kind", "version"}]

    def complete_phase(self, version: int, phase: str, fields: dict) -> None:
        self.coll.update_one({"_id": f"phases:{version}"},
                             {"$set": {"kind": "phases", "version": version, phase: {"completed_at": now(), **fields}}},
                             upsert=True)

    def reset_phase(self, version: int, phase: str) -> None:
        """A phase's run was rolled back: it (and what waits for it) must run again."""
        self.coll.update_one({"_id": f"phases:{version}"}, {"$unset": {phase: ""}})

    def clear_phases(self, version: int) -> None:
        self.coll.delete_one({"_id": f"phases:{version}"})

    def checkpoint(self) -> dict | None:
        """The in-flight step of an unfinished run, if any."""
        return self.coll.find_one({"_id": CHECKPOINT})

    def start_checkpoint(self, fields: dict, checkpoint_id: str = CHECKPOINT) -> None:
        """Create (or add to) the run's checkpoint, or with `checkpoint_id` one partition's (`checkpoint.<n>`)."""
        self.coll.update_one({"_id": checkpoint_id}, {"$set": {**fields, "updated_at": now()}}, upsert=True)

    def save_checkpoint(self, fields: dict, checkpoint_id: str = CHECKPOINT) -> None:
        """Update a checkpoint that start_checkpoint created. One that is gone (the ledger or the database was dropped
        under the run) stops the run, instead of leaving a checkpoint of a few fields that the next command cannot read."""
        if self.coll.update_one({"_id": checkpoint_id}, {"$set": {**fields, "updated_at": now()}}).matched_count == 0:
            raise LockLostError(f"the run's {checkpoint_id} is gone from {self.db.name}.{LEDGER} (was the database or its "
                                f"ledger dropped while the run went?); the run stopped")

    def partition_checkpoints(self) -> list[dict]:
        """The checkpoints of a partitioned step's `_id` ranges, in partition order."""
        return sorted(self.coll.find({"kind": "partition"}), key=lambda p: p["index"])

    def clear_checkpoint(self) -> None:
        self.coll.delete_one({"_id": CHECKPOINT})
        self.coll.delete_many({"kind": "partition"})

    def clear_finished_checkpoint(self) -> None:
        """A finished step's checkpoint that no step of its migration followed (a retry of one of its collections)."""
        self.coll.delete_one({"_id": CHECKPOINT, "finished": True})

    def lock_holder(self) -> dict | None:
        return self.coll.find_one({"_id": LOCK})

    def check_lock_free(self) -> None:
        """Raise LockHeldError if a live run holds the lock (a pre-flight check; acquiring is what is atomic)."""
        holder = self.lock_holder()
        if holder and as_utc(holder["expires_at"]) > now() and not holder_is_dead(holder):
            raise lock_held(holder)

    def break_lock(self) -> dict | None:
        """Remove the lock whoever holds it; returns what it was."""
        return self.coll.find_one_and_delete({"_id": LOCK})

    def release_own_lock(self) -> dict | None:
        """Remove the lock if a thread of this process holds it (a run stopped from outside its flow); returns it."""
        holder = self.lock_holder()
        if holder and holder["owner"].startswith(f"{socket.gethostname()}:{os.getpid()}:"):
            return self.coll.find_one_and_delete({"_id": LOCK, "owner": holder["owner"]})
        return None


class LockWatch:
    """The run's lock as another process of the same run sees it (a partition on a Dask worker): held while the
    lock document still names the run's owner."""

    def __init__(self, db: Database, owner: str):
        self.coll, self.owner = db[LEDGER], owner

    def check(self) -> None:
        holder = self.coll.find_one({"_id": LOCK})
        if holder is None or holder.get("owner") != self.owner:
            raise LockLostError("the migration lock was broken or taken over while this partition ran; "
                                "stopped at its last checkpoint")
        if holder.get("stalled"):
            raise LockLostError(f"the run paused ({holder['stalled']}); this partition stopped at its last checkpoint")


class LeaseLock:
    """One run per database: acquired in one server-side operation, renewed while the run lives, expiring after a crash."""

    def __init__(self, db: Database, lease_seconds: float, purpose: str):
        self.coll = db[LEDGER]
        self.lease = timedelta(seconds=lease_seconds)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{purpose}"
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock if it is free or its lease has run out; raise LockHeldError naming the holder otherwise."""
        t = now()
        try:
            self.coll.find_one_and_update(
                {"_id": LOCK, "expires_at": {"$lt": t}},
                {"$set": {"owner": self.owner, "acquired_at": t, "expires_at": t + self.lease}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError as exc:
            holder = self.coll.find_one({"_id": LOCK}) or {}
            if not (holder_is_dead(holder) and self._take_over(holder, t)):
                raise lock_held(holder) from exc
        self._renewer = threading.Thread(target=self._renew, name="docshift-lease", daemon=True)
        self._renewer.start()

    def _take_over(self, holder: dict, t) -> bool:
        """Take the lock from a dead holder in one operation that matches only while that holder still has it."""
        taken = self.coll.find_one_and_update(
            {"_id": LOCK, "owner": holder["owner"], "expires_at": holder["expires_at"]},
            {"$set": {"owner": self.owner, "acquired_at": t, "expires_at": t + self.lease}})
        return taken is not None

    def _renew(self) -> None:
        while not self._stop.wait(self.lease.total_seconds() / 3):
            try:
                result = self.coll.update_one({"_id": LOCK, "owner": self.owner}, {"$set": {"expires_at": now() + self.lease}})
            except PyMongoError:
                continue  # the run's own database calls will fail and retry; the lease covers short outages
            if result.matched_count == 0:
                self.lost.set()
                return

    def check(self) -> None:
        """Raise LockLostError if the lock was broken or taken over; called between batches."""
        if self.lost.is_set():
            raise LockLostError("the migration lock was broken or expired while this run held it; stopped at the last checkpoint")

    def release(self) -> None:
        self._stop.set()
        if self._renewer:
            self._renewer.join()
        self.coll.delete_one({"_id": LOCK, "owner": self.owner, "stalled": {"$exists": False}})

    def keep(self, reason: str) -> None:
        """Stop renewing the lock but keep it, with no end, for a run that cannot prove all of its tasks idle (a stuck
        partition may still write): no run takes it over, not even once this process is gone, until `docshift
        unlock`; the run's other partitions see it (LockWatch) and stop at their next batch."""
        self._stop.set()
        if self._renewer:
            self._renewer.join()
        self.coll.update_one({"_id": LOCK, "owner": self.owner},
                             {"$set": {"stalled": reason, "expires_at": datetime.max.replace(tzinfo=timezone.utc)}})

    def __enter__(self) -> "LeaseLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
