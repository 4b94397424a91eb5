"""The runtime of migration steps on a database, one module per concern; plain pymongo, no Prefect.

steps (what a step is, and the per-document transform: pure), planning, runs (a step run and its outcome records),
cursor, batches, partitions, backups, quarantine, verify, rollback. The Prefect tasks in docshift.tasks wrap them.
Every write is guarded by `schema_version`, so redoing a batch after a crash changes nothing twice, and by the
document as read, so that an application's write in between is never overwritten.
"""
