"""A per-client share of the connection cap: one address cannot hold every connection the server will accept.

The server (api.server.GuardedProtocol) caps open connections at
`max_connections`; without a share, one client opening that many idle
connections locks every other client out (each gets the canned 503). So each
client address may hold at most `per_client` of them at once (by default a
quarter of the cap, RAG_MAX_CONNECTIONS_PER_CLIENT); its next connection gets
the same canned 503 and is closed at once, while other addresses are still
admitted. The client is the TCP peer: a reverse proxy named in
RAG_TRUSTED_PROXIES carries many clients on its connections, so its addresses
are exempt (only the global cap applies to them).

Counting lives on the event loop of one server process (no lock needed):
`admit` on connection_made, `release` on connection_lost of an admitted one.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

DEFAULT_SHARE_DIVISOR = 4  # the default share: a quarter of the cap


def share_of(max_connections: int, configured: int = 0) -> int:
    """Connections one client may hold: `configured` when set (> 0), else a quarter of the cap; never above the cap."""
    share = configured if configured > 0 else max_connections // DEFAULT_SHARE_DIVISOR
    return max(1, min(share, max_connections))


class ConnectionShare:
    """Open connections per client address, at most `per_client` each; addresses in `exempt` are not counted."""

    def __init__(self, per_client: int, exempt: list[str] | tuple[str, ...] = ()):
        self.per_client = per_client
        self.open: Counter[str] = Counter()
        self.refused = 0
        self._exempt = [_network(entry) for entry in exempt]
        self._exempt = [network for network in self._exempt if network is not None]
        self._exempt_all = any(entry.strip() == "*" for entry in exempt)

    def exempt(self, host: str) -> bool:
        if self._exempt_all:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._exempt)

    def admit(self, host: str | None) -> bool:
        """Count a new connection from `host`: True when it may stay open, False (nothing counted) past its share."""
        if host is None or self.exempt(host):
            return True
        if self.open[host] >= self.per_client:
            self.refused += 1
            return False
        self.open[host] += 1
        return True

    def release(self, host: str | None) -> None:
        """An admitted connection from `host` closed."""
        if host is None or host not in self.open:
            return
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]  # memory stays bounded by the connections open, not the addresses ever seen


def _network(entry: str):
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None
