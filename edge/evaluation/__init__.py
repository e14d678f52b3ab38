"""Offline evaluation of the edge's signal processing against annotated real records."""
