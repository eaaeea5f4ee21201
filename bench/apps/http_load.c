/* Bench client: http_load.py's requests, pacing and output, written in C.

   usage: http_load HOST PORT TOTAL CONNECTIONS [--rate R] [--warmup W]

   The same load as http_load.py (see its docstring: request n carries "X-Bench: mine" when n is even;
   with --rate each connection keeps its own fixed schedule and a late answer charges the requests it
   held up; --warmup sends W untimed requests per connection first) and the same JSON line:
   {"seconds": S, "results": [[mine, body or null, ms], ...]}. On two cores the Python client spends
   20-28 us of CPU per request, as much as the apps it loads: this one spends a few, so a flat-out run
   measures the servers rather than the client. One thread, nonblocking sockets, epoll; answers are
   HTTP/1.1 with a Content-Length (what the bench apps send). Built by bench_runs.http_load_client with
   the machine's C compiler. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER (64 * 1024)

typedef struct {
    int fd;
    long next;     /* number of the next request this connection sends (or is sending) */
    int waiting;   /* a request is out and its answer not yet whole */
    int sleeping;  /* paced: the next request waits for its time */
    int dead;
    double due;
    double start;
    size_t used;
    char buffer[BUFFER];
} Connection;

typedef struct {
    char mine;
    char *body; /* NULL: no answer */
    double ms;
} Result;

static long total, connections;
static double rate;
static Result *results;
static long recorded;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fail(const char *what) {
    fprintf(stderr, "http_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int request(long n, char *out) {
    return sprintf(out, "GET /r/%ld HTTP/1.1\r\nHost: b\r\nX-Bench: %s\r\n\r\n", n, n % 2 == 0 ? "mine" : "other");
}

static int send_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t sent = send(fd, data, length, MSG_NOSIGNAL);
        if (sent > 0) {
            data += sent;
            length -= (size_t)sent;
        } else if (sent < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, 10000) <= 0) return -1;
        } else if (sent < 0 && errno == EINTR) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

/* The length of the whole answer at the start of the buffer (its body at *body, *body_length long), 0 if
   it is not all here yet, -1 if it cannot be read. */
static long answer_length(Connection *c, char **body, long *body_length) {
    char *end = memmem(c->buffer, c->used, "\r\n\r\n", 4);
    if (end == NULL) return c->used >= BUFFER ? -1 : 0;
    long head = end + 4 - c->buffer;
    long length = -1;
    for (char *line = c->buffer; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "content-length:", 15) == 0) length = strtol(line + 15, NULL, 10);
    }
    if (length < 0 || head + length > BUFFER) return -1;
    if ((long)c->used < head + length) return 0;
    *body = c->buffer + head;
    *body_length = length;
    return head + length;
}

static void record(long n, const char *body, long body_length, double start) {
    Result *r = &results[recorded++];
    r->mine = n % 2 == 0;
    r->ms = (now() - start) * 1000;
    r->body = NULL;
    if (body != NULL) {
        r->body = malloc((size_t)body_length + 1);
        memcpy(r->body, body, (size_t)body_length);
        r->body[body_length] = 0;
    }
}

static double began; /* when the timed requests began */

static void send_next(Connection *c, double start) {
    char out[128];
    c->start = start;
    c->sleeping = 0;
    c->waiting = 1;
    if (send_all(c->fd, out, (size_t)request(c->next, out)) != 0) c->dead = 1;
}

/* Connection `index`'s next request: sent now, or asleep until it is due (paced). */
static void go_on(Connection *c, long index) {
    if (c->next >= total) return;
    double t = now();
    if (rate <= 0) {
        send_next(c, t);
        return;
    }
    long k = (c->next - index) / connections;
    c->due = began + index / rate + k * connections / rate;
    if (c->due > t) {
        c->sleeping = 1; /* sent when due; its latency counts from then (the timer's lateness is not the server's) */
    } else {
        send_next(c, c->due); /* the last answer came late: this request waited for it */
    }
}

/* A connection that failed: its request out and all it had still to send get no answer. */
static void give_up(Connection *c) {
    if (c->waiting) record(c->next, NULL, 0, c->start);
    if (!c->waiting && c->next < total) record(c->next, NULL, 0, now());
    for (long n = c->next + connections; n < total; n += connections) record(n, NULL, 0, now());
    c->next = total;
    c->waiting = c->sleeping = 0;
    c->dead = 1;
    close(c->fd);
}

