/*
 * The reference peer of `fastipc bench`: the machine's limit for its exchange, without Python.
 *
 * The same exchange as the Python rows: messages with a 4-byte big-endian length prefix over a
 * Unix stream socket (a socketpair, send buffers sized as fastipc sizes them), an echo side in a
 * forked process, both pinned as asked. It times round trips one by one with clock_gettime
 * (CLOCK_MONOTONIC), then the one-way stream: batches of a count message, that many messages
 * sent back to back, and the receiver's acknowledgement of the byte count.
 *
 *   cpeer SIZE ECHO_CPU CLIENT_CPU ITERATIONS BUDGET_NS MIN_IT MAX_IT WARMUP_NS MIN_WARMUP
 *         STREAM_ITERATIONS STREAM_BUDGET_NS STREAM_WARMUP_NS STREAM_BATCHES
 *
 * A CPU of -1 is no pinning; ITERATIONS (STREAM_ITERATIONS) 0 calibrates the number from the
 * warm-up and the budget. Prints one JSON line, {"event": "result", ...} or
 * {"event": "error", ...}, and exits 0 or 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KERNEL_BUFFER (4 * 1024 * 1024)

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fail(const char *what) {
    printf("{\"event\": \"error\", \"type\": \"OSError\", \"message\": \"cpeer: %s: %s\"}\n",
           what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) fail("sched_setaffinity");
}

/* Reads exactly n bytes; 0 at end of file before the first, 1 when done. */
static int read_exact(int fd, unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) fail("read");
        if (k == 0) {
            if (got == 0) return 0;
            errno = EPIPE;
            fail("end of file inside a message");
        }
        got += (size_t)k;
    }
    return 1;
}

static void write_all(int fd, const unsigned char *buf, size_t n) {
    while (n) {
        ssize_t k = write(fd, buf, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) fail("write");
        buf += k;
        n -= (size_t)k;
    }
}

static void put_length(unsigned char *p, uint32_t n) {
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
}

static uint32_t get_length(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Buffered reading: small messages (and the start of large ones) come through one read-ahead
 * buffer, so a small message costs one read; the rest of a large one is read straight into its
 * destination. */
#define READ_AHEAD 65536

typedef struct {
    int fd;
    unsigned char buf[READ_AHEAD];
    size_t start, end;
} reader;

/* Buffers at least k (<= READ_AHEAD) bytes; 0 at end of file before the first. */
static int fill(reader *r, size_t k) {
    if (r->end - r->start >= k) return 1;
    if (r->start) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    while (r->end < k) {
        ssize_t n = read(r->fd, r->buf + r->end, READ_AHEAD - r->end);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("read");
        if (n == 0) {
            if (r->end == 0) return 0;
            errno = EPIPE;
            fail("end of file inside a message");
        }
        r->end += (size_t)n;
    }
    return 1;
}

/* Reads one framed message: its payload into out + 4; its length, or -1 at end of file. */
static long read_message(reader *r, unsigned char *out, size_t max) {
    if (!fill(r, 4)) return -1;
    uint32_t n = get_length(r->buf + r->start);
    r->start += 4;
    if (n > max) {
        errno = EMSGSIZE;
        fail("message larger than the buffer");
    }
    size_t have = r->end - r->start;
    if (have > n) have = n;
    memcpy(out + 4, r->buf + r->start, have);
    r->start += have;
    if (have < n) {
        if (n - have < READ_AHEAD / 2) {
            if (!fill(r, n - have)) fail("end of file inside a message");
            memcpy(out + 4 + have, r->buf + r->start, n - have);
            r->start += n - have;
        } else if (!read_exact(r->fd, out + 4 + have, n - have)) {
            errno = EPIPE;
            fail("end of file inside a message");
        }
    }
    return (long)n;
}

static void size_buffers(int fd) {
    int size = KERNEL_BUFFER;
#ifdef SO_SNDBUFFORCE
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) == 0) return;
#endif
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

static void connected_pair(int fds[2]) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) fail("socketpair");
    size_buffers(fds[0]);
    size_buffers(fds[1]);
}

/* The echo side: every message goes back, header and payload in one write. */
static void echo(reader *r, unsigned char *buf, size_t max) {
    long n;
    while ((n = read_message(r, buf, max)) >= 0) {
        put_length(buf, (uint32_t)n);
        write_all(r->fd, buf, 4 + (size_t)n);
    }
}

/* The receiving side of the stream: a count message, that many messages, the byte count back. */
static void drain(reader *r, unsigned char *buf, size_t max) {
    long n;
    while ((n = read_message(r, buf, max)) >= 0) {
        buf[4 + n] = 0;
        long count = strtol((char *)buf + 4, NULL, 10);
        long long total = 0;
        for (long i = 0; i < count; i++) {
            long k = read_message(r, buf, max);
            if (k < 0) {
                errno = EPIPE;
                fail("end of file inside a stream");
            }
            total += k;
        }
        int len = snprintf((char *)buf + 4, 32, "%lld", total);
        put_length(buf, (uint32_t)len);
        write_all(r->fd, buf, 4 + (size_t)len);
    }
}

static pid_t fork_peer(int fds[2], int cpu, int role, unsigned char *buf, size_t max) {
    pid_t pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
        close(fds[0]);
        pin(cpu);
        static reader r;
        r.fd = fds[1];
        if (role == 0)
            echo(&r, buf, max);
        else
            drain(&r, buf, max);
        _exit(0);
    }
    close(fds[1]);
    return pid;
}

