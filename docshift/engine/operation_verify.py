"""What a collection-level step's run left, checked action by action (`docshift verify`, and verification at the
end of a run): indexes with their keys, which collections exist, the documents each kept, renamed or copied."""

from pymongo.database import Database

from ..spec import Migration
from .cursor import collection_count
from .operation_steps import actions_of
from .operations import exists, index_info, journal_of, same_keys
from .steps import Step


def verify_actions(db: Database, migration: Migration, step: Step) -> list[tuple]:
    """(check, expected, found, passed) for the state each action of the step's run (or its latest one) left; which
    collections exist is checked once, as the last action naming each left it."""
    records = journal_of(db, step) or [a.record for a in actions_of(migration, step)]
    rows, present = [], {}
    for r in records:
        c = r["collection"]
        if r.get("absent"):
            continue
        if r["do"] in ("create_index", "restore_index", "drop_index"):
            spec = r["index"]
            found = index_info(db, c, spec["name"]) if exists(db, c) else None
            state = "absent" if found is None else "present" if "keys" not in spec or same_keys(found, spec) else "other keys"
            expected = "absent" if r["do"] == "drop_index" else "present"
            rows.append((f"index {spec['name']} of {c}", expected, state, state == expected))
        elif r["do"] == "rename":
            present.update({c: False, r["to"]: True})
            if "documents" in r:
                n = collection_count(db[r["to"]])
                rows.append((f"documents in {r['to']}", f"at least {r['documents']:,}", n, n >= r["documents"]))
        elif r["do"] == "drop_collection" and r.get("existed", True):
            present.update({c: False, **({r["kept_as"]: True} if "kept_as" in r else {})})
            if "documents" in r:
                n = collection_count(db[r["kept_as"]])
                rows.append((f"documents kept in {r['kept_as']} and its file", r["documents"], n, n == r["documents"]))
        elif r["do"] == "restore_collection":
            present.update({**({r["from"]: False} if "from" in r else {}), c: True})
            if "documents" in r:
                n = collection_count(db[c])
                rows.append((f"documents in {c}", f"at least {r['documents']:,}", n, n >= r["documents"]))
        elif r["do"] == "delete":
            present[r["kept_as"]] = True
            if "kept" in r:
                n = collection_count(db[r["kept_as"]])
                rows.append((f"deleted documents kept in {r['kept_as']} and its file", r["kept"], n, n == r["kept"]))
        elif r["do"] == "undelete" and "restored" in r:
            n = collection_count(db[c])
            rows.append((f"documents in {c}", f"at least {r['restored']:,}", n, n >= r["restored"]))
        elif r["do"] == "copy":
            present[r["to"]] = True
            if "copied" in r:
                copied, matching = collection_count(db[r["to"]]), db[c].count_documents(r.get("filter", {}))
                rows.append((f"documents in {r['to']}", r["copied"], copied, copied == r["copied"]))
                rows.append((f"documents of {c} to copy (none written meanwhile)", r["read"], matching, matching == r["read"]))
    return presence(db, present) + rows


def presence(db: Database, expected: dict[str, bool]) -> list[tuple]:
    names = set(db.list_collection_names())
    return [(f"collection {name}", "present" if want else "absent", "present" if name in names else "absent",
             (name in names) == want) for name, want in expected.items()]
