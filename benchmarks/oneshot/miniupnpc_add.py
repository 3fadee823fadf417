"""One-shot miniupnpc script, gateway URL known: description, external IP, add, verify, exit.

``python miniupnpc_add.py LOCATION PORT`` (timed as a whole process by coldrun.py).
"""

import sys

import miniupnpc

location, port = sys.argv[1], int(sys.argv[2])
u = miniupnpc.UPnP(minissdpdsocket="/nonexistent/minissdpd.sock")
u.selectigd(location)
external_ip = u.externalipaddress()
u.addportmapping(port, "TCP", u.lanaddr, port, "bench", "", 3600)
entry = u.getspecificportmapping(port, "TCP")
if entry is None or entry[0] != u.lanaddr:
    sys.exit("verification failed")
print(f"{external_ip}:{port} -> {u.lanaddr}:{port}")
