/*
 * A fastipc client in plain C: POSIX sockets, no library. It follows docs/wire.md.
 *
 *   cc -std=c99 -Wall -Wextra -O2 -o client examples/c/client.c
 *   ./client 127.0.0.1:5000 hello world
 *
 * Connects to the fastipc listener at ADDRESS, sends each MESSAGE as one framed message and
 * prints each reply on a line of its own (the reply's bytes as they came). ADDRESS is one of
 *
 *   127.0.0.1:PORT, localhost:PORT, 127.x.y.z:PORT, [::1]:PORT
 *            a remapped loopback address: the Unix socket <socket_dir>/127.0.0.1:PORT
 *   unix:PATH    the Unix socket at PATH
 *   unix:@NAME   the Linux abstract socket NAME
 *
 * (tcp: addresses are plain TCP with the same framing; this example leaves them out.)
 * Exit status: 0 done, 1 a failure on the connection, 2 a bad argument or socket directory.
 */
#define _DEFAULT_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

/* fastipc's default limit on one received message (its max_message). */
#define MAX_MESSAGE ((uint64_t)64 << 20)

/* ------------------------------------------------------------------------------------------ */
/* The socket directory (docs/wire.md, "The socket directory")                                */

/* Chooses the socket directory into dir; *named: given explicitly (FASTIPC_SOCKET_DIR). */
static int choose_socket_dir(char *dir, size_t size, int *named)
{
    const char *env = getenv("FASTIPC_SOCKET_DIR");
    const char *run = getenv("XDG_RUNTIME_DIR");
    int n;
    *named = env && *env;
    if (*named)
        n = snprintf(dir, size, "%s", env);
    else if (run && *run)
        n = snprintf(dir, size, "%s/fastipc", run);
    else
        n = snprintf(dir, size, "/tmp/fastipc-%lu", (unsigned long)geteuid());
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* The checks a client makes before trusting a socket in dir. A missing directory is fine:
 * the connect then fails with ENOENT. */
static int check_socket_dir(const char *dir, int named)
{
    struct stat st;
    if (lstat(dir, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "client: %s: not a directory (or a symbolic link)\n", dir);
        return -1;
    }
    /* A sticky directory writable by everyone (/tmp) is allowed when named explicitly. */
    if (named && (st.st_mode & S_ISVTX) && (st.st_mode & S_IWOTH))
        return 0;
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
        fprintf(stderr, "client: %s: not owned by this user, or writable by others\n", dir);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Addresses (docs/wire.md, "Addresses")                                                      */

/* The canonical name of a loopback host into out ("127.0.0.1", "127.1.2.3", "[::1]"), or -1
 * if host is not a loopback host. */
static int loopback_name(const char *host, size_t len, char *out, size_t size)
{
    char text[INET6_ADDRSTRLEN + 2];
    struct in_addr v4;
    struct in6_addr v6;
    if (len + 1 > sizeof(text))
        return -1;
    memcpy(text, host, len);
    text[len] = '\0';
    if (strcasecmp(text, "localhost") == 0)
        return snprintf(out, size, "127.0.0.1") < (int)size ? 0 : -1;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        if ((ntohl(v4.s_addr) >> 24) != 127)
            return -1;
        return inet_ntop(AF_INET, &v4, out, (socklen_t)size) ? 0 : -1;
    }
    if (len > 2 && text[0] == '[' && text[len - 1] == ']') {
        text[len - 1] = '\0';
        if (inet_pton(AF_INET6, text + 1, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6))
            return snprintf(out, size, "[::1]") < (int)size ? 0 : -1;
    }
    return -1;
}

/* A port: 1 to 5 digits, at most 65535. */
static int parse_port(const char *text, unsigned *port)
{
    size_t n = strlen(text);
    if (n == 0 || n > 5 || strspn(text, "0123456789") != n)
        return -1;
    *port = (unsigned)strtoul(text, NULL, 10);
    return *port <= 65535 ? 0 : -1;
}

/* The Unix socket path of a remapped loopback address host:port into path. */
static int remapped_path(const char *address, char *path, size_t size)
{
    const char *colon = strrchr(address, ':');
    char dir[4096], host[INET6_ADDRSTRLEN + 2];
    unsigned port;
    int named;
    if (!colon || parse_port(colon + 1, &port) < 0 ||
        loopback_name(address, (size_t)(colon - address), host, sizeof(host)) < 0) {
        fprintf(stderr, "client: %s: not a loopback host:port, unix:PATH or unix:@NAME\n",
                address);
        return -1;
    }
    if (choose_socket_dir(dir, sizeof(dir), &named) < 0 || check_socket_dir(dir, named) < 0)
        return -1;
    /* The port in decimal without leading zeros, as in the logical address. */
    int n = snprintf(path, size, "%s/%s:%u", dir, host, port);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* Fills sa (and *salen) with the Unix socket address that address leads to. */
static int resolve(const char *address, struct sockaddr_un *sa, socklen_t *salen)
{
    char path[4096];
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strncmp(address, "unix:@", 6) == 0) {
        /* Abstract: a NUL byte, then the name; the length counts exactly the name's bytes. */
        size_t n = strlen(address + 6);
        if (n == 0 || n + 1 > sizeof(sa->sun_path)) {
            fprintf(stderr, "client: %s: empty or too long\n", address);
            return -1;
        }
        memcpy(sa->sun_path + 1, address + 6, n);
        *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
        return 0;
    }
    if (strncmp(address, "unix:", 5) == 0) {
        size_t n = strlen(address + 5);
        memcpy(path, address + 5, n < sizeof(path) ? n + 1 : sizeof(path));
        path[sizeof(path) - 1] = '\0'; /* a longer one fails the length check below */
    } else if (remapped_path(address, path, sizeof(path)) < 0) {
        return -1;
    }
    size_t n = strlen(path);
    if (n == 0 || n + 1 > sizeof(sa->sun_path)) {
        /* Longer than sun_path (108 bytes on Linux): never truncated. */
        fprintf(stderr, "client: %s: the socket path is empty or too long\n", path);
        return -1;
    }
    memcpy(sa->sun_path, path, n + 1);
    *salen = (socklen_t)sizeof(*sa);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Framing (docs/wire.md, "Framed messages")                                                  */

/* 1: all read, 0: end of file before the first byte, -1: error or end of file part way. */
static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return got == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

static int write_full(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        /* MSG_NOSIGNAL: a vanished peer is EPIPE, not a SIGPIPE death. */
        ssize_t w = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        done += (size_t)w;
    }
    return 0;
}

static void put_be(unsigned char *out, uint64_t value, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, value >>= 8)
        out[i] = (unsigned char)(value & 0xff);
}

