"""Network-namespace lab: the real miniupnpd as one to four stacked NAT routers.

Topology for ``Lab(layers=N)``, each box a network namespace, each line a veth pair that is
created inside the namespaces and joined to nothing else::

    client ── r1 ── r2 ── ... ── rN ── outside

IPv4 address plan (why: /work/shared/lab-notes.md):

- client ``eth0`` 192.168.1.2/24, default via r1's ``lan`` 192.168.1.1/24.
- link k between r_k's ``wan`` and r_(k+1)'s ``lan``: r_k 31.0.k.2/24 (a WAN address must look
  public, or miniupnpd refuses to forward) and r_(k+1) 10.0.k.1/24 (a LAN address must be private,
  or miniupnpd exits), joined by /32 device routes; r_(k+1) listens with ``listening_ip=10.0.k.1/1``
  so that 31.0.k.2 counts as a LAN peer.
- rN ``wan`` 33.0.0.1/24, outside ``eth0`` 33.0.0.2/24. The outside has no default route.
- ``Lab.change_wan_ip(k)`` moves r_k's WAN address to another host of the same /24 (31.0.k.3,
  31.0.k.4, ...; 33.0.0.3, 33.0.0.4, ... for rN), so the outside keeps reaching rN through its
  connected /24 and only r_(k+1)'s /32 device route has to move. r_(k+1)'s miniupnpd allows the
  whole link /24 (31.0.k.0/24), not just 31.0.k.2: it reads its config at start only.
- ``Lab.restart_miniupnpd(k, http_port=P)`` reboots r_k's miniupnpd on another HTTP port (5000 at
  first); ``Lab.new_http_port(k)`` picks a free one.

IPv6 (``Lab(1, ipv6=True)``, one router only), for WANIPv6FirewallControl pinholes:

- LAN 2001:db8:1::/64 (client ::2, r1 ``lan`` ::1), WAN 2001:db8:ffff::/64 (r1 ``wan`` ::1,
  outside ::2); both prefixes are keyword arguments. No NAT for IPv6: the client's default route
  is r1's LAN address, the outside routes the LAN prefix via r1's WAN address. DAD is off
  (``accept_dad=0`` before the veths exist, ``nodad`` on addresses), so nothing is tentative.
- r1's forward chain has policy drop: established/related and LAN->WAN pass, then
  ``jump miniupnpd``, so new inbound traffic (IPv6 and IPv4) passes only through a miniupnpd rule
  (a pinhole, or a port mapping's filter rule). IPv4 masquerade is restricted to IPv4.
- miniupnpd 2.3.1 enables IPv6 only when ``listening_ip`` names the LAN *interface* (with
  ``listening_ip=ADDR/MASK`` it logs "no HTTP IPv6 address, disabling IPv6"); it then announces
  the last non-link-local IPv6 address of that interface. Do not set ``ipv6_listening_ip``: it
  binds HTTP and SSDP to that address only, so IPv4 HTTP is refused and multicast M-SEARCHes to
  ff02::c go unanswered, while LOCATION still names the interface's address.

The root namespace sees only ``ip netns add`` / ``ip netns del``: no address, route, rule or
process of the lab lives there, so nothing can leave a real interface.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

__all__ = [
    "CLIENT_IP",
    "HTTP_PORT",
    "LAN6_PREFIX",
    "MAX_LAYERS",
    "OUTSIDE_IP",
    "WAN6_PREFIX",
    "Lab",
    "LabError",
    "Router",
    "lab_unavailable_reason",
    "require_root",
]

CLIENT_IP = "192.168.1.2"
#: A miniupnpd DNAT rule: ``iif "wan" @nh,72,8 0x6 th dport 7000 dnat ip to 192.168.1.2:7000``
#: (0x6 TCP, 0x11 UDP: the IPv4 header's protocol byte).
_DNAT_RULE = re.compile(r"@nh,72,8 (0x6|0x11) th dport (\d+) dnat ip to ([\d.]+):(\d+)")
OUTSIDE_IP = "33.0.0.2"
HTTP_PORT = 5000
MAX_LAYERS = 4
#: IPv6 lab prefixes (documentation space; ``ipaddress`` calls it private, not global).
LAN6_PREFIX = "2001:db8:1::/64"
WAN6_PREFIX = "2001:db8:ffff::/64"
#: miniupnpc and miniupnpd ask a minissdpd socket first; its path is shared by every namespace.
NO_MINISSDPD = "/nonexistent/minissdpd.sock"
_TOOLS = ("ip", "nft", "miniupnpd", "upnpc", "unshare")
_AUTO_PREFIX = re.compile(r"^igd(\d+)x\d+-")
_counter = itertools.count()

# Regular chains first: a jump may only name a chain that already exists.
_NFT_RULES = """\
table inet filter {{
    chain miniupnpd {{ }}
    chain prerouting_miniupnpd {{ }}
    chain postrouting_miniupnpd {{ }}
    chain forward {{ type filter hook forward priority 0; policy accept; jump miniupnpd; }}
    chain prerouting {{ type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd; }}
    chain postrouting {{ type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd; oifname "{wan}" masquerade; }}
}}
"""
# The IPv6 lab's router: new inbound traffic passes only through a miniupnpd rule (a pinhole).
_NFT_RULES6 = """\
table inet filter {{
    chain miniupnpd {{ }}
    chain prerouting_miniupnpd {{ }}
    chain postrouting_miniupnpd {{ }}
    chain forward {{ type filter hook forward priority 0; policy drop;
        ct state established,related accept;
        iifname "{lan}" oifname "{wan}" accept;
        jump miniupnpd;
        meta nfproto ipv6 iifname "{wan}" counter drop comment "inbound IPv6 without pinhole"; }}
    chain prerouting {{ type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd; }}
    chain postrouting {{ type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd; oifname "{wan}" meta nfproto ipv4 masquerade; }}
}}
"""
# Per namespace, before any veth exists (new interfaces copy `default`): no DAD, no waiting.
_SYSCTL_NODAD = ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
_NFT_FLUSH = (
    "flush chain inet filter miniupnpd; flush chain inet filter prerouting_miniupnpd; "
    "flush chain inet filter postrouting_miniupnpd"
)
# /dev/console -> /dev/null: without /dev/log, `miniupnpd -d` also writes each log line to the
# console (slow, floods the machine). `unshare -m` keeps the bind mount private to miniupnpd.
_DAEMON_SH = (
    "{ [ ! -e /dev/console ] || mount --bind /dev/null /dev/console; } && "
    'exec miniupnpd -d -f "$0" -P "$1"'
)
_ECHO_SERVER = """\
import socket, sys
host = sys.argv[2] if len(sys.argv) > 2 else ""
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if ":" in host:  # "::" listens on IPv4 too
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((host, int(sys.argv[1])))
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    with c:
        c.sendall(c.recv(1024))
