/* coalition-relay: a TCP relay for process tests that appends every byte it
 * forwards, both ways, to a capture file (tcpdump is not available here).
 *
 *   coalition-relay CAPTURE LISTEN_PORT=HOST:PORT [LISTEN_PORT=HOST:PORT ...]
 *
 * Listens on 127.0.0.1:LISTEN_PORT for each mapping and forwards each
 * connection to HOST:PORT (numeric).  Prints "ready" on stdout once every
 * port listens.  Runs until killed; the capture is flushed after each
 * chunk.  Not for production: no limits on what it queues. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define MAPS_MAX 16

struct map {
    uv_tcp_t listener;
    struct sockaddr_in target;
};

struct side {
    uv_tcp_t tcp;
    struct side *other;
    bool closing;
};

struct pair {
    struct side a, b; /* a: accepted, b: to the target */
    uv_connect_t conn;
    int open;
};

struct chunk {
    uv_write_t w;
    char data[];
};

static FILE *capture;
static uv_loop_t *loop;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base != NULL ? suggested : 0;
}

static void pair_closed(uv_handle_t *h)
{
    struct pair *p = h->data;
    if (--p->open == 0) {
        free(p);
    }
}

static void pair_close(struct pair *p)
{
    if (!p->a.closing) {
        p->a.closing = true;
        uv_close((uv_handle_t *)&p->a.tcp, pair_closed);
    }
    if (!p->b.closing) {
        p->b.closing = true;
        uv_close((uv_handle_t *)&p->b.tcp, pair_closed);
    }
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct pair *p = st->data;
    struct side *from = (uv_tcp_t *)st == &p->a.tcp ? &p->a : &p->b;
    if (nread < 0) {
        free(buf->base);
        pair_close(p);
        return;
    }
    if (nread > 0 && !from->other->closing) {
        fwrite(buf->base, 1, (size_t)nread, capture);
        fflush(capture);
        struct chunk *c = malloc(sizeof(*c) + (size_t)nread);
        if (c != NULL) {
            memcpy(c->data, buf->base, (size_t)nread);
            uv_buf_t b = uv_buf_init(c->data, (unsigned)nread);
            if (uv_write(&c->w, (uv_stream_t *)&from->other->tcp, &b, 1, on_written) != 0) {
                free(c);
                pair_close(p);
            }
        }
    }
    free(buf->base);
}

static void on_target(uv_connect_t *req, int status)
{
    struct pair *p = req->data;
    if (status != 0 || p->a.closing) {
        pair_close(p);
        return;
    }
    uv_read_start((uv_stream_t *)&p->a.tcp, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&p->b.tcp, on_alloc, on_read);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct map *m = server->data;
    if (status != 0) {
        return;
    }
    struct pair *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return;
    }
    uv_tcp_init(loop, &p->a.tcp);
    uv_tcp_init(loop, &p->b.tcp);
    p->a.tcp.data = p->b.tcp.data = p;
    p->a.other = &p->b;
    p->b.other = &p->a;
    p->open = 2;
    if (uv_accept(server, (uv_stream_t *)&p->a.tcp) != 0) {
        pair_close(p);
        return;
    }
    p->conn.data = p;
    if (uv_tcp_connect(&p->conn, &p->b.tcp, (struct sockaddr *)&m->target, on_target) != 0) {
        pair_close(p);
    }
}

int main(int argc, char **argv)
{
    static struct map maps[MAPS_MAX];
    if (argc < 3 || argc - 2 > MAPS_MAX) {
        fprintf(stderr, "usage: coalition-relay CAPTURE LISTEN_PORT=HOST:PORT ...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    capture = fopen(argv[1], "ab");
    if (capture == NULL) {
        perror(argv[1]);
        return 1;
    }
    loop = uv_default_loop();
    for (int i = 2; i < argc; i++) {
        struct map *m = &maps[i - 2];
        int lport = 0, tport = 0;
        char host[64];
        if (sscanf(argv[i], "%d=%63[^:]:%d", &lport, host, &tport) != 3 ||
            uv_ip4_addr(host, tport, &m->target) != 0) {
            fprintf(stderr, "coalition-relay: bad mapping '%s'\n", argv[i]);
            return 2;
        }
        struct sockaddr_in a;
        uv_ip4_addr("127.0.0.1", lport, &a);
        uv_tcp_init(loop, &m->listener);
        m->listener.data = m;
        int rv = uv_tcp_bind(&m->listener, (struct sockaddr *)&a, 0);
        if (rv == 0) {
            rv = uv_listen((uv_stream_t *)&m->listener, 64, on_connection);
        }
        if (rv != 0) {
            fprintf(stderr, "coalition-relay: listen on %d: %s\n", lport, uv_strerror(rv));
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
