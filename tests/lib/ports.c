/* Free loopback TCP ports for tests (tests/lib/ports.h): random ports below
 * the ephemeral range, each checked by binding it.  What does not live
 * here: the record of ports a shell test has been given (freeport.c). */
#include "ports.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define PORTS_LOW           10000 /* below: well-known and registered services */
#define PORTS_EPHEMERAL_LOW 32768 /* Linux's default, if /proc cannot be read */
#define PORTS_RANGE_MIN     1000  /* a smaller room below it: let the kernel choose */
#define PORTS_TRIES         20000

/* Binds a new TCP socket to 127.0.0.1:port (0: kernel-chosen).  Returns the
 * socket and sets *bound, or -1 with errno set. */
static int ports_bind_one(unsigned port, unsigned *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *bound = ntohs(addr.sin_port);
    return fd;
}

struct ports_range ports_default_range(void)
{
    unsigned low = PORTS_EPHEMERAL_LOW, high = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%u %u", &low, &high) != 2 || low > 65535) {
            low = PORTS_EPHEMERAL_LOW;
        }
        fclose(f);
    }
    if (low < PORTS_LOW + PORTS_RANGE_MIN) {
        return (struct ports_range){0, 0};
    }
    return (struct ports_range){PORTS_LOW, low};
}

static bool ports_contains(const unsigned *ports, size_t n, unsigned port)
{
    for (size_t i = 0; i < n; i++) {
        if (ports[i] == port) {
            return true;
        }
    }
    return false;
}

static unsigned ports_random(unsigned span)
{
    unsigned r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        r = (unsigned)rand();
    }
    return r % span;
}

int ports_bind(const struct ports_range *range, const unsigned *avoid, size_t n_avoid,
               unsigned *port)
{
    bool kernel = range->low == 0 && range->high == 0;
    if (!kernel && range->low >= range->high) {
        errno = EINVAL;
        return -1;
    }
    for (int i = 0; i < PORTS_TRIES; i++) {
        unsigned p = kernel ? 0 : range->low + ports_random(range->high - range->low);
        if (!kernel && ports_contains(avoid, n_avoid, p)) {
            continue;
        }
        int fd = ports_bind_one(p, port);
        if (fd < 0) {
            if (kernel || errno != EADDRINUSE) {
                return -1;
            }
            continue;
        }
        if (!ports_contains(avoid, n_avoid, *port)) {
            return fd;
        }
        close(fd); /* kernel-chosen, but one to avoid */
    }
    errno = EADDRINUSE;
    return -1;
}

unsigned ports_free(void)
{
    struct ports_range range = ports_default_range();
    unsigned port = 0;
    int fd = ports_bind(&range, NULL, 0, &port);
    if (fd < 0) {
        return 0;
    }
    close(fd);
    return port;
}
