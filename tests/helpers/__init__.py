"""Helpers the test modules share, one owner each (fixtures live in tests/conftest.py, tokens in tests/accounts.py)."""
