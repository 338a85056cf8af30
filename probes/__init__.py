"""Probes: one module per protocol, each turning one attempt at a target into an `Attempt`."""

from probes.base import PROBES, Attempt, Outcome, Probe, ProbeContext, register

__all__ = ["PROBES", "Attempt", "Outcome", "Probe", "ProbeContext", "register"]
