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
 * port is printed.  What lives elsewhere: picking and checking one port
 * (tests/lib/ports.c, shared with the unit tests) and the shell wrapper
 * free_port in tests/lib/common.sh, which passes the test's record file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ports.h"

#define FREEPORT_COUNT_MAX  64
#define FREEPORT_RECORD_MAX 4096

/* Reads the ports already handed out (FILE may not exist yet) into taken[]
 * and returns how many. */
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
    struct ports_range range = ports_default_range();
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
            range = (struct ports_range){low, high + 1};
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

    /* The recorded ports, then the ones picked here: none is picked twice. */
    static unsigned taken[FREEPORT_RECORD_MAX + FREEPORT_COUNT_MAX];
    size_t ntaken = record != NULL ? freeport_read_record(record, taken, FREEPORT_RECORD_MAX) : 0;
    unsigned *ports = &taken[ntaken];
    int fds[FREEPORT_COUNT_MAX];
    size_t n = 0;
    int rv = 0;
    for (; n < (size_t)count; n++) {
        fds[n] = ports_bind(&range, taken, ntaken + n, &ports[n]);
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
