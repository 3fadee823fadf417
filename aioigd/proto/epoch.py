"""The PCP / NAT-PMP epoch check: did the gateway restart and lose its mappings?

Every answer carries the gateway's seconds since it started. RFC 6887 section 8.5
(and RFC 6886 section 3.6 in spirit): the epoch may not go back by more than a
second, and the time elapsed by the gateway's clock must match ours to within
2 s plus 1/16. Anything else means the gateway lost its state: map everything
on it again. ``now`` is the client's monotonic clock, passed in.
"""

from __future__ import annotations

__all__ = ["EpochTracker"]


class EpochTracker:
    """Remembers the last epoch seen from one gateway."""

    def __init__(self) -> None:
        self._server: int | None = None
        self._client = 0.0

    @property
    def last(self) -> int | None:
        """The last epoch seen (``None``: no answer yet)."""
        return self._server

    def observe(self, epoch: int, now: float) -> bool:
        """Record an answer's ``epoch``; True when it shows the gateway lost its state."""
        previous, then = self._server, self._client
        self._server, self._client = epoch, now
        if previous is None:
            return False
        if epoch + 1 < previous:
            return True
        client_delta = now - then
        server_delta = epoch - previous
        return (
            client_delta + 2 < server_delta - server_delta / 16
            or server_delta + 2 < client_delta - client_delta / 16
        )
