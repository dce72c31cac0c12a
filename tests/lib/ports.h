/* Free TCP ports on 127.0.0.1 for tests: drawn at random from below the
 * kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range), so that
 * neither a bind to port 0 nor the source port of an outgoing connection can
 * take a port between the moment a test picks it and the moment it binds it.
 * Each port is checked by binding it.  Test support only; the freeport tool
 * (tests/lib/freeport.c) is the shell tests' way to these. */
#ifndef COALITION_TEST_PORTS_H
#define COALITION_TEST_PORTS_H

#include <stddef.h>

/* Ports low..high-1.  {0, 0}: let the kernel choose (bind to port 0). */
struct ports_range {
    unsigned low, high;
};

/* From 10000 up to the ephemeral range, or {0, 0} if that leaves fewer than
 * 1000 ports. */
struct ports_range ports_default_range(void);

/* Binds a new TCP socket to a free port of `range` that is not among
 * avoid[0..n_avoid).  Returns the socket, which the caller closes, and sets
 * *port; or -1 with errno set (EADDRINUSE: no free port found). */
int ports_bind(const struct ports_range *range, const unsigned *avoid, size_t n_avoid,
               unsigned *port);

/* A port of the default range that was free a moment ago (its socket is
 * closed again), or 0 if none was found. */
unsigned ports_free(void);

#endif
