"""Prefect tasks: thin wrappers that give docshift's engine functions retries, names and artifacts."""
