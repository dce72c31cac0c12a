/* freeport: prints free TCP ports on 127.0.0.1 for process tests.
 *
 *   freeport [--record FILE] [--range LO-HI] [COUNT]
 *
 * Prints COUNT (default 1) distinct ports, one per line.  Two rules keep a
 * port handed to a test from being taken before the test binds it:
 *
 * - Ports are drawn at random from below the kernel's ephemeral range
 *   (/proc/sys/net/ipv4/ip_local_port_range), so neither another bind to port
 *   0 nor the source port of an outgoing connection can land on them.
 * - With --record FILE, ports listed in FILE (one per line; handed out
 *   earlier in the same test but perhaps not bound yet) are never printed
 *   again, and the printed ports are appended to FILE.
 *
 * --range draws from LO..HI instead (for tests of freeport itself); it fails
 * when that range has no free port.
 *
 * Each port is checked by binding it; all the sockets stay open until every
 * port is printed.  What lives elsewhere: the shell wrapper free_port in
 * tests/lib/common.sh, which passes the test's record file. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define FREEPORT_COUNT_MAX     64
#define FREEPORT_RECORD_MAX    4096
#define FREEPORT_LOW           10000 /* below: well-known and registered services */
#define FREEPORT_EPHEMERAL_LOW 32768 /* Linux's default, if /proc cannot be read */
#define FREEPORT_RANGE_MIN     1000  /* a smaller room below it: let the kernel choose */
#define FREEPORT_TRIES         20000

/* Binds a new TCP socket to 127.0.0.1:port (0: kernel-chosen).  Returns the
 * socket (the caller closes it) and sets *bound, or returns -1 with errno set
 * (EADDRINUSE: the port is taken). */
static int freeport_bind(unsigned port, unsigned *bound)
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

/* The lowest ephemeral port of this machine. */
static unsigned freeport_ephemeral_low(void)
{
    unsigned low = FREEPORT_EPHEMERAL_LOW, high = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%u %u", &low, &high) != 2 || low > 65535) {
            low = FREEPORT_EPHEMERAL_LOW;
        }
        fclose(f);
    }
    return low;
}

/* Reads the ports already handed out (FILE may not exist yet) into taken[]
 * and returns how many; a malformed line is skipped. */
static size_t freeport_read_record(const char *path, unsigned *taken, size_t cap)
{
    size_t n = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    unsigned port;
    while (n < cap && fscanf(f, "%u", &port) == 1) {
        taken[n++] = port;
    }
    fclose(f);
    return n;
}

static bool freeport_contains(const unsigned *ports, size_t n, unsigned port)
{
    for (size_t i = 0; i < n; i++) {
        if (ports[i] == port) {
            return true;
        }
    }
    return false;
}

static unsigned freeport_random(unsigned span)
{
    unsigned r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        r = (unsigned)rand();
    }
    return r % span;
}

/* The range ports are drawn from: [low, high). */
struct freeport_range {
    unsigned low, high;
};

/* Picks one free port in range (none: kernel-chosen) not in
 * taken[0..ntaken) and not in chosen[0..nchosen); returns its bound socket
 * and sets *port, or -1. */
static int freeport_pick(const struct freeport_range *range, const unsigned *taken, size_t ntaken,
                         const unsigned *chosen, size_t nchosen, unsigned *port)
{
    if (range != NULL) {
        assert(range->low < range->high);
        for (int i = 0; i < FREEPORT_TRIES; i++) {
            unsigned p = range->low + freeport_random(range->high - range->low);
            if (freeport_contains(taken, ntaken, p) || freeport_contains(chosen, nchosen, p)) {
                continue;
            }
            int fd = freeport_bind(p, port);
            if (fd >= 0) {
                return fd;
            }
        }
        errno = EADDRINUSE;
        return -1;
    }
    for (int i = 0; i < FREEPORT_TRIES; i++) {
        int fd = freeport_bind(0, port);
        if (fd < 0) {
            return -1;
        }
        if (!freeport_contains(taken, ntaken, *port) &&
            !freeport_contains(chosen, nchosen, *port)) {
            return fd;
        }
        close(fd);
    }
    return -1;
}

static int freeport_usage(void)
{
    fprintf(stderr, "usage: freeport [--record FILE] [--range LO-HI] [COUNT]   (COUNT 1..%d)\n",
            FREEPORT_COUNT_MAX);
    return 2;
}

int main(int argc, char **argv)
{
    const char *record = NULL;
    long count = 1;
    int argi = 1;
    struct freeport_range range = {FREEPORT_LOW, freeport_ephemeral_low()};
    bool ranged = range.high > range.low + FREEPORT_RANGE_MIN;
    while (argi < argc && strncmp(argv[argi], "--", 2) == 0) {
        if (argi + 1 >= argc) {
            return freeport_usage();
        }
        if (strcmp(argv[argi], "--record") == 0) {
            record = argv[argi + 1];
        } else if (strcmp(argv[argi], "--range") == 0) {
            unsigned low, high;
            int used = 0;
            if (sscanf(argv[argi + 1], "%u-%u%n", &low, &high, &used) != 2 ||
                argv[argi + 1][used] != '\0' || low == 0 || low > high || high > 65535) {
                return freeport_usage();
            }
            range = (struct freeport_range){low, high + 1};
            ranged = true;
        } else {
            return freeport_usage();
        }
        argi += 2;
    }
    if (argi < argc) {
        char *end = NULL;
        count = strtol(argv[argi], &end, 10);
        if (end == argv[argi] || *end != '\0' || count < 1 || count > FREEPORT_COUNT_MAX) {
            return freeport_usage();
        }
        argi++;
    }
    if (argi != argc) {
        return freeport_usage();
    }

    static unsigned taken[FREEPORT_RECORD_MAX];
    size_t ntaken = record != NULL ? freeport_read_record(record, taken, FREEPORT_RECORD_MAX) : 0;
    int fds[FREEPORT_COUNT_MAX];
    unsigned ports[FREEPORT_COUNT_MAX];
    size_t n = 0;
    int rv = 0;
    for (; n < (size_t)count; n++) {
        fds[n] = freeport_pick(ranged ? &range : NULL, taken, ntaken, ports, n, &ports[n]);
        if (fds[n] < 0) {
            fprintf(stderr, "freeport: no free port found: %s\n", strerror(errno));
            rv = 1;
            break;
        }
    }
    if (rv == 0 && record != NULL) {
        FILE *f = fopen(record, "a");
        if (f == NULL) {
            fprintf(stderr, "freeport: %s: %s\n", record, strerror(errno));
            rv = 1;
        } else {
            for (size_t i = 0; i < n; i++) {
                fprintf(f, "%u\n", ports[i]);
            }
            if (fclose(f) != 0) {
                fprintf(stderr, "freeport: %s: %s\n", record, strerror(errno));
                rv = 1;
            }
        }
    }
    if (rv == 0) {
        for (size_t i = 0; i < n; i++) {
            printf("%u\n", ports[i]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        close(fds[i]);
    }
    return rv;
}
