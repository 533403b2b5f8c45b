"""ports.py - loopback ports for the benchmarks' nodes (stdlib only)."""

import socket

# Below Linux's ephemeral range (32768-60999 by default): a port picked in
# it can be taken at any moment by an outgoing connection of another
# process (a test running alongside), and a node then fails to listen.
PORT_LO, PORT_HI = 20000, 32000


def free_port_pair(seed):
    """Two consecutive loopback ports that nothing listens on now (seed
    spreads concurrent callers); raises OSError when none is found."""
    span = PORT_HI - PORT_LO - 1
    for i in range(400):
        p = PORT_LO + (seed * 7919 + i * 37) % span
        ok = True
        for q in (p, p + 1):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", q))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise OSError("no free loopback port pair in %d-%d" % (PORT_LO, PORT_HI))
