"""Prefect flows: `migrate` to a target version, made of one `apply-migration` subflow per step."""
