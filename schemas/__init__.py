"""Hearth."""
