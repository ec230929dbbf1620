"""Training models: data, splits, metrics, export.

Needs the `ml` extra (torch) only where a module says so.
"""
