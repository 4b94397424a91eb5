"""Serve the `migrate` flow as a deployment from this process, without a work pool: `python -m docshift.deployments.serve`.

Then `prefect deployment run migrate/docshift-migrate --param target_version=3` runs it here. One run at a time:
the deployment's concurrency limit and docshift's ledger lock both guard the database.
"""

from docshift.flows.migrate import migrate

if __name__ == "__main__":
    migrate.serve(name="docshift-migrate", limit=1)
