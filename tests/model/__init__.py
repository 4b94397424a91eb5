"""The model-based test of the whole tool (issue 12): a seeded random walk of commands on the real server."""
