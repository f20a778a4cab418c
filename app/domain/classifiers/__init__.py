"""Versioned classifiers: immutable, checksummed definitions and the rules or models they build."""
