"""The HTTP contract: request and response bodies, separate from both the domain and the ORM."""
