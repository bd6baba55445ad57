"""reputation: a cross-platform spammer reputation graph engine.

A batch pipeline reads many platforms' message logs, builds a sender→recipient interaction graph,
fingerprints accounts across platforms from behavioural features, and propagates spam reputation so
that an account flagged on one network carries that flag onto the accounts the same person (or
operator) runs on the others.
"""

__version__ = "0.1.0"
