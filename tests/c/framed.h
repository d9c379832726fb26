/* Framed messages as fastipc and multiprocessing.connection write them: a 4-byte big-endian
 * signed length (or -1 then an 8-byte big-endian length), then the payload. */
#ifndef FASTIPC_TEST_FRAMED_H
#define FASTIPC_TEST_FRAMED_H

#define _DEFAULT_SOURCE

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

/* 1: all read, 0: clean EOF before the first byte, -1: error or EOF part way */
static inline int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
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

static inline int write_full(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        done += (size_t)w;
    }
    return 0;
}

/* Reads one frame into a malloc'd buffer (*out, *len). Returns 1, 0 at EOF, -1 on error. */
static inline int read_frame(int fd, unsigned char **out, uint64_t *len, uint64_t limit)
{
    unsigned char h[8];
    int r = read_full(fd, h, 4);
    if (r <= 0)
        return r;
    int32_t n32 = (int32_t)(((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) |
                            ((uint32_t)h[2] << 8) | (uint32_t)h[3]);
    uint64_t n;
    if (n32 == -1) {
        if (read_full(fd, h, 8) != 1)
            return -1;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | h[i];
    } else if (n32 < 0) {
        return -1;
    } else {
        n = (uint64_t)n32;
    }
    if (n > limit)
        return -1;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    if (n && read_full(fd, buf, n) != 1) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 1;
}

static inline int write_frame(int fd, const unsigned char *data, uint32_t n)
{
    unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    if (write_full(fd, h, 4) < 0)
        return -1;
    return n ? write_full(fd, data, n) : 0;
}

/* The same bytes as pattern(n, seed) in the Python tests. */
static inline void fill_pattern(unsigned char *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)((i * 131 + seed * 7 + (n & 0xFF)) & 0xFF);
}

static inline void reverse(unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        unsigned char t = buf[i];
        buf[i] = buf[n - 1 - i];
        buf[n - 1 - i] = t;
    }
}

static inline int unix_address(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -1;
    strcpy(sa->sun_path, path);
    return 0;
}

#endif
