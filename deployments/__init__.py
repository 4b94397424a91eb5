"""Entry points that run docshift's flows as Prefect deployments: `docshift deploy` (deploy.py), alerts, serve."""
