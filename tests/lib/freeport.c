/* freeport: prints free TCP ports on 127.0.0.1 for process tests.  It binds
 * 127.0.0.1:0, asks the kernel which port it chose, and prints it; with a
 * count argument it prints that many distinct ports, one per line.  All the
 * sockets stay open until every port is printed, so the ports differ. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FREEPORT_COUNT_MAX 64

/* Binds a new TCP socket to 127.0.0.1 with a kernel-chosen port.  Returns the
 * socket (the caller closes it) and sets *port, or returns -1 with a message
 * printed. */
static int freeport_bind(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        fprintf(stderr, "freeport: socket: %s\n", strerror(errno));
        return -1;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "freeport: bind: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        fprintf(stderr, "freeport: getsockname: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    long count = 1;
    if (argc > 2) {
        fprintf(stderr, "usage: freeport [COUNT]\n");
        return 2;
    }
    if (argc == 2) {
        char *end = NULL;
        count = strtol(argv[1], &end, 10);
        if (end == argv[1] || *end != '\0' || count < 1 || count > FREEPORT_COUNT_MAX) {
            fprintf(stderr, "freeport: COUNT must be 1..%d\n", FREEPORT_COUNT_MAX);
            return 2;
        }
    }

    int fds[FREEPORT_COUNT_MAX];
    unsigned ports[FREEPORT_COUNT_MAX];
    int rv = 0;
    long n = 0;
    for (; n < count; n++) {
        fds[n] = freeport_bind(&ports[n]);
        if (fds[n] < 0) {
            rv = 1;
            break;
        }
    }
    if (rv == 0) {
        for (long i = 0; i < count; i++) {
            printf("%u\n", ports[i]);
        }
    }
    for (long i = 0; i < n; i++) {
        close(fds[i]);
    }
    return rv;
}
