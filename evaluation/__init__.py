"""Offline evaluation against annotated real records: QRS detection and alarms, scored as the edge gateway would raise them.

This package sits above the tiers it judges: it reads records with :mod:`firmware_sim.records`,
frames them with the simulator's packetizer, takes references from :mod:`models.data` and runs the
edge's own code (:mod:`edge.signal`, :class:`edge.agent.EdgeAgent`); the edge runtime never
imports it. ``ecgstream eval qrs`` and ``ecgstream eval alarms`` are its commands.

- :mod:`.qrs`: the streaming QRS detector scored beat by beat (EC57 matching) on WFDB records
  with ``.atr`` beats and CPSC 2019 pairs;
- :mod:`.references`: the records the alarm evaluation finds (CPSC 2021, PhysioNet/CinC 2015)
  and their references (AF episodes, the alarm a header names);
- :mod:`.replay`: a record turned into wearable frames and replayed through a fresh edge agent;
- :mod:`.alarms`: what the agent raised scored against the references, the report and its table;
- :mod:`.progress`: records done / total, elapsed and stream time on stderr (a rich bar on a
  terminal, a line every few seconds otherwise).

Nothing is imported here, so ``import evaluation.progress`` stays light.
"""
