"""Test support: real components (PostgreSQL, ...) started for the test session."""
