"""Persistence: SQLAlchemy models, repositories (every query lives there), sessions and the unit of work."""
