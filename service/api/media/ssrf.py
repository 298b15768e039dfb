"""Which addresses the gateway may fetch media from (SSRF protection).

Refused: any address that is not globally routable (loopback, private,
link-local incl. the 169.254.169.254 metadata service, shared, reserved,
unspecified, documentation ranges, and fd00:ec2::254 in ULA space) and
multicast, including IPv4-mapped IPv6 forms of those. Checked on the resolved
addresses of every hop. Operators admit internal media stores through the
domain and network allowlists; `allowlist_only` refuses everything else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Named even though `is_global` already covers them: these are the ones attackers aim at.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


def _unmap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_public(ip: IPAddress) -> bool:
    ip = _unmap(ip)
    return ip.is_global and not ip.is_multicast and ip not in METADATA_ADDRESSES


class AddressPolicy:
    def __init__(
        self,
        *,
        allow_domains: Iterable[str] = (),
        allow_networks: Iterable[str] = (),
        allowlist_only: bool = False,
    ) -> None:
        self._domains = [d.lower().rstrip(".") for d in allow_domains]
        self._networks: list[IPNetwork] = [
            ipaddress.ip_network(n, strict=False) for n in allow_networks
        ]
        self._allowlist_only = allowlist_only

    def domain_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for domain in self._domains:
            if domain.startswith("."):
                if host.endswith(domain) or host == domain[1:]:
                    return True
            elif host == domain:
                return True
        return False

    def network_allowed(self, ip: IPAddress) -> bool:
        ip = _unmap(ip)
        return any(ip in net for net in self._networks)

    def refusal(self, host: str, addresses: Iterable[str]) -> str | None:
        """Why fetching `host` at these addresses is refused, or None if it is allowed.
        Every address must pass: a name resolving to one public and one private
        address is refused (the connection could go to either)."""
        if self.domain_allowed(host):
            return None
        ips = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        if not ips:
            return "no address"
        for ip in ips:
            if self.network_allowed(ip):
                continue
            if self._allowlist_only:
                return f"{host} is not on the media allowlist"
            if not is_public(ip):
                return f"{host} resolves to a non-public address"
        return None
