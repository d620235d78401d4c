"""Pure planning: normalise desired and observed state, diff them, plan, compute status.

Nothing in this package does I/O or reads the clock; see each module's docstring.
"""
