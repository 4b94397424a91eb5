"""A migration declared as an update, through the CLI on FerretDB: its documents updated on the server by `_id`
ranges, those that had the field per document with their pre-images; rollback and `down` give every byte back; after
the ranges, one read of the collection settles what is left, unless something is."""

import functools

from pymongo import MongoClient, monitoring

import docshift.db
from docshift.demo import seed_users
from docshift.engine.drift import below
from tests.support.env import only_default_plan
from tests.support.fingerprints import raw_snapshot

N = 600


def test_an_update_runs_on_the_server_and_rollback_and_down_give_every_byte_back(env):
    only_default_plan(env)
    seed_users(env.db, N, seed=11)
    users = env.db.users
    had_plan = [d["_id"] for d in users.find().sort("_id", 1).limit(3)]
    users.update_many({"_id": {"$in": had_plan}}, {"$set": {"plan": "gold"}})
    stored_version = users.find_one({"_id": {"$nin": had_plan}})["_id"]
    users.update_one({"_id": stored_version}, {"$set": {"schema_version": 1}})
    users.insert_one({"_id": "not-an-objectid", "user_id": "odd"})
    before = raw_snapshot(users)

    up = env.cli("migrate")
    assert up.returncode == 0, up.stdout + up.stderr
    assert users.count_documents({"schema_version": 2, "plan": {"name": "free", "seats": 1}}) == N + 1
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert entry["outcome"] == "applied" and entry["documents"] == N + 1 and entry["verification"] == "passed"
    backup = env.db[entry["backup"]]
    assert sorted(map(str, backup.distinct("_id"))) == sorted(map(str, [*had_plan, stored_version, "not-an-objectid"]))
    assert env.db[entry["backup"] + ".ranges"].count_documents({}) >= 1

    undone = env.cli("rollback", "--run", entry["_id"])
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert raw_snapshot(users) == before  # the exact bytes, field order included

    assert env.cli("migrate").returncode == 0
    down = env.cli("migrate", "1")
    assert down.returncode == 0, down.stdout + down.stderr
    after = raw_snapshot(users)
    assert {k: v for k, v in after.items() if k != stored_version} == {k: v for k, v in before.items() if k != stored_version}
    assert "schema_version" not in users.find_one({"_id": stored_version})  # a down to version 1 removes it, as always


class AfterRanges(monitoring.CommandListener):
    """docshift's reads of the whole of `users` (no `_id` condition, not its kept count) from its first range update
    on; `then` runs once that update has succeeded (an application writing while the ranges run)."""

    def __init__(self, then=None):
        self.reads: list[dict] = []
        self.ranging, self.then = False, then

    def started(self, event):
        command, name = event.command, event.command_name
        if name == "update" and command["update"] == "users" and "_id" in command["updates"][0]["q"]:
            self.ranging = True
        elif self.ranging and name in ("find", "aggregate", "count") and command[name] == "users":
            query = command.get("filter") or command.get("query") or command.get("pipeline", [{}])[0].get("$match", {})
            if "_id" not in query and "$collStats" not in str(command.get("pipeline")):
                self.reads.append(query)

    def succeeded(self, event):
        if self.ranging and self.then is not None:
            self.then, then = None, self.then
            then()

    def failed(self, event):
        pass


def monitored(monkeypatch, listener: AfterRanges) -> None:
    """docshift's connections in this process (the CLI runs in it) with the listener."""
    monkeypatch.setattr(docshift.db, "MongoClient", functools.partial(MongoClient, event_listeners=[listener]))
    monkeypatch.setattr(docshift.db, "_clients", {})


def test_when_the_ranges_leave_nothing_one_count_settles_the_pass_verification_and_drift(env, monkeypatch):
    only_default_plan(env)
    seed_users(env.db, N, seed=12)
    listener = AfterRanges()
    monitored(monkeypatch, listener)

    up = env.cli("migrate")

    assert up.returncode == 0, up.stdout + up.stderr
    assert "database is now at version 2" in up.stdout and "drift" not in up.stdout
    assert listener.reads == [below(2)]  # no per-document pass, no sweep, no second count for verification or drift
    assert env.db.users.count_documents({"schema_version": 2, "plan": {"name": "free", "seats": 1}}) == N
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert entry["verification"] == "passed" and entry["documents"] == N and entry["behind"] == 0
    assert env.db[entry["backup"]].count_documents({}) == 0  # nothing went per document: no pre-image needed
    assert env.cli("verify").returncode == 0


def test_a_document_written_at_the_old_version_while_the_ranges_run_goes_per_document(env, monkeypatch):
    only_default_plan(env)
    seed_users(env.db, N, seed=13)
    written = {"_id": "old-code", "user_id": "old", "name": "Old Code"}  # at version 1, after the ranges' last `_id`
    listener = AfterRanges(then=lambda: env.db.users.insert_one(dict(written)))
    monitored(monkeypatch, listener)

    up = env.cli("migrate")

    assert up.returncode == 0, up.stdout + up.stderr
    assert "database is now at version 2" in up.stdout and "drift" not in up.stdout
    assert env.db.users.find_one({"_id": "old-code"}) == {**written, "plan": {"name": "free", "seats": 1},
                                                          "schema_version": 2}
    entry = env.ledger.find_one({"kind": "history", "version": 2})
    assert entry["verification"] == "passed" and entry["documents"] == N + 1
    assert env.db[entry["backup"]].find_one({"_id": "old-code"}) == written  # its pre-image, kept before its write
    assert listener.reads[0] == below(2) and len(listener.reads) > 1  # the count found it: the pass read the rest
