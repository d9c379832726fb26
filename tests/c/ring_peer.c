/* A C peer of fastipc's shared-memory Queue and Channel, written from docs/channel.md alone.
 *
 *   ring_peer channel NAME COUNT      open the named channel as its end 1; COUNT times receive a
 *                                     message on ring 0 and send it back reversed on ring 1
 *   ring_peer queue IN OUT COUNT      COUNT times take a message from queue IN and put it,
 *                                     reversed, into queue OUT
 *
 * Exit status 0 on success, 2 on a usage or layout error, 3 on a system error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RINGS_START 256
#define RING_HEADER 768
#define R_PROD_LOCK 0
#define R_CONS_LOCK 128
#define WAITERS 0x80000000u /* in the lock's low 32 bits (its futex word), beside the pid */
#define PID_MASK 0x7fffffffu
#define R_TAIL 256
#define R_PUT_COUNT 264
#define R_HEAD 384
#define R_GET_COUNT 392
#define R_DATA_SLEEPERS 512
#define R_SPACE_SLEEPERS 640
#define F_WRAP 1u

#define U64(p) ((_Atomic uint64_t *)(void *)(p))
#define U32(p) ((_Atomic uint32_t *)(void *)(p))

struct ring {
    uint8_t *r; /* the ring's header */
    uint64_t cap;
};

static void die(const char *what, int code) {
    perror(what);
    exit(code);
}

static uint8_t *map_segment(const char *name, uint64_t *cap, uint32_t *kind) {
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0) die("shm_open", 3);
    struct stat st;
    if (fstat(fd, &st) < 0) die("fstat", 3);
    uint8_t *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) die("mmap", 3);
    close(fd);
    uint64_t magic = atomic_load_explicit(U64(base), memory_order_acquire);
    uint32_t version;
    memcpy(&version, base + 8, 4);
    memcpy(kind, base + 12, 4);
    memcpy(cap, base + 16, 8);
    if (memcmp(&magic, "FIPCRING", 8) != 0 || version != 2) {
        fprintf(stderr, "not a fastipc ring of layout 2\n");
        exit(2);
    }
    return base;
}

static struct ring ring_at(uint8_t *base, uint64_t cap, int i) {
    struct ring r = {base + RINGS_START + (size_t)i * (RING_HEADER + cap), cap};
    return r;
}

/* Whether the owner named by a lock word is gone: no such pid, a zombie, or not a pid at all.
 * (This peer records no start time, so it does not tell a reused pid from its owner.) */
static int owner_gone(uint32_t word) {
    int pid = (int)(word & PID_MASK);
    if (pid > (1 << 22)) return 1;
    if (kill(pid, 0) != 0 && errno == ESRCH) return 1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *state = strrchr(buf, ')');
    return state && (state[2] == 'Z' || state[2] == 'X');
}

/* Takes a ring's lock, a u64: 0 -> our pid (and 0 in the high half: our start time is not
 * recorded); a dead owner's lock is taken over (a full peer would then repair the ring:
 * docs/channel.md, "Crash safety"). */
static void lock(uint8_t *line) {
    _Atomic uint64_t *word = U64(line);
    uint64_t me = (uint64_t)getpid(), slept = 0;
    for (;;) {
        uint64_t cur = atomic_load(word);
        if ((cur & PID_MASK) == 0) {
            if (atomic_compare_exchange_strong(word, &cur, me | (cur & WAITERS) | slept)) return;
            continue;
        }
        if (owner_gone((uint32_t)cur)) {
            if (atomic_compare_exchange_strong(word, &cur, me | (cur & WAITERS))) return;
            continue;
        }
        if (!(cur & WAITERS) && !atomic_compare_exchange_strong(word, &cur, cur | WAITERS))
            continue;
        struct timespec ts = {0, 50 * 1000 * 1000};
        /* the futex word: the low half (little-endian) */
        syscall(SYS_futex, line, FUTEX_WAIT, (uint32_t)(cur | WAITERS), &ts, NULL, 0);
        slept = WAITERS;
    }
}