/* One message: a 4-byte big-endian length, or -1 and an 8-byte length above 0x7fffffff. */
static int write_frame(int fd, const unsigned char *data, uint64_t n)
{
    unsigned char header[12];
    size_t hlen = 4;
    if (n <= 0x7fffffffu) {
        put_be(header, n, 4);
    } else {
        put_be(header, 0xffffffffu, 4);
        put_be(header + 4, n, 8);
        hlen = 12;
    }
    if (write_full(fd, header, hlen) < 0)
        return -1;
    return n ? write_full(fd, data, (size_t)n) : 0;
}

/* One message into a malloc'd *out of *len bytes. 1: a message, 0: end of file, -1: error. */
static int read_frame(int fd, unsigned char **out, uint64_t *len, uint64_t limit)
{
    unsigned char h[8];
    int r = read_full(fd, h, 4);
    if (r <= 0)
        return r;
    uint32_t raw = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    uint64_t n = raw;
    if (raw == 0xffffffffu) { /* -1: the long form */
        if (read_full(fd, h, 8) != 1)
            return -1;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | h[i];
    } else if (raw > 0x7fffffffu) { /* any other negative length: not this format */
        errno = EPROTO;
        return -1;
    }
    if (n > limit || n > SIZE_MAX - 1) { /* checked before allocating anything */
        errno = EMSGSIZE;
        return -1;
    }
    unsigned char *buf = malloc(n ? (size_t)n : 1);
    if (!buf)
        return -1;
    if (n && read_full(fd, buf, (size_t)n) != 1) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: client ADDRESS [MESSAGE...]\n");
        return 2;
    }
    struct sockaddr_un sa;
    socklen_t salen;
    if (resolve(argv[1], &sa, &salen) < 0)
        return 2;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, salen) < 0) {
        fprintf(stderr, "client: connect %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    /* (Authentication would come here, once fastipc has it: see docs/wire.md.) */
    for (int i = 2; i < argc; i++) {
        unsigned char *reply = NULL;
        uint64_t n = 0;
        if (write_frame(fd, (const unsigned char *)argv[i], strlen(argv[i])) < 0) {
            fprintf(stderr, "client: send: %s\n", strerror(errno));
            return 1;
        }
        int r = read_frame(fd, &reply, &n, MAX_MESSAGE);
        if (r <= 0) {
            fprintf(stderr, "client: recv: %s\n", r == 0 ? "the server hung up" : strerror(errno));
            return 1;
        }
        fwrite(reply, 1, (size_t)n, stdout);
        putchar('\n');
        free(reply);
    }
    close(fd);
    return fflush(stdout) == 0 ? 0 : 1;
}
