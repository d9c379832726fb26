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
 *
 * With FASTIPC_AUTHKEY set (the examples' own variable; the library reads none), it first
 * passes the authkey handshake of multiprocessing.connection with those bytes as the key, as
 * fastipc.connect(address, authkey=...) does: it answers the listener's challenge (HMAC-SHA256
 * with the {sha256} prefix, or the bare HMAC-MD5 of Python 3.11's legacy form), then challenges
 * the listener in turn.
 *
 * Exit status: 0 done, 1 a failure on the connection, 2 a bad argument or socket directory,
 * 3 authentication failed (another key, or a listener without one).
 */
#define _DEFAULT_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
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
/* Authentication (docs/wire.md, "The authkey handshake"): the challenge/response of Python's  */
/* multiprocessing.connection, with a SHA-256 and an MD5 of our own for the HMACs.            */

#define HANDSHAKE_MAX 256 /* the longest handshake message either side accepts */
#define NONCE_LENGTH 40   /* random bytes in our challenge, as Python 3.12+ */
#define CHALLENGE "#CHALLENGE#"
#define WELCOME "#WELCOME#"
#define FAILURE "#FAILURE#"

/* SHA-256 (FIPS 180-4) and MD5 (RFC 1321) share their shape: 64-byte blocks, a length in bits
 * at the end; SHA-256 is big-endian, MD5 little-endian. */
typedef struct {
    uint32_t h[8];
    uint64_t length;
    unsigned char block[64];
    size_t used;
    int md5;
} hash_ctx;

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t MD5_K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static const unsigned char MD5_SHIFT[16] = {7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void sha256_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, h, sizeof(v));
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = ROTR(v[4], 6) ^ ROTR(v[4], 11) ^ ROTR(v[4], 25);
        uint32_t t1 = v[7] + s1 + ((v[4] & v[5]) ^ (~v[4] & v[6])) + SHA256_K[i] + w[i];
        uint32_t s0 = ROTR(v[0], 2) ^ ROTR(v[0], 13) ^ ROTR(v[0], 22);
        uint32_t t2 = s0 + ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof(uint32_t));
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h[i] += v[i];
}

