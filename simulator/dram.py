"""The DRAM port shared by the load and store units, and its arbitration rule.

One DMA instruction holds the port at a time, non-preemptively, for its whole hold time. A request
raised at cycle t can be granted at t + 1 at the earliest; at each cycle g where the port is free,
among requests raised at cycles < g the load unit wins over the store unit. Because only requests
raised strictly before g compete, the decision never depends on the order of events inside one cycle,
which is what lets the RTL reproduce it exactly.

A LOAD's grant is known the moment it asks: it takes part in the first decision at a free port after
its request (at max(t + 1, free_at)) and wins every decision it takes part in; no other decision can
grant the port before that one (the port is busy until free_at, and a decision at a free port with a
pending request grants it). So a load request is granted at once, for that cycle, and costs one
event (its completion). A store request needs a decision event (URGENT) at its grant opportunity,
because a load raised later but before that cycle would win: two events, however long it holds the
port.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import simpy
from simpy.core import URGENT

from bitbranch.isa.spec import Unit


class DmaRequest(simpy.Event):
    """A unit's request for the port; it fires when the transfer has finished (grant + hold)."""

    __slots__ = ("unit", "hold", "index", "raised", "grant")

    def __init__(self, env: simpy.Environment, unit: int, hold: int, index: int) -> None:
        super().__init__(env)
        self.unit = unit
        self.hold = hold
        self.index = index
        self.raised = env.now
        self.grant = -1


@dataclass
class DramPort:
    """Arbiter state: when the port frees, and the requests waiting for it (at most one per unit)."""

    env: simpy.Environment
    free_at: int = 0
    pending: list[DmaRequest] = field(default_factory=list)
    _decisions: set[int] = field(default_factory=set)

    def request(self, unit: int, hold: int, index: int) -> DmaRequest:
        req = DmaRequest(self.env, unit, hold, index)
        if unit == Unit.LOAD:
            self._grant(req, max(req.raised + 1, self.free_at))
            return req
        self.pending.append(req)
        self._decide_at(max(req.raised + 1, self.free_at))
        return req

    def _grant(self, req: DmaRequest, g: int) -> None:
        """Give the port to `req` from cycle g (>= now) to g + hold; its event fires at g + hold."""
        req.grant = g
        self.free_at = g + req.hold
        req._ok = True
        req._value = None
        self.env.schedule(req, delay=g + req.hold - self.env.now)
        if self.pending:  # the next opportunity for the waiting store (its own decision saw a busy port)
            self._decide_at(max(self.free_at, min(r.raised for r in self.pending) + 1))

    def _decide_at(self, cycle: int) -> None:
        if cycle in self._decisions:
            return
        self._decisions.add(cycle)
        ev = simpy.Event(self.env)
        ev.callbacks.append(self._decide)
        ev._ok = True
        ev._value = None
        # URGENT: the decision at g runs before every normal event of cycle g, so it cannot see (and
        # by the `raised < g` rule would ignore anyway) requests raised during cycle g.
        self.env.schedule(ev, URGENT, cycle - self.env.now)

    def _decide(self, _event: simpy.Event) -> None:
        g = self.env.now
        self._decisions.discard(g)
        if g < self.free_at:
            return
        eligible = [r for r in self.pending if r.raised < g]
        if not eligible:
            return
        winner = min(eligible, key=_priority)
        self.pending.remove(winner)
        self._grant(winner, g)

def _priority(req: DmaRequest) -> int:
    """Load beats store; equal units cannot both be pending (one outstanding DMA per unit)."""
    return 0 if req.unit == Unit.LOAD else 1
