"""Policies: the framework-free contract and its implementations."""
