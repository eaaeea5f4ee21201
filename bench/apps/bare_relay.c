/* Bench app: the least a relay can cost on this machine, for reference rows next to pymirrord's own.

   usage: bare_relay splice|tee PORT HOST TO_PORT [COPY_PORT]    (prints "relay ready PORT" once listening)

   One connection at a time, blocking, no event loop and no bookkeeping: the client's bytes are spliced
   into a pipe and on to HOST:TO_PORT (splice), and with tee also duplicated into a second pipe (tee(2):
   page references, no copy) and spliced on to HOST:COPY_PORT, as a mirrored copy. At the client's end of
   stream both destinations are half-closed; the first one's answer (a sink's count) goes back to the
   client and the copy's is read and dropped. This is the design of pymirrord's relays (pymirrord.tunnel)
   with nothing else around it: what pymirrord measures above it is the price of its event loop, flow
   control and tunnels. Built by bench_runs.bare_relay with the machine's C compiler. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPE_BYTES (1 << 20)

static void fail(const char *what) {
    fprintf(stderr, "bare_relay: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int connect_to(const char *host, int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
        fprintf(stderr, "bare_relay: %s is not an IPv4 address\n", host);
        exit(2);
    }
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&address, sizeof address) != 0) fail("connect");
    return sock;
}

static void make_pipe(int ends[2]) {
    if (pipe(ends) != 0) fail("pipe");
    fcntl(ends[1], F_SETPIPE_SZ, PIPE_BYTES); /* the default size serves where the system refuses */
}

/* Moves exactly count bytes from the pipe to the socket. */
static void splice_all(int pipe_read, int sock, ssize_t count) {
    while (count > 0) {
        ssize_t moved = splice(pipe_read, NULL, sock, NULL, (size_t)count, SPLICE_F_MOVE);
        if (moved <= 0) fail("splice to a destination");
        count -= moved;
    }
}

static void relay(int client, const char *host, int to_port, int copy_port) {
    int to = connect_to(host, to_port);
    int copy = copy_port ? connect_to(host, copy_port) : -1;
    int main_pipe[2], copy_pipe[2] = {-1, -1};
    make_pipe(main_pipe);
    if (copy >= 0) make_pipe(copy_pipe);
    for (;;) {
        ssize_t count = splice(client, NULL, main_pipe[1], NULL, PIPE_BYTES, SPLICE_F_MOVE);
        if (count < 0) fail("splice from the client");
        if (count == 0) break;
        if (copy >= 0 && tee(main_pipe[0], copy_pipe[1], (size_t)count, 0) != count) fail("tee");
        splice_all(main_pipe[0], to, count);
        if (copy >= 0) splice_all(copy_pipe[0], copy, count);
    }
    shutdown(to, SHUT_WR);
    char answer[64];
    ssize_t length = recv(to, answer, sizeof answer, 0);
    if (copy >= 0) {
        shutdown(copy, SHUT_WR);
        char dropped[64];
        while (recv(copy, dropped, sizeof dropped, 0) > 0) {
        }
        close(copy);
        close(copy_pipe[0]);
        close(copy_pipe[1]);
    }
    if (length > 0) send(client, answer, (size_t)length, 0);
    close(to);
    close(main_pipe[0]);
    close(main_pipe[1]);
}

int main(int argc, char **argv) {
    int tee_mode = argc > 1 && strcmp(argv[1], "tee") == 0;
    if (argc != (tee_mode ? 6 : 5) || (!tee_mode && strcmp(argv[1], "splice") != 0)) {
        fprintf(stderr, "usage: bare_relay splice|tee PORT HOST TO_PORT [COPY_PORT]\n");
        return 2;
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    socklen_t size = sizeof address;
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, size) != 0 || listen(listener, 8) != 0)
        fail("listen");
    getsockname(listener, (struct sockaddr *)&address, &size);
    printf("relay ready %d\n", ntohs(address.sin_port));
    fflush(stdout);
    for (;;) {
        int client = accept(listener, NULL, NULL);
        if (client < 0) fail("accept");
        relay(client, argv[3], atoi(argv[4]), tee_mode ? atoi(argv[5]) : 0);
        close(client);
    }
}
