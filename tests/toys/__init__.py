"""Toy entries, one module per registry axis, registered by tests/test_registry.py to prove that adding
a network, dataset, strategy, cut policy or cache backend is one module."""