"""
_ECHO_CLIENT = """\
import socket, sys
token = sys.argv[3].encode()
host = sys.argv[1].strip("[]")
with socket.create_connection((host, int(sys.argv[2])), timeout=float(sys.argv[4])) as c:
    c.sendall(token)
    sys.exit(0 if c.recv(1024) == token else 1)
"""
_MAPPING_LINE = re.compile(r"^\s*\d+\s+(TCP|UDP)\s+(\d+)->([0-9.]+):(\d+)\s", re.MULTILINE)
_PINHOLE_ID = re.compile(r"^AddPinhole: .* / Pinhole ID = (\d+)\s*$", re.MULTILINE)


class LabError(RuntimeError):
    """A lab command failed or a daemon did not come up."""


@dataclass(frozen=True)
class Router:
    """One NAT layer: a namespace running miniupnpd, r1 next to the client."""

    index: int
    ns: str
    lan_ip: str
    wan_ip: str
    #: The LAN peer that maps on this router: the client for r1, else the lower router's WAN.
    internal_client: str
    lan_if: str = "lan"
    wan_if: str = "wan"
    http_port: int = HTTP_PORT
    #: IPv6 addresses (canonical text) in an IPv6 lab, else None.
    lan_ip6: str | None = None
    wan_ip6: str | None = None

    @property
    def location(self) -> str:
        return f"http://{self.lan_ip}:{self.http_port}/rootDesc.xml"

    @property
    def location6(self) -> str:
        """The description URL over IPv6, as miniupnpd announces it: ``http://[LAN6]:port/...``."""
        if self.lan_ip6 is None:
            raise LabError(f"r{self.index} has no IPv6 address (build the lab with ipv6=True)")
        return f"http://[{self.lan_ip6}]:{self.http_port}/rootDesc.xml"

    @property
    def listening_ip(self) -> str:
        if self.lan_ip6 is not None:  # miniupnpd enables IPv6 only for an interface name
            return self.lan_if
        # /1 on upper layers: the lower router's 31.0.k.2 must fall inside the "LAN".
        return f"{self.lan_ip}/24" if self.index == 1 else f"{self.lan_ip}/1"


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here (not root, tool missing), or None when it can."""
    if os.geteuid() != 0:
        return "network-namespace lab needs root"
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"network-namespace lab needs {', '.join(missing)} (apt: miniupnpd-nftables, ...)"
    return None


def require_root() -> None:
    """Skip the calling test unless the lab can run (root and every tool present)."""
    reason = lab_unavailable_reason()
    if reason is not None:
        import pytest

        pytest.skip(reason)


def _host(*args: str, check: bool = True, input: str | None = None) -> str:
    """Run ``ip netns ...`` style commands from the root namespace; they touch only namespaces."""
    proc = subprocess.run(args, input=input, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args)} -> rc {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def _default_sigint() -> None:
    # POSIX shells start `cmd &` with SIGINT ignored and Python keeps an inherited
    # SIG_IGN; a process the tests send Ctrl-C to must have the default back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def namespace_env() -> dict[str, str]:
    """The environment for commands inside a lab namespace.

    The lab's namespaces are isolated networks, so the test suite's loopback-only
    switch (``AIOIGD_LOOPBACK_ONLY``) is dropped there and only there.
    """
    return {k: v for k, v in os.environ.items() if k != "AIOIGD_LOOPBACK_ONLY"}


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _host("ip", "netns", "list").splitlines() if line]


def _delete_namespace(ns: str) -> None:
    """Kill whatever still runs in ``ns`` (by pid), then delete it."""
    for pid in _host("ip", "netns", "pids", ns, check=False).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    _host("ip", "netns", "del", ns, check=False)


def _remove_stale(prefix: str) -> None:
    """Delete namespaces of an earlier lab: this prefix, or an auto prefix whose pid is gone."""
    for ns in _namespaces():
        auto = _AUTO_PREFIX.match(ns)
        dead_owner = auto is not None and not Path(f"/proc/{auto.group(1)}").exists()
        if ns.startswith(f"{prefix}-") or dead_owner:
            _delete_namespace(ns)


def _listening(pid: int, port: int) -> bool:
    """True when ``pid`` is miniupnpd and its network namespace has a TCP listener on ``port``."""
    try:  # until `ip netns exec` has execed miniupnpd, /proc/PID/net may be the root namespace's
        if not os.readlink(f"/proc/{pid}/exe").endswith("/miniupnpd"):
            return False
    except OSError:
        return False
    needle = f":{port:04X} "
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        # Fields: sl local_address rem_address st ...; st 0A is LISTEN.
        if any(needle in f"{f[1]} " and f[3] == "0A" for f in (ln.split() for ln in lines)):
            return True
    return False


def _is_miniupnpd(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe").endswith("/miniupnpd")
    except OSError:
        return False


def _udp_bound(pid: int, port: int) -> bool:
    """True when the network namespace of ``pid`` has an IPv4 UDP socket on ``port``."""
    try:
        lines = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(f[1].endswith(f":{port:04X}") for f in (ln.split() for ln in lines))


def _udp6_bound(pid: int, port: int) -> bool:
    """True when the network namespace of ``pid`` has an IPv6 UDP socket on ``port``."""
    try:
        lines = Path(f"/proc/{pid}/net/udp6").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(f[1].endswith(f":{port:04X}") for f in (ln.split() for ln in lines))


def _stop_process(proc: subprocess.Popen[str], timeout: float = 3.0) -> None:
    """Terminate, then kill, and always reap (a zombie keeps its pid alive)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class Lab:
    """Build the topology on ``__enter__``; ``__exit__``/``close()`` always tear it down."""

    def __init__(
        self,
        layers: int = 1,
        *,
        prefix: str | None = None,
        miniupnpd_extra: dict[int, list[str]] | None = None,
        igd_v1: bool = False,
        ipv6: bool = False,
        lan6_prefix: str = LAN6_PREFIX,
        wan6_prefix: str = WAN6_PREFIX,
        upnp_off: tuple[int, ...] = (),
    ) -> None:
        if not 1 <= layers <= MAX_LAYERS:
            raise ValueError(f"layers must be 1..{MAX_LAYERS}, got {layers}")
        if ipv6 and layers != 1:
            raise ValueError(f"the IPv6 lab has exactly one router, got layers={layers}")
        self.ipv6 = ipv6
        self._lan6 = ipaddress.IPv6Network(lan6_prefix)
        self._wan6 = ipaddress.IPv6Network(wan6_prefix)
        if self._lan6.overlaps(self._wan6):
            raise ValueError(f"IPv6 prefixes {lan6_prefix} and {wan6_prefix} overlap")
        self.prefix = prefix or f"igd{os.getpid()}x{next(_counter)}"
        if len(self.prefix) > 12:  # keep "<prefix>-r4" short
            raise ValueError(f"prefix {self.prefix!r} is longer than 12 characters")
        self.layers = layers
        self.client_ns = f"{self.prefix}-c"
        self.outside_ns = f"{self.prefix}-o"
        self.outside_ip = OUTSIDE_IP
        self.client_ip = CLIENT_IP
        self.routers = [self._plan(k) for k in range(1, layers + 1)]
        self.tmpdir = Path()
        self._extra = miniupnpd_extra or {}
        self._igd_v1 = igd_v1
        #: Routers whose miniupnpd runs with ``enable_upnp=no``: NAT-PMP and PCP only.
        self.upnp_off = frozenset(upnp_off)
        self._uuids = {r.index: str(uuid.uuid4()) for r in self.routers}
        self._daemons: dict[int, subprocess.Popen[str]] = {}
        self._log_start: dict[int, int] = {}  # log size when r_k's current miniupnpd started
        self._procs: list[subprocess.Popen[str]] = []
        self._created: list[str] = []
        self._closed = False

    def _plan(self, k: int) -> Router:
        return Router(
            index=k,
            ns=f"{self.prefix}-r{k}",
            lan_ip="192.168.1.1" if k == 1 else f"10.0.{k - 1}.1",
            wan_ip="33.0.0.1" if k == self.layers else f"31.0.{k}.2",
            internal_client=CLIENT_IP if k == 1 else f"31.0.{k - 1}.2",
            lan_ip6=str(self._lan6[1]) if self.ipv6 else None,
            wan_ip6=str(self._wan6[1]) if self.ipv6 else None,
        )

    def _ip6(self, attr: str, net: ipaddress.IPv6Network) -> str:
        if not self.ipv6:
            raise LabError(f"lab.{attr}: this lab has no IPv6 (build it with ipv6=True)")
        return str(net[2])  # str() of IPv6Address is canonical (RFC 5952), as miniupnpd wants

    @property
    def client_ip6(self) -> str:
        """The client's IPv6 address (LAN prefix ::2); LabError unless ``ipv6=True``."""
        return self._ip6("client_ip6", self._lan6)

    @property
    def outside_ip6(self) -> str:
        """The outside host's IPv6 address (WAN prefix ::2); LabError unless ``ipv6=True``."""
        return self._ip6("outside_ip6", self._wan6)

    def router(self, k: int) -> Router:
        """Router ``k``, counted from 1 next to the client, as it is now.

        ``Router`` is frozen: ``restart_miniupnpd(k, http_port=...)`` and ``change_wan_ip(k)``
        replace the entry in ``self.routers``, so a ``Router`` kept from before is stale.
        """
        if not 1 <= k <= self.layers:
            raise IndexError(f"no router r{k} in a {self.layers}-layer lab")
        return self.routers[k - 1]

    def _set_router(self, new: Router) -> None:
        """Make ``new`` the current state of router ``new.index`` (the list entry is replaced)."""
        self.routers[new.index - 1] = new

    @property
    def namespaces(self) -> list[str]:
        return [self.client_ns, *(r.ns for r in self.routers), self.outside_ns]

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:  # pytest shows the captured stderr of a failed test
            print(self.log_tails(), file=sys.stderr)
        self.close()

    def _build(self) -> None:
        _remove_stale(self.prefix)
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        for ns in self.namespaces:
            _host("ip", "netns", "add", ns)
            self._created.append(ns)
            if self.ipv6:
                self.run(ns, "sysctl", "-qw", *_SYSCTL_NODAD)
        # veth pairs are born inside the namespaces, never in the root one.
        for ns_a, if_a, ns_b, if_b in self._links():
            _host(*f"ip -n {ns_a} link add {if_a} type veth peer name {if_b} netns {ns_b}".split())
        for ns, lines in self._ip_batches().items():
            _host("ip", "-n", ns, "-batch", "-", input="\n".join(lines) + "\n")
        for r in self.routers:
            if self.ipv6:
                sysctls = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
                self.run(r.ns, "sysctl", "-qw", *sysctls)
                rules = _NFT_RULES6.format(lan=r.lan_if, wan=r.wan_if)
            else:
                self.run(r.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
                rules = _NFT_RULES.format(wan=r.wan_if)
            self.run(r.ns, "nft", "-f", "-", input=rules)
        for r in self.routers:
            self._spawn_miniupnpd(r.index)
        for r in self.routers:
            self._wait_ready(r.index)

    def _links(self) -> list[tuple[str, str, str, str]]:
        """Veth pairs from the client up: (namespace, iface, peer namespace, peer iface)."""
        nodes = [(self.client_ns, "eth0")]
        for r in self.routers:
            nodes += [(r.ns, r.lan_if), (r.ns, r.wan_if)]
        nodes.append((self.outside_ns, "eth0"))
        return [(*nodes[i], *nodes[i + 1]) for i in range(0, len(nodes), 2)]

    def _ip_batches(self) -> dict[str, list[str]]:
        """``ip -batch`` lines per namespace: links up, addresses, routes."""
        up = ["link set lo up"]
        batches = {
            self.client_ns: [
                *up,
                "link set eth0 up",
                f"addr add {CLIENT_IP}/24 dev eth0",
                f"route add default via {self.routers[0].lan_ip}",
            ],
            self.outside_ns: [*up, "link set eth0 up", f"addr add {OUTSIDE_IP}/24 dev eth0"],
        }
        for r in self.routers:
            lines = [*up, f"link set {r.lan_if} up", f"link set {r.wan_if} up"]
            lines.append(f"addr add {r.lan_ip}/24 dev {r.lan_if}")
            lines.append(f"addr add {r.wan_ip}/24 dev {r.wan_if}")
            if r.index > 1:  # device route to the lower router's public-looking WAN address
                lines.append(f"route add {r.internal_client}/32 dev {r.lan_if}")
            if r.index < self.layers:
                upper_lan = self.routers[r.index].lan_ip
                lines.append(f"route add {upper_lan}/32 dev {r.wan_if}")
                lines.append(f"route add default via {upper_lan} dev {r.wan_if} onlink")
            if r.lan_ip6 is not None and r.wan_ip6 is not None:
                lines.append(f"addr add {r.lan_ip6}/{self._lan6.prefixlen} dev {r.lan_if} nodad")
                lines.append(f"addr add {r.wan_ip6}/{self._wan6.prefixlen} dev {r.wan_if} nodad")
            batches[r.ns] = lines
        if self.ipv6:
            r1 = self.routers[0]
            batches[self.client_ns] += [
                f"addr add {self.client_ip6}/{self._lan6.prefixlen} dev eth0 nodad",
                f"route add ::/0 via {r1.lan_ip6} dev eth0",
            ]
            batches[self.outside_ns] += [
                f"addr add {self.outside_ip6}/{self._wan6.prefixlen} dev eth0 nodad",
                f"route add {self._lan6} via {r1.wan_ip6} dev eth0",
            ]
        return batches

    def close(self) -> None:
        """Kill every daemon and tracked process, delete the namespaces; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for proc in [*self._daemons.values(), *self._procs]:
            _stop_process(proc)
        self._daemons.clear()
        self._procs.clear()
        for ns in reversed(self._created):
            _delete_namespace(ns)
        self._created.clear()
        if self.tmpdir != Path() and self.tmpdir.is_dir():  # Path() (not built yet) is the cwd
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    # -- commands -----------------------------------------------------------------------------

    def run(
        self,
        ns: str,
        *args: str,
        check: bool = True,
        timeout: float = 30,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside namespace ``ns``; LabError on a non-zero exit when ``check``."""
        cmd = ["ip", "netns", "exec", ns, *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, env=namespace_env()
        )
        if check and proc.returncode != 0:
            raise LabError(
                f"[{ns}] {' '.join(args)} -> rc {proc.returncode}\n"
                f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
            )
        return proc

    def popen(self, ns: str, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
        """Start ``args`` inside ``ns`` with piped stdout (and stdin if asked); it is
        killed at teardown."""
        # `ip netns exec` execs the command, so the Popen pid is the command's own pid.
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=namespace_env(),
            # Ctrl-C tests: undo a SIGINT ignored by a background-job parent (see popen doc).
            preexec_fn=_default_sigint,
        )
        self._procs.append(proc)
        return proc

    def upnpc(self, k: int, *args: str, check: bool = True) -> str:
        """Run ``upnpc -u <r_k location> args`` from r_k's LAN peer; return its stdout."""
        peer_ns = self.client_ns if k == 1 else self.router(k - 1).ns
        cmd = ("upnpc", "-p", NO_MINISSDPD, "-u", self.router(k).location, *args)
        return self.run(peer_ns, *cmd, check=check).stdout

    def upnpc6(self, *args: str, check: bool = True) -> str:
        """Run ``upnpc -6 -u <r1 location6> args`` in the client namespace; return its stdout.

        Everything then goes over IPv6 from the client's address. upnpc exits 0 even when an
        action fails: read its output.
        """
        cmd = ("upnpc", "-6", "-p", NO_MINISSDPD, "-u", self.router(1).location6, *args)
        return self.run(self.client_ns, *cmd, check=check).stdout

    def upnpc_add_pinhole(
        self,
        port: int,
        protocol: str = "TCP",
        lease: int = 3600,
        *,
        internal_client: str | None = None,
        remote_host: str = "",
        remote_port: int = 0,
    ) -> int:
        """``upnpc -6 -A``: open a pinhole to the client (default) port; return its UniqueID."""
        client = self.client_ip6 if internal_client is None else internal_client
        args = (remote_host, str(remote_port), client, str(port), protocol, str(lease))
        out = self.upnpc6("-A", *args)
        found = _PINHOLE_ID.search(out)
        if found is None:
            raise LabError(f"upnpc -6 -A {' '.join(args)} opened no pinhole:\n{out.strip()}")
        return int(found.group(1))

    def firewall_rules(self, k: int = 1, chain: str = "miniupnpd") -> list[str]:
        """The rules of r_k's nft chain (``inet filter``), one string each, without handles."""
        out = self.run(self.router(k).ns, "nft", "list", "chain", "inet", "filter", chain).stdout
        lines = [ln.strip() for ln in out.splitlines()]
        return [ln for ln in lines if ln and not ln.startswith(("table ", "chain ", "type ", "}"))]

    def redirects(self, k: int) -> list[tuple[str, int, str, int]]:
        """r_k's port forwards as its nftables DNAT rules show them, whichever protocol made
        them: (protocol, external port, internal client, internal port)."""
        ns = self.router(k).ns
        out = self.run(ns, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd").stdout
        names = {"0x6": "TCP", "0x11": "UDP"}
        return [(names[m[0]], int(m[1]), m[2], int(m[3])) for m in _DNAT_RULE.findall(out)]

    def upnpc_mappings(self, k: int) -> list[tuple[str, int, str, int]]:
        """r_k's table by ``upnpc -l``: (protocol, ext port, internal client, internal port)."""
        out = self.upnpc(k, "-l")
        return [(m[0], int(m[1]), m[2], int(m[3])) for m in _MAPPING_LINE.findall(out)]

    # -- miniupnpd ----------------------------------------------------------------------------

    def _conf(self, r: Router) -> str:
        lines = [
            f"ext_ifname={r.wan_if}",
            f"listening_ip={r.listening_ip}",
            # IPv6 (pinholes): the LAN interface name above, an IPv6 address on it, and these.
            *([f"ext_ifname6={r.wan_if}", "ipv6_disable=no"] if r.lan_ip6 is not None else []),
            f"http_port={r.http_port}",
            f"enable_upnp={'no' if r.index in self.upnp_off else 'yes'}",
            "enable_natpmp=yes",
            "secure_mode=yes",
            f"uuid={self._uuids[r.index]}",
            f"friendly_name=aioigd lab r{r.index}",
            f"minissdpdsocket={NO_MINISSDPD}",
            f"force_igd_desc_v1={'yes' if self._igd_v1 else 'no'}",
            "upnp_table_name=filter",
            "upnp_nat_table_name=filter",
            "upnp_forward_chain=miniupnpd",
            "upnp_nat_chain=prerouting_miniupnpd",
            "upnp_nat_postrouting_chain=postrouting_miniupnpd",
            # Extras precede the permission rules, so that their allow/deny lines match first.
            *self._extra.get(r.index, []),
            f"allow 1024-65535 {r.lan_ip.rsplit('.', 1)[0]}.0/24 0-65535",
        ]
        if r.index > 1:
            # The lower router's whole WAN /24, not just its address: change_wan_ip() moves that
            # address inside the /24 while this miniupnpd, which reads its config at start only,
            # keeps running. secure_mode still makes the internal client the request's source.
            link = ipaddress.IPv4Network(f"{r.internal_client}/24", strict=False)
            lines.append(f"allow 1024-65535 {link} 0-65535")
        lines.append("deny 0-65535 0.0.0.0/0 0-65535")
        return "\n".join(lines) + "\n"

    def _spawn_miniupnpd(self, k: int) -> None:
        r = self.router(k)
        if k in self._daemons:
            raise LabError(f"miniupnpd r{k} is already running")
        conf = self.tmpdir / f"r{k}.conf"
        pid = self.tmpdir / f"r{k}.pid"
        conf.write_text(self._conf(r))
        pid.unlink(missing_ok=True)  # a stale pid file makes miniupnpd refuse to start
        self.run(r.ns, "nft", _NFT_FLUSH)  # boots with an empty table, like a real router
        with open(self.tmpdir / f"r{k}.log", "a") as log:
            self._log_start[k] = log.tell()
            self._daemons[k] = subprocess.Popen(
                [
                    *f"ip netns exec {r.ns} unshare -m sh -c".split(),
                    _DAEMON_SH,
                    str(conf),
                    str(pid),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def _wait_ready(self, k: int, timeout: float = 5.0) -> None:
        proc = self._daemons[k]
        deadline = time.monotonic() + timeout
        while not self._ready(k, proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                state = "exited" if proc.poll() is not None else f"not ready after {timeout}s"
                raise LabError(f"miniupnpd r{k} {state}; log tail:\n{self._tail(k)}")
            time.sleep(0.01)

    def _ready(self, k: int, pid: int) -> bool:
        r = self.router(k)
        if k in self.upnp_off:  # no HTTP: ready once the NAT-PMP/PCP socket is bound
            return _is_miniupnpd(pid) and _udp_bound(pid, 5351)
        if not _listening(pid, r.http_port):
            return False
        if r.lan_ip6 is None:
            return True
        # IPv6: its SSDP socket is bound (opened after HTTP) and IPv6 was not disabled.
        path = self.tmpdir / f"r{k}.log"
        with open(path, "rb") as log:
            log.seek(self._log_start.get(k, 0))
            this_run = log.read().decode(errors="replace")
        if "disabling IPv6" in this_run:
            raise LabError(f"miniupnpd r{k} disabled IPv6; log tail:\n{self._tail(k)}")
        return _udp6_bound(pid, 1900)

    def start_miniupnpd(self, k: int, *, http_port: int | None = None) -> None:
        """Start r_k's miniupnpd with an empty table and wait until its HTTP port listens.

        ``http_port`` (1024-65535) moves it to that HTTP port from now on: ``router(k)``
        (``http_port``, ``location``) says so even when the start then fails.
        """
        if k in self._daemons:
            raise LabError(f"miniupnpd r{k} is already running")
        if http_port is not None:
            if not 1024 <= http_port <= 65535:
                raise ValueError(f"http_port must be 1024..65535, got {http_port}")
            self._set_router(replace(self.router(k), http_port=http_port))
        self._spawn_miniupnpd(k)
        self._wait_ready(k)

    def stop_miniupnpd(self, k: int) -> None:
        """Stop r_k's miniupnpd and reap it; no-op when it is not running."""
        proc = self._daemons.pop(k, None)
        if proc is not None:
            _stop_process(proc)

    def restart_miniupnpd(self, k: int, *, http_port: int | None = None) -> None:
        """Stop and start r_k's miniupnpd: a router reboot, the mapping table empty again.

        With ``http_port`` the new miniupnpd listens on that HTTP port (routers that pick a new
        one at every boot); ``router(k).location`` is then the new description URL, and
        nothing listens on the old port. See ``new_http_port``.
        """
        self.stop_miniupnpd(k)
        self.start_miniupnpd(k, http_port=http_port)

    def _tcp_listening_ports(self, ns: str) -> set[int]:
        out = self.run(ns, "ss", "-Hltn").stdout  # State Recv-Q Send-Q Local:Port Peer:Port
        return {int(f[3].rsplit(":", 1)[1]) for f in (ln.split() for ln in out.splitlines()) if f}

    def new_http_port(self, k: int) -> int:
        """A TCP port other than r_k's current HTTP port that nothing listens on in r_k's
        namespace: the next one up from the current port (wrapping to 1024 after 65535)."""
        current = self.router(k).http_port
        busy = self._tcp_listening_ports(self.router(k).ns) | {current}
        for offset in range(1, 65536 - 1024):
            port = 1024 + (current - 1024 + offset) % (65536 - 1024)
            if port not in busy:
                return port
        raise LabError(f"no free TCP port in {self.router(k).ns}")

    # -- WAN address change -------------------------------------------------------------------

    def _next_wan_ip(self, k: int) -> str:
        """The next host of r_k's WAN /24 after its current address (wrapping), skipping the
        outside host's address (on rN's link)."""
        old = ipaddress.IPv4Address(self.router(k).wan_ip)
        hosts = list(ipaddress.IPv4Network(f"{old}/24", strict=False).hosts())
        taken = {old, ipaddress.IPv4Address(self.outside_ip)}
        start = hosts.index(old)
        for i in range(1, len(hosts)):
            candidate = hosts[(start + i) % len(hosts)]
            if candidate not in taken:
                return str(candidate)
        raise LabError(f"no free address left in r{k}'s WAN /24")

    def change_wan_ip(self, k: int, new_ip: str | None = None, *, timeout: float = 5.0) -> str:
        """Move r_k's IPv4 WAN address to ``new_ip`` (default: the next free host of the same
        /24, see the module docstring) while its miniupnpd keeps running; return it.

        - r_k: the new address is added before the old one is deleted, with
          ``promote_secondaries`` on, so the WAN interface is never without an address (deleting
          the last address of a device flushes every route through it) and the new one is its
          primary address afterwards; its routes to r_(k+1) are re-asserted anyway.
        - r_(k+1) (k < layers): the /32 device route moves to the new address and
          ``router(k + 1).internal_client`` becomes it; its miniupnpd already allows the whole
          /24 (see ``_conf``). The outside reaches rN's new address over its connected /24.
        - The lower router r_(k-1) is untouched: its default route is via r_k's LAN address.
        - nft: no lab rule names an address (masquerade is ``oifname "wan" masquerade`` and takes
          the interface's primary address for each new connection). miniupnpd's DNAT rules match
          ``iif "wan"`` and the port, not the destination address, so mappings made before the
          change answer at the new address too. r_(k+1)'s mappings to r_k's *old* address are
          left as they are (stale, as on a real upstream router).

        miniupnpd 2.3.1 (no ``ext_ip=`` in the config) needs no signal and no restart. Seen:
        GetExternalIPAddress returns the new address right away, AddPortMapping logs "Check
        protocol tcp for port P on ext_if wan NEW" (it reads the interface address per request),
        and its netlink interface watcher logs ``ProcessInterfaceWatchNotify RTM_NEWADDR`` /
        ``RTM_DELADDR`` for the WAN interface, each followed by "should send external iface
        address change notification(s)". Per miniupnpd's source, that line is logged by the main
        loop just before it re-checks whether the new address is reserved (a reserved one
        disables port forwarding), sends the NAT-PMP address announcement and the UPnP
        ExternalIPAddress event. When r_k's miniupnpd runs, this returns only once that line
        follows the RTM_DELADDR in its log (LabError after ``timeout`` seconds).

        IPv4 only: an IPv6 lab's WAN IPv6 address stays.
        """
        r = self.router(k)
        old = r.wan_ip
        new = self._next_wan_ip(k) if new_ip is None else str(ipaddress.IPv4Address(new_ip))
        net = ipaddress.IPv4Network(f"{old}/24", strict=False)
        if ipaddress.IPv4Address(new) not in net or new in (old, self.outside_ip):
            raise ValueError(f"r{k}'s new WAN address must be another host of {net}, got {new}")
        upper = self.router(k + 1) if k < self.layers else None
        log_path = self.tmpdir / f"r{k}.log"
        log_pos = log_path.stat().st_size if log_path.is_file() else 0
        if upper is not None:  # the new return route first, so no reply is lost in between
            self.run(upper.ns, "ip", "route", "replace", f"{new}/32", "dev", upper.lan_if)
        self.run(r.ns, "sysctl", "-qw", f"net.ipv4.conf.{r.wan_if}.promote_secondaries=1")
        batch = [f"addr add {new}/24 dev {r.wan_if}", f"addr del {old}/24 dev {r.wan_if}"]
        if upper is not None:
            batch += [
                f"route replace {upper.lan_ip}/32 dev {r.wan_if}",
                f"route replace default via {upper.lan_ip} dev {r.wan_if} onlink",
            ]
        _host("ip", "-n", r.ns, "-batch", "-", input="\n".join(batch) + "\n")
        if upper is not None:
            self.run(upper.ns, "ip", "route", "del", f"{old}/32", "dev", upper.lan_if)
            self._set_router(replace(upper, internal_client=new))
        self._set_router(replace(r, wan_ip=new))
        if self.miniupnpd_pid(k) is not None:
            self._wait_wan_change_seen(k, log_pos, timeout)
        return new

    def _wait_wan_change_seen(self, k: int, log_pos: int, timeout: float) -> None:
        path = self.tmpdir / f"r{k}.log"
        deadline = time.monotonic() + timeout
        while True:
            with open(path, "rb") as log:
                log.seek(log_pos)
                text = log.read().decode(errors="replace")
            deleted = text.rfind("RTM_DELADDR")
            if deleted >= 0 and "should send external iface address change" in text[deleted:]:
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"miniupnpd r{k} did not log the WAN address change within {timeout}s; "
                    f"log tail:\n{self._tail(k)}"
                )
            time.sleep(0.01)

    def miniupnpd_pid(self, k: int) -> int | None:
        proc = self._daemons.get(k)
        return proc.pid if proc is not None and proc.poll() is None else None

    def miniupnpd_log(self, k: int) -> str:
        path = self.tmpdir / f"r{k}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def _tail(self, k: int, lines: int = 20) -> str:
        return "\n".join(self.miniupnpd_log(k).splitlines()[-lines:])

    def log_tails(self, lines: int = 20) -> str:
        """The last ``lines`` of every router's miniupnpd log, for a failure report."""
        return "\n".join(
            f"--- miniupnpd r{r.index} ---\n{self._tail(r.index, lines)}" for r in self.routers
        )

    # -- reachability helpers -----------------------------------------------------------------

    def tcp_listener(
        self, ns: str, port: int, timeout: float = 5.0, *, host: str = ""
    ) -> subprocess.Popen[str]:
        """Start a TCP echo server on ``host``:``port`` in ``ns``; return once it listens.

        ``host`` "" (default) listens on every IPv4 address; an IPv6 literal, e.g. "::" (IPv6
        and IPv4) or the client's address, listens over IPv6.
        """
        args = (sys.executable, "-I", "-S", "-c", _ECHO_SERVER, str(port), host)
        proc = self.popen(ns, *args)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready or proc.stdout.readline().strip() != "ready":
            raise LabError(f"echo server in {ns} on port {port} did not start")
        return proc

    def tcp_connect(self, ns: str, host: str, port: int, timeout: float = 2.0) -> bool:
        """True when a connection from ``ns`` to host:port gets its token echoed back.

        ``host`` may be an IPv4 or IPv6 literal (brackets allowed).
        """
        token = uuid.uuid4().hex
        args = (sys.executable, "-I", "-S", "-c", _ECHO_CLIENT, host, str(port), token)
        proc = self.run(ns, *args, str(timeout), check=False, timeout=timeout + 10)
        return proc.returncode == 0
