"""Bounded memory for request bodies and media: the budget each server process
counts them against, the container limit it is sized from, and the allocator
settings that give freed buffers back to the system."""

from service.memory.allocator import tune_allocator
from service.memory.budget import (
    MemoryBudget,
    Reservation,
    budget_bytes,
    budget_from_settings,
    charge,
    current_reservation,
    freeze_startup_objects,
)
from service.memory.limits import auto_budget_bytes

__all__ = [
    "MemoryBudget",
    "Reservation",
    "auto_budget_bytes",
    "budget_bytes",
    "budget_from_settings",
    "charge",
    "current_reservation",
    "freeze_startup_objects",
    "tune_allocator",
]
