"""Use cases: the domain's rules joined to the audit store, one transaction each."""
