"""Which library items go to the cold tier: the least recently watched first, until the media
drive's free space is back above the watermark. Pure functions (the manager gathers facts)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ItemFacts:
    item: str  # "library/Film (2020)"
    size_bytes: int
    last_watched: float | None  # unix time; None: never watched
    added: float  # unix time it arrived (mtime), the age of a never-watched item


@dataclass(frozen=True)
class TieringRules:
    free_watermark: float = 0.15  # move items while free space on media is below 15 %
    min_idle_days: float = 30.0  # never move an item watched (or added) more recently


def last_use(facts: ItemFacts) -> float:
    return facts.last_watched if facts.last_watched is not None else facts.added


def choose_cold_items(
    items: list[ItemFacts],
    size_bytes: int,
    free_bytes: int,
    rules: TieringRules,
    now: float,
    cold_free_bytes: int,
) -> list[ItemFacts]:
    """Oldest-used items first until free >= watermark * size; only items idle for at least
    ``min_idle_days`` and only as many as fit on the cold tier (keeping 1 % spare there)."""
    want = rules.free_watermark * size_bytes - free_bytes
    if want <= 0:
        return []
    idle_before = now - rules.min_idle_days * 86400
    chosen: list[ItemFacts] = []
    room = cold_free_bytes * 0.99
    for facts in sorted(items, key=lambda f: (last_use(f), f.item)):
        if want <= 0:
            break
        if last_use(facts) > idle_before or facts.size_bytes > room:
            continue
        chosen.append(facts)
        want -= facts.size_bytes
        room -= facts.size_bytes
    return chosen