static void unlock(uint8_t *line) {
    if (atomic_exchange(U64(line), 0) & WAITERS)
        syscall(SYS_futex, line, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Sleeps while the low half of the u64 at `word` is `seen`, announced in `sleepers`. */
static void sleep_on(uint8_t *word, uint64_t seen, uint8_t *sleepers) {
    atomic_fetch_add(U32(sleepers), 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(U64(word), memory_order_acquire) == seen) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        syscall(SYS_futex, word, FUTEX_WAIT, (uint32_t)seen, &ts, NULL, 0);
    }
    atomic_fetch_sub(U32(sleepers), 1);
}

static void wake_if_asleep(uint8_t *word, uint8_t *sleepers) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(U32(sleepers), memory_order_relaxed) != 0)
        syscall(SYS_futex, word, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

static size_t get(struct ring *q, uint8_t *out, size_t room) {
    uint8_t *r = q->r, *data = r + RING_HEADER;
    lock(r + R_CONS_LOCK);
    for (;;) {
        uint64_t head = atomic_load_explicit(U64(r + R_HEAD), memory_order_relaxed);
        uint64_t tail = atomic_load_explicit(U64(r + R_TAIL), memory_order_acquire);
        while (head < tail) {
            uint64_t pos = head % q->cap;
            uint32_t flags, len;
            uint64_t seq;
            memcpy(&flags, data + pos, 4);
            if (flags & F_WRAP) {
                head += q->cap - pos;
                continue;
            }
            memcpy(&len, data + pos + 4, 4);
            memcpy(&seq, data + pos + 8, 8);
            uint64_t size = 16 + (((uint64_t)len + 7) & ~7ull);
            if (len > room || pos + size > q->cap || head + size > tail) {
                fprintf(stderr, "bad message of %u bytes\n", len);
                exit(2);
            }
            memcpy(out, data + pos + 16, len);
            atomic_store_explicit(U64(r + R_HEAD), head + size, memory_order_release);
            atomic_store_explicit(U64(r + R_GET_COUNT), seq + 1, memory_order_release);
            wake_if_asleep(r + R_HEAD, r + R_SPACE_SLEEPERS);
            unlock(r + R_CONS_LOCK);
            return len;
        }
        sleep_on(r + R_TAIL, tail, r + R_DATA_SLEEPERS);
    }
}

static void put(struct ring *q, const uint8_t *msg, uint32_t len) {
    uint8_t *r = q->r, *data = r + RING_HEADER;
    uint64_t need = 16 + (((uint64_t)len + 7) & ~7ull);
    lock(r + R_PROD_LOCK);
    for (;;) {
        uint64_t tail = atomic_load_explicit(U64(r + R_TAIL), memory_order_relaxed);
        uint64_t head = atomic_load_explicit(U64(r + R_HEAD), memory_order_acquire);
        uint64_t pos = tail % q->cap, to_end = q->cap - pos;
        uint64_t skip = need > to_end ? to_end : 0;
        if (tail - head + skip + need > q->cap) {
            sleep_on(r + R_HEAD, head, r + R_SPACE_SLEEPERS);
            continue;
        }
        if (skip) {
            uint32_t wrap[2] = {F_WRAP, 0};
            memcpy(data + pos, wrap, 8);
        }
        uint64_t at = (tail + skip) % q->cap;
        uint64_t seq = atomic_load_explicit(U64(r + R_PUT_COUNT), memory_order_relaxed);
        uint32_t flags = 0;
        memcpy(data + at, &flags, 4);
        memcpy(data + at + 4, &len, 4);
        memcpy(data + at + 8, &seq, 8);
        memcpy(data + at + 16, msg, len);
        atomic_store_explicit(U64(r + R_TAIL), tail + skip + need, memory_order_release);
        atomic_store_explicit(U64(r + R_PUT_COUNT), seq + 1, memory_order_release);
        wake_if_asleep(r + R_TAIL, r + R_DATA_SLEEPERS);
        unlock(r + R_PROD_LOCK);
        return;
    }
}

static void reverse(uint8_t *b, size_t n) {
    for (size_t i = 0; i < n / 2; i++) {
        uint8_t t = b[i];
        b[i] = b[n - 1 - i];
        b[n - 1 - i] = t;
    }
}

int main(int argc, char **argv) {
    static uint8_t buf[1 << 20];
    uint64_t cap;
    uint32_t kind;
    if (argc == 4 && strcmp(argv[1], "channel") == 0) {
        uint8_t *base = map_segment(argv[2], &cap, &kind);
        if (kind != 3) return 2;
        uint32_t none = 0;
        /* end 1: its pid, then "not closed" */
        if (!atomic_compare_exchange_strong(U32(base + 148), &none, (uint32_t)getpid())) return 2;
        atomic_store(U32(base + 156), 0);
        struct ring in = ring_at(base, cap, 0), out = ring_at(base, cap, 1);
        for (long n = atol(argv[3]); n > 0; n--) {
            size_t len = get(&in, buf, sizeof buf);
            reverse(buf, len);
            put(&out, buf, (uint32_t)len);
        }
        atomic_store(U32(base + 156), 1); /* closed */
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "queue") == 0) {
        uint64_t cap2;
        uint32_t kind2;
        uint8_t *a = map_segment(argv[2], &cap, &kind);
        uint8_t *b = map_segment(argv[3], &cap2, &kind2);
        if (kind == 3 || kind2 == 3) return 2;
        struct ring in = ring_at(a, cap, 0), out = ring_at(b, cap2, 0);
        for (long n = atol(argv[4]); n > 0; n--) {
            size_t len = get(&in, buf, sizeof buf);
            reverse(buf, len);
            put(&out, buf, (uint32_t)len);
        }
        return 0;
    }
    fprintf(stderr, "usage: ring_peer channel NAME COUNT | queue IN OUT COUNT\n");
    return 2;
}
