"""Which channels an episode goes to: by its priority, its escalation level and the role that level is for.

An escalation to level ``n >= 1`` goes to a channel when the episode's priority is one of the channel's
``priorities``, ``n >= min_level``, and the role of level ``n`` (``[escalation] level_roles``) is one of
the channel's ``roles`` (a channel without roles takes every role). Level 0 is the raise itself: only
channels with ``on_raise = true`` get it (priorities and roles apply the same way, with the first role).
"""

from __future__ import annotations

from collections.abc import Sequence

from cloud.config import EscalationChannelConfig, EscalationConfig
from cloud.store import DeliveryCandidate, NewDelivery


def wants(channel: EscalationChannelConfig, *, priority: str, level: int, role: str | None) -> bool:
    """Whether ``channel`` is told about an episode of ``priority`` at ``level`` (for ``role``)."""
    if priority not in channel.priorities:
        return False
    if level == 0:
        if not channel.on_raise:
            return False
    elif level < channel.min_level:
        return False
    return not channel.roles or (role is not None and role in channel.roles)


def lowest_level(config: EscalationConfig) -> int:
    """The lowest level any channel takes (0 when one takes raises)."""
    return min((0 if c.on_raise else c.min_level for c in config.channels), default=1)


def plan(config: EscalationConfig, candidates: Sequence[DeliveryCandidate]) -> list[NewDelivery]:
    """The deliveries the candidates still need: one per episode (at its level) and matching channel."""
    out = []
    for e in candidates:
        role = config.role_for(e.level)
        for c in config.channels:
            if c.name not in e.planned and wants(c, priority=e.priority, level=e.level, role=role):
                out.append(NewDelivery(episode=e, channel=c.name, kind=c.kind, target=c.target))
    return out


__all__ = ["lowest_level", "plan", "wants"]
