"""The trial's clinical rules: units, assays, detectability, eligibility, risk and classifiers.

Standard library only (plus ``rfc8785`` for canonical JSON): nothing here knows HTTP or SQL.
"""
