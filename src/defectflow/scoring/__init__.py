"""Batch scoring into the results database (SQLite or PostgreSQL through SQLAlchemy)."""
