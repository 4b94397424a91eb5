"""Entry points that run docshift's flows as Prefect deployments (see also prefect.yaml)."""
