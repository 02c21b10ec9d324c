"""Test support: seeded weights keyed by parameter name, tiny configurations. Never imported by production code."""
