"""Reconcile: the work queue, the per-appliance reconciler and the workers that run it."""
