"""The one command line (``ecgstream …``) and the demo that wires the tiers together.

This is the top layer: it may import every tier (firmware_sim, edge, cloud, models, evaluation) and
nothing imports it. Each ``ecgstream`` command group lives in ``ecgstream.commands``; the live ward
view and the wiring of simulated wearables into a gateway are beside them.
"""
