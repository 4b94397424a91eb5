"""Helpers shared by the tests. Test modules and conftest files import from here, never from one another."""
