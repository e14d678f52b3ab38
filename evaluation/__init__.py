"""Offline evaluation against annotated real records: QRS detection and alarms, scored as the edge gateway would raise them."""