static void send_count(int fd, long count) {
    unsigned char msg[40];
    int len = snprintf((char *)msg + 4, 32, "%ld", count);
    put_length(msg, (uint32_t)len);
    write_all(fd, msg, 4 + (size_t)len);
}

/* One stream batch: count messages of size bytes; returns the nanoseconds it took. */
static int64_t batch(reader *r, const unsigned char *out, size_t size, long count,
                     unsigned char *in, size_t max) {
    int fd = r->fd;
    send_count(fd, count);
    int64_t start = now_ns();
    for (long i = 0; i < count; i++) write_all(fd, out, 4 + size);
    long n = read_message(r, in, max);
    int64_t elapsed = now_ns() - start;
    if (n < 0) {
        errno = EPIPE;
        fail("no acknowledgement");
    }
    in[4 + n] = 0;
    if (strtoll((char *)in + 4, NULL, 10) != (long long)count * (long long)size) {
        errno = EPROTO;
        fail("the receiver counted different bytes");
    }
    return elapsed;
}

static long clamp(long n, long lo, long hi) { return n < lo ? lo : (n > hi ? hi : n); }

int main(int argc, char **argv) {
    if (argc != 14) {
        fprintf(stderr, "usage: cpeer SIZE ECHO_CPU CLIENT_CPU ITERATIONS BUDGET_NS MIN_IT "
                        "MAX_IT WARMUP_NS MIN_WARMUP STREAM_ITERATIONS STREAM_BUDGET_NS "
                        "STREAM_WARMUP_NS STREAM_BATCHES\n");
        return 2;
    }
    size_t size = (size_t)strtoul(argv[1], NULL, 10);
    int echo_cpu = atoi(argv[2]), client_cpu = atoi(argv[3]);
    long iterations = atol(argv[4]);
    int64_t budget = atoll(argv[5]);
    long min_it = atol(argv[6]), max_it = atol(argv[7]);
    int64_t warmup_ns = atoll(argv[8]);
    long min_warmup = atol(argv[9]);
    long stream_iterations = atol(argv[10]);
    int64_t stream_budget = atoll(argv[11]), stream_warmup_ns = atoll(argv[12]);
    long batches = atol(argv[13]);
    size_t max = size < 64 ? 64 : size;

    signal(SIGPIPE, SIG_IGN);
    unsigned char *out = malloc(4 + max), *in = malloc(4 + max + 1), *peer = malloc(4 + max + 1);
    if (!out || !in || !peer) fail("malloc");
    put_length(out, (uint32_t)size);
    for (size_t i = 0; i < size; i++) out[4 + i] = (unsigned char)(i * 131 + 7);

    /* round trips */
    int fds[2];
    connected_pair(fds);
    pid_t pid = fork_peer(fds, echo_cpu, 0, peer, max);
    pin(client_cpu);
    static reader rd;
    rd.fd = fds[0];
    rd.start = rd.end = 0;
    int fd = fds[0];
    write_all(fd, out, 4 + size);
    if (read_message(&rd, in, max) != (long)size || memcmp(in + 4, out + 4, size) != 0) {
        errno = EPROTO;
        fail("the echo returned different bytes");
    }
    long warm = 0;
    int64_t start = now_ns(), deadline = start + warmup_ns;
    while (warm < min_warmup || now_ns() < deadline) {
        write_all(fd, out, 4 + size);
        read_message(&rd, in, max);
        warm++;
    }
    int64_t warm_ns = now_ns() - start;
    long n = iterations;
    if (n <= 0) n = clamp((long)(budget / (warm_ns / warm + 1)), min_it, max_it);
    int64_t *samples = malloc(sizeof(int64_t) * (size_t)n);
    if (!samples) fail("malloc");
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        write_all(fd, out, 4 + size);
        read_message(&rd, in, max);
        samples[i] = now_ns() - t0;
    }
    close(fd);
    waitpid(pid, NULL, 0);

    /* the one-way stream */
    connected_pair(fds);
    pid = fork_peer(fds, echo_cpu, 1, peer, max);
    fd = fds[0];
    rd.fd = fd;
    rd.start = rd.end = 0;
    long warm_messages = 0, per = 8;
    start = now_ns();
    do {
        batch(&rd, out, size, per, in, max);
        warm_messages += per;
        per *= 2;
    } while (now_ns() - start < stream_warmup_ns);
    int64_t stream_warm_ns = now_ns() - start;
    long count = stream_iterations;
    if (count <= 0) {
        double rate = (double)warm_messages / (double)(stream_warm_ns + 1);
        count = clamp((long)(rate * (double)stream_budget / (double)batches), 20, 200000);
    }
    int64_t *times = malloc(sizeof(int64_t) * (size_t)batches);
    if (!times) fail("malloc");
    for (long b = 0; b < batches; b++) times[b] = batch(&rd, out, size, count, in, max);
    close(fd);
    waitpid(pid, NULL, 0);

    printf("{\"event\": \"result\", \"iterations\": %ld, \"warmup_iterations\": %ld, "
           "\"warmup_ns\": %lld, \"samples\": [",
           n, warm, (long long)warm_ns);
    for (long i = 0; i < n; i++) printf(i ? ",%lld" : "%lld", (long long)samples[i]);
    printf("], \"stream\": {\"messages_per_batch\": %ld, \"warmup_messages\": %ld, "
           "\"warmup_ns\": %lld, \"batches_ns\": [",
           count, warm_messages, (long long)stream_warm_ns);
    for (long b = 0; b < batches; b++) printf(b ? ",%lld" : "%lld", (long long)times[b]);
    printf("]}}\n");
    fflush(stdout);
    return 0;
}
