"""Inference runners for the pattern engine's seam (realtime/patterns/inference.py)."""
