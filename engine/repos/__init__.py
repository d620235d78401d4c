"""Tenant repositories: bare git stores, safe reading and validation."""