static void md5_block(uint32_t h[4], const unsigned char *p)
{
    uint32_t m[16], a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        f += a + MD5_K[i] + m[g];
        a = d;
        d = c;
        c = b;
        b += ROTL(f, MD5_SHIFT[(i / 16) * 4 + i % 4]);
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

static void hash_init(hash_ctx *ctx, int md5)
{
    static const uint32_t sha256_h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    static const uint32_t md5_h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    memset(ctx, 0, sizeof(*ctx));
    ctx->md5 = md5;
    memcpy(ctx->h, md5 ? md5_h : sha256_h, md5 ? sizeof(md5_h) : sizeof(sha256_h));
}

static void hash_update(hash_ctx *ctx, const unsigned char *data, size_t n)
{
    ctx->length += n;
    while (n > 0) {
        size_t take = 64 - ctx->used < n ? 64 - ctx->used : n;
        memcpy(ctx->block + ctx->used, data, take);
        ctx->used += take;
        data += take;
        n -= take;
        if (ctx->used == 64) {
            if (ctx->md5)
                md5_block(ctx->h, ctx->block);
            else
                sha256_block(ctx->h, ctx->block);
            ctx->used = 0;
        }
    }
}

/* The digest into out (32 bytes for SHA-256, 16 for MD5); its length. */
static size_t hash_final(hash_ctx *ctx, unsigned char *out)
{
    uint64_t bits = ctx->length * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = (ctx->used < 56 ? 56 : 120) - ctx->used;
    for (int i = 0; i < 8; i++) /* the length in bits: little-endian for MD5 */
        pad[padlen + i] = (unsigned char)(bits >> (ctx->md5 ? 8 * i : 56 - 8 * i));
    hash_update(ctx, pad, padlen + 8);
    size_t words = ctx->md5 ? 4 : 8;
    for (size_t i = 0; i < words; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (unsigned char)(ctx->h[i] >> (ctx->md5 ? 8 * j : 24 - 8 * j));
    return 4 * words;
}

/* HMAC (RFC 2104) of message keyed by key into out; its length. */
static size_t hmac(int md5, const unsigned char *key, size_t keylen, const unsigned char *message,
                   size_t n, unsigned char *out)
{
    unsigned char k[64] = {0}, pad[64], inner[32];
    hash_ctx ctx;
    if (keylen > 64) { /* a long key is hashed first */
        hash_init(&ctx, md5);
        hash_update(&ctx, key, keylen);
        hash_final(&ctx, k);
    } else {
        memcpy(k, key, keylen);
    }
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    hash_init(&ctx, md5);
    hash_update(&ctx, pad, 64);
    hash_update(&ctx, message, n);
    size_t len = hash_final(&ctx, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    hash_init(&ctx, md5);
    hash_update(&ctx, pad, 64);
    hash_update(&ctx, inner, len);
    return hash_final(&ctx, out);
}

/* The digest a challenge or answer names: 1 MD5, 0 SHA-256, -1 anything else; *prefix: the
 * bytes of its "{name}" prefix (0 for the legacy form: 20 or 16 bytes, no prefix, MD5). */
static int digest_of(const unsigned char *m, size_t n, size_t *prefix)
{
    *prefix = 0;
    if (n == 20 || n == 16)
        return 1;
    if (n >= 5 && memcmp(m, "{md5}", 5) == 0) {
        *prefix = 5;
        return 1;
    }
    if (n >= 8 && memcmp(m, "{sha256}", 8) == 0) {
        *prefix = 8;
        return 0;
    }
    return -1; /* {sha384}, {sha3_256}, {sha3_384}: Python knows them, this example does not */
}

static int random_bytes(unsigned char *buf, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    while (fd >= 0 && got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (fd >= 0)
        close(fd);
    return got == n ? 0 : -1;
}

/* Receives one handshake message into buf (HANDSHAKE_MAX bytes); its length, or -1. */
static long recv_handshake(int fd, unsigned char *buf)
{
    unsigned char *m = NULL;
    uint64_t n = 0;
    errno = 0;
    int r = read_frame(fd, &m, &n, HANDSHAKE_MAX);
    if (r <= 0) {
        fprintf(stderr, "client: authentication failed: %s\n",
                r == 0 || errno == 0 ? "the server hung up"
                : errno == EMSGSIZE  ? "a handshake message over 256 bytes"
                : errno == EAGAIN    ? "the server did not answer in time"
                                     : strerror(errno));
        return -1;
    }
    memcpy(buf, m, (size_t)n);
    free(m);
    return (long)n;
}

static int send_handshake(int fd, const void *m, size_t n)
{
    if (write_frame(fd, m, n) == 0)
        return 0;
    fprintf(stderr, "client: authentication failed: send: %s\n", strerror(errno));
    return -1;
}

/* Answers the server's challenge, as multiprocessing.connection.answer_challenge does. */
static int answer_challenge(int fd, const unsigned char *key, size_t keylen)
{
    unsigned char m[HANDSHAKE_MAX], answer[8 + 32];
    size_t prefix, len = 0, clen = sizeof(CHALLENGE) - 1;
    long n = recv_handshake(fd, m);
    if (n < 0)
        return -1;
    if ((size_t)n < clen || memcmp(m, CHALLENGE, clen) != 0) {
        fprintf(stderr, "client: authentication failed: the server sent no challenge "
                        "(does it have an authkey?)\n");
        return -1;
    }
    const unsigned char *challenge = m + clen;
    size_t size = (size_t)n - clen;
    int md5 = digest_of(challenge, size, &prefix);
    if (size < 20 || md5 < 0) {
        fprintf(stderr, "client: authentication failed: a challenge of an unknown form\n");
        return -1;
    }
    /* The MAC covers the whole challenge, its prefix included; the answer repeats the prefix. */
    memcpy(answer, challenge, prefix);
    len = prefix + hmac(md5, key, keylen, challenge, size, answer + prefix);
    if (send_handshake(fd, answer, len) < 0 || (n = recv_handshake(fd, m)) < 0)
        return -1;
    if ((size_t)n != sizeof(WELCOME) - 1 || memcmp(m, WELCOME, (size_t)n) != 0) {
        fprintf(stderr, "client: authentication failed: the server rejected our answer "
                        "(is the authkey the same?)\n");
        return -1;
    }
    return 0;
}

/* Challenges the server to prove it holds the key, as deliver_challenge does. */
static int deliver_challenge(int fd, const unsigned char *key, size_t keylen)
{
    unsigned char message[11 + 8 + NONCE_LENGTH], answer[HANDSHAKE_MAX], expected[32];
    size_t clen = sizeof(CHALLENGE) - 1, prefix;
    memcpy(message, CHALLENGE "{sha256}", clen + 8);
    if (random_bytes(message + clen + 8, NONCE_LENGTH) < 0) {
        fprintf(stderr, "client: /dev/urandom: %s\n", strerror(errno));
        return -1;
    }
    long n = 0;
    if (send_handshake(fd, message, sizeof(message)) < 0 || (n = recv_handshake(fd, answer)) < 0)
        return -1;
    /* Any answer Python accepts that this example can compute: {sha256}, {md5}, or the bare
     * HMAC-MD5 of Python 3.11 and older. */
    int md5 = digest_of(answer, (size_t)n, &prefix);
    size_t want = md5 < 0 ? 0 : hmac(md5, key, keylen, message + clen, sizeof(message) - clen,
                                     expected);
    int same_length = md5 >= 0 && (size_t)n - prefix == want;
    unsigned char diff = 0;
    for (size_t i = 0; same_length && i < want; i++) /* no early exit: constant time */
        diff |= (unsigned char)(expected[i] ^ answer[prefix + i]);
    if (!same_length || diff != 0) {
        send_handshake(fd, FAILURE, sizeof(FAILURE) - 1);
        fprintf(stderr, "client: authentication failed: the server's answer was wrong "
                        "(is the authkey the same?)\n");
        return -1;
    }
    return send_handshake(fd, WELCOME, sizeof(WELCOME) - 1);
}

/* The handshake of the connecting side: answer, then challenge; a receive that waits more
 * than 10 s fails it. 0: authenticated. */
static int authenticate(int fd, const char *key)
{
    struct timeval wait = {10, 0}, forever = {0, 0};
    size_t keylen = strlen(key);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait)) < 0)
        return -1;
    if (answer_challenge(fd, (const unsigned char *)key, keylen) < 0 ||
        deliver_challenge(fd, (const unsigned char *)key, keylen) < 0)
        return -1;
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof(forever));
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
    const char *key = getenv("FASTIPC_AUTHKEY");
    if (key && *key && authenticate(fd, key) < 0)
        return 3;
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