/* Reads what came; 1 when an answer was completed, 0 when more must come, -1 on failure. */
static int read_answer(Connection *c) {
    for (;;) {
        char *body;
        long body_length;
        long length = answer_length(c, &body, &body_length);
        if (length < 0) return -1;
        if (length > 0) {
            if (c->waiting) record(c->next, body, body_length, c->start);
            memmove(c->buffer, c->buffer + length, c->used - (size_t)length);
            c->used -= (size_t)length;
            c->waiting = 0;
            return 1;
        }
        ssize_t got = recv(c->fd, c->buffer + c->used, BUFFER - c->used, 0);
        if (got > 0) {
            c->used += (size_t)got;
        } else if (got < 0 && errno == EAGAIN) {
            return 0;
        } else if (got < 0 && errno == EINTR) {
            continue;
        } else {
            return -1;
        }
    }
}

static int connect_to(const char *host, int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
        fprintf(stderr, "http_load: %s is not an IPv4 address\n", host);
        exit(2);
    }
    int sock = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (sock < 0) fail("socket");
    int on = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (connect(sock, (struct sockaddr *)&address, sizeof address) != 0) {
        if (errno != EINPROGRESS) fail("connect");
        struct pollfd p = {.fd = sock, .events = POLLOUT};
        int error = 0;
        socklen_t size = sizeof error;
        if (poll(&p, 1, 10000) != 1) fail("connect (timed out)");
        getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error != 0) {
            errno = error;
            fail("connect");
        }
    }
    return sock;
}

/* One answer, waiting for it (warm-up). */
static int await_answer(Connection *c) {
    for (;;) {
        int outcome = read_answer(c);
        if (outcome != 0) return outcome;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 30000) <= 0) return -1;
    }
}

static void print_json_string(const char *text) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20 || *p >= 0x7f) {
            printf("\\u%04x", *p); /* read as latin-1, as the Python client's decode would not fail on */
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

int main(int argc, char **argv) {
    long warmup = 0;
    if (argc < 5) {
        fprintf(stderr, "usage: http_load HOST PORT TOTAL CONNECTIONS [--rate R] [--warmup W]\n");
        return 2;
    }
    for (int i = 5; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rate") == 0) rate = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--warmup") == 0) warmup = atol(argv[i + 1]);
        else {
            fprintf(stderr, "http_load: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    total = atol(argv[3]);
    connections = atol(argv[4]);
    if (total < 0 || connections <= 0) {
        fprintf(stderr, "http_load: TOTAL must be >= 0 and CONNECTIONS > 0\n");
        return 2;
    }
    results = calloc((size_t)total + 1, sizeof *results);
    Connection *all = calloc((size_t)connections, sizeof *all);
    int poller = epoll_create1(0);
    if (results == NULL || all == NULL || poller < 0) fail("setup");
    for (long i = 0; i < connections; i++) {
        Connection *c = &all[i];
        c->fd = connect_to(argv[1], atoi(argv[2]));
        for (long n = 0; n < warmup; n++) {
            char out[128];
            c->waiting = 0; /* untimed: not recorded */
            if (send_all(c->fd, out, (size_t)request(n, out)) != 0 || await_answer(c) != 1) {
                fprintf(stderr, "http_load: a warm-up request got no answer\n");
                return 1;
            }
        }
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(poller, EPOLL_CTL_ADD, c->fd, &event) != 0) fail("epoll_ctl");
    }
    began = now();
    for (long i = 0; i < connections; i++) {
        all[i].next = i;
        go_on(&all[i], i);
        if (all[i].dead) give_up(&all[i]);
    }
    struct epoll_event events[256];
    while (recorded < total) {
        int timeout = -1;
        if (rate > 0) {
            double t = now(), soonest = -1;
            for (long i = 0; i < connections; i++) {
                if (all[i].sleeping && (soonest < 0 || all[i].due < soonest)) soonest = all[i].due;
            }
            if (soonest >= 0) timeout = soonest <= t ? 0 : (int)((soonest - t) * 1000) + 1;
        }
        int ready = epoll_wait(poller, events, 256, timeout);
        if (ready < 0 && errno != EINTR) fail("epoll_wait");
        for (int e = 0; e < ready; e++) {
            long i = (long)events[e].data.u64;
            Connection *c = &all[i];
            if (c->dead) continue;
            int outcome = read_answer(c);
            if (outcome < 0) {
                give_up(c);
            } else if (outcome == 1) {
                c->next += connections;
                go_on(c, i);
                if (c->dead) give_up(c);
            }
        }
        if (rate > 0) {
            double t = now();
            for (long i = 0; i < connections; i++) {
                if (all[i].sleeping && all[i].due <= t) {
                    send_next(&all[i], t);
                    if (all[i].dead) give_up(&all[i]);
                }
            }
        }
    }
    printf("{\"seconds\": %.6f, \"results\": [", now() - began);
    for (long n = 0; n < recorded; n++) {
        printf(n ? ", [%s, " : "[%s, ", results[n].mine ? "true" : "false");
        if (results[n].body) print_json_string(results[n].body);
        else printf("null");
        printf(", %.6f]", results[n].ms);
    }
    printf("]}\n");
    return 0;
}
