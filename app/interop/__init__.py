"""Other systems' forms of a result and of a decision: translations to and from the service's own."""
