/*
 * The shared-memory references of `fastipc bench`: the machine's limit for a message handed from
 * one process to another through shared memory, without Python and without a ring.
 *
 * Each direction is one slot in an anonymous shared mapping (MAP_SHARED, inherited by fork): a
 * sequence word the sender advances after copying a message in, an acknowledgement word the
 * receiver sets after copying it out, each on its own 128-byte line. The sender waits for the
 * acknowledgement of the previous message before writing the next one, so the one-way stream is
 * one message in flight at a time. How a side waits for the other's word to change is the mode:
 *
 *   spin   spins on the word (with the CPU's pause instruction): one cache-line transfer each
 *          way, no system call. Needs two CPUs: on one, the spinner only burns the peer's slice,
 *          so `spin` on one CPU reports itself unsupported. A wait that sees no change for
 *          SPIN_NS (plus SPIN_NS_PER_BYTE per byte of the message: the copies it waits for) stops
 *          spinning and naps in FUTEX_WAIT, NAP_NS at a time, until the word has changed: a
 *          side whose CPU also runs other work never spins through that work's time slices.
 *          Nobody wakes it (the sender's store stays a plain store), so a handoff that comes
 *          within SPIN_NS costs what a pure spin costs.
 *   futex  announces itself as a sleeper, checks the word again and sleeps in FUTEX_WAIT; the
 *          other side calls FUTEX_WAKE only when a sleeper announced itself.
 *
 *   cshm MODE SIZE ECHO_CPU CLIENT_CPU ITERATIONS BUDGET_NS MIN_IT MAX_IT WARMUP_NS MIN_WARMUP
 *        STREAM_ITERATIONS STREAM_BUDGET_NS STREAM_WARMUP_NS STREAM_BATCHES
 *
 * The arguments after MODE, the timing, the stream protocol (a count message, that many
 * messages, the byte count back) and the output (one JSON line) are those of cpeer.c.
 *
 * The forked side dies with the client (PR_SET_PDEATHSIG), and the client reports an error event
 * and exits at once if the forked side ends before it was told to: neither waits for a dead peer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define END UINT32_MAX /* the length that tells the echo side to stop */

#define SPIN_NS 1000000    /* a spinning wait that sees no change for 1 ms sleeps... */
#define SPIN_NS_PER_BYTE 2 /* ...plus 2 ns per byte of the message (copies at 0.5 GB/s) */
#define NAP_NS 100000      /* then naps 0.1 ms at a time (plus the timer's slack) */

static int spin_mode;
static int64_t spin_limit_ns;
static volatile sig_atomic_t forked_side_may_exit; /* the client told it to stop */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fail(const char *what) {
    printf("{\"event\": \"error\", \"type\": \"OSError\", \"message\": \"cshm: %s: %s\"}\n",
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

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* A word the other side waits on, and its sleeper flag, alone on their line. */
typedef struct {
    alignas(128) _Atomic uint32_t value;
    _Atomic uint32_t sleeper;
} word;

typedef struct {
    word seq; /* advanced by the sender after a message is in */
    word ack; /* set to seq by the receiver after the message is out */
    alignas(128) uint32_t len;
    alignas(64) unsigned char data[];
} slot;

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *timeout) {
    return syscall(SYS_futex, (uint32_t *)addr, op, val, timeout, NULL, 0);
}

/* Sleeps while *addr is old, until woken, a signal or the timeout (NULL: none). */
static void sleep_on(_Atomic uint32_t *addr, uint32_t old, const struct timespec *timeout) {
    if (futex(addr, FUTEX_WAIT, old, timeout) != 0 && errno != EAGAIN && errno != EINTR &&
        errno != ETIMEDOUT)
        fail("futex wait");
}

#ifdef CSHM_TEST_PAUSE_NS
/* Tests: a pause between two reads of a word, where an interrupt or a preemption can fall in a
 * real run, so that the other side's change lands in between. */
static void test_pause(void) {
    int64_t until = now_ns() + CSHM_TEST_PAUSE_NS;
    while (now_ns() < until) cpu_relax();
}
#else
static void test_pause(void) {}
#endif

/* Spins until w->value differs from old (into *v): 1; 0 once spin_limit_ns passed without a
 * change. The clock is read every 1024 turns only, so a handoff that comes sooner never reads it. */
static int spin(word *w, uint32_t old, uint32_t *v) {
    int64_t deadline = 0;
    for (uint32_t turn = 1;; turn++) {
        if ((*v = atomic_load_explicit(&w->value, memory_order_acquire)) != old) return 1;
        cpu_relax();
        if (turn % 1024 == 0) {
            int64_t now = now_ns();
            if (deadline == 0)
                deadline = now + spin_limit_ns;
            else if (now >= deadline)
                return 0;
        }
    }
}

/* Waits until w->value differs from old; returns the new value. */
static uint32_t wait_change(word *w, uint32_t old) {
    uint32_t v;
    if (spin_mode) {
        if (spin(w, old, &v)) return v;
        static const struct timespec nap = {0, NAP_NS};
        while ((v = atomic_load_explicit(&w->value, memory_order_acquire)) == old)
            sleep_on(&w->value, old, &nap);
        return v;
    }
    while ((v = atomic_load_explicit(&w->value, memory_order_acquire)) == old) {
        test_pause();
        atomic_store(&w->sleeper, 1);
        if ((v = atomic_load(&w->value)) != old) break; /* the new value, not old */
        sleep_on(&w->value, old, NULL);
    }
    return v;
}

static void publish(word *w, uint32_t v) {
    if (spin_mode) {
        atomic_store_explicit(&w->value, v, memory_order_release);
        return;
    }
    atomic_store(&w->value, v);
    if (atomic_exchange(&w->sleeper, 0) && futex(&w->value, FUTEX_WAKE, 1, NULL) < 0)
        fail("futex wake");
}

/* One end of a slot: the last sequence number it sent or received. */
typedef struct {
    slot *s;
    uint32_t seq;
} end;

static void send_msg(end *e, const unsigned char *buf, uint32_t n) {
    /* Wait for a change of the acknowledgement read, not of one read again: one that landed
     * between two reads would be the awaited one, and waiting for it to change never ends. */
    uint32_t acked;
    while ((acked = atomic_load_explicit(&e->s->ack.value, memory_order_acquire)) != e->seq) {
        test_pause();
        wait_change(&e->s->ack, acked);
    }
    e->s->len = n;
    if (n != END) memcpy(e->s->data, buf, n);
    publish(&e->s->seq, ++e->seq);
}

/* Receives a message into out; its length, or END. */
static uint32_t recv_msg(end *e, unsigned char *out) {
    e->seq = wait_change(&e->s->seq, e->seq);
    uint32_t n = e->s->len;
    if (n != END) memcpy(out, e->s->data, n);
    publish(&e->s->ack, e->seq);
    return n;
}

static slot *new_slot(size_t max) {
    void *p = mmap(NULL, sizeof(slot) + max, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) fail("mmap");
    return p; /* zero-filled: seq == ack == 0 */
}

static void echo(end *in, end *out, unsigned char *buf) {
    uint32_t n;
    while ((n = recv_msg(in, buf)) != END) send_msg(out, buf, n);
}

static void drain(end *in, end *out, unsigned char *buf) {
    uint32_t n;
    while ((n = recv_msg(in, buf)) != END) {
        buf[n] = 0;
        long count = strtol((char *)buf, NULL, 10);
        long long total = 0;
        for (long i = 0; i < count; i++) {
            uint32_t k = recv_msg(in, buf);
            if (k == END) {
                errno = EPIPE;
                fail("end inside a stream");
            }
            total += k;
        }
        int len = snprintf((char *)buf, 32, "%lld", total);
        send_msg(out, buf, (uint32_t)len);
    }
}

/* The client's SIGCHLD: the forked side ended before END (it failed, or was killed). */
static void forked_side_exited(int sig) {
    (void)sig;
    if (forked_side_may_exit) return;
    static const char msg[] = "{\"event\": \"error\", \"type\": \"OSError\", \"message\": "
                              "\"cshm: the forked side exited before the end\"}\n";
    (void)!write(STDOUT_FILENO, msg, sizeof msg - 1);
    _exit(1);
}

/* Forks the echo (role 0) or receiving (role 1) side over two new slots, on cpu; this process
 * then runs on home. */
static pid_t fork_peer(end *there, end *back, int cpu, int home, int role, unsigned char *buf,
                       size_t max) {
    there->s = new_slot(max + 1);
    back->s = new_slot(max + 1);
    there->seq = back->seq = 0;
    /* The child starts on its own CPU: on home it would first wait for the client's turn. */
    pin(cpu);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl");
        if (getppid() != parent) _exit(1); /* the client died before prctl */
        end in = *there, out = *back;
        if (role == 0)
            echo(&in, &out, buf);
        else
            drain(&in, &out, buf);
        _exit(0);
    }
    pin(home);
    return pid;
}

static void finish(end *there, end *back, pid_t pid, size_t max) {
    forked_side_may_exit = 1;
    send_msg(there, NULL, END);
    waitpid(pid, NULL, 0);
    forked_side_may_exit = 0;
    munmap(there->s, sizeof(slot) + max + 1);
    munmap(back->s, sizeof(slot) + max + 1);
}

/* One stream batch: count messages of size bytes; returns the nanoseconds it took. */
static int64_t batch(end *there, end *back, const unsigned char *out, size_t size, long count,
                     unsigned char *in) {
    char msg[32];
    int len = snprintf(msg, sizeof msg, "%ld", count);
    send_msg(there, (unsigned char *)msg, (uint32_t)len);
    int64_t start = now_ns();
    for (long i = 0; i < count; i++) send_msg(there, out, (uint32_t)size);
    uint32_t n = recv_msg(back, in);
    int64_t elapsed = now_ns() - start;
    in[n] = 0;
    if (strtoll((char *)in, NULL, 10) != (long long)count * (long long)size) {
        errno = EPROTO;
        fail("the receiver counted different bytes");
    }
    return elapsed;
}

static long clamp(long n, long lo, long hi) { return n < lo ? lo : (n > hi ? hi : n); }

int main(int argc, char **argv) {
    if (argc != 15 || (strcmp(argv[1], "spin") != 0 && strcmp(argv[1], "futex") != 0)) {
        fprintf(stderr, "usage: cshm spin|futex SIZE ECHO_CPU CLIENT_CPU ITERATIONS BUDGET_NS "
                        "MIN_IT MAX_IT WARMUP_NS MIN_WARMUP STREAM_ITERATIONS STREAM_BUDGET_NS "
                        "STREAM_WARMUP_NS STREAM_BATCHES\n");
        return 2;
    }
    spin_mode = strcmp(argv[1], "spin") == 0;
    size_t size = (size_t)strtoul(argv[2], NULL, 10);
    spin_limit_ns = SPIN_NS + SPIN_NS_PER_BYTE * (int64_t)size;
    int echo_cpu = atoi(argv[3]), client_cpu = atoi(argv[4]);
    long iterations = atol(argv[5]);
    int64_t budget = atoll(argv[6]);
    long min_it = atol(argv[7]), max_it = atol(argv[8]);
    int64_t warmup_ns = atoll(argv[9]);
    long min_warmup = atol(argv[10]);
    long stream_iterations = atol(argv[11]);
    int64_t stream_budget = atoll(argv[12]), stream_warmup_ns = atoll(argv[13]);
    long batches = atol(argv[14]);
    size_t max = size < 64 ? 64 : size;
    if (size >= END) {
        errno = EMSGSIZE;
        fail("size");
    }
    if (spin_mode && echo_cpu >= 0 && echo_cpu == client_cpu) {
        printf("{\"event\": \"error\", \"type\": \"NotSupportedError\", \"unsupported\": true, "
               "\"message\": \"a spinning handoff needs two CPUs (on one, the spinner only "
               "burns the time slice of the side it waits for)\"}\n");
        return 1;
    }

    unsigned char *out = malloc(max), *in = malloc(max + 1), *peer = malloc(max + 1);
    if (!out || !in || !peer) fail("malloc");
    for (size_t i = 0; i < size; i++) out[i] = (unsigned char)(i * 131 + 7);

    struct sigaction exited = {.sa_handler = forked_side_exited, .sa_flags = SA_NOCLDSTOP};
    sigemptyset(&exited.sa_mask);
    if (sigaction(SIGCHLD, &exited, NULL) != 0) fail("sigaction");

    /* round trips */
    end there, back;
    pid_t pid = fork_peer(&there, &back, echo_cpu, client_cpu, 0, peer, max);
    send_msg(&there, out, (uint32_t)size);
    if (recv_msg(&back, in) != size || memcmp(in, out, size) != 0) {
        errno = EPROTO;
        fail("the echo returned different bytes");
    }
    long warm = 0;
    int64_t start = now_ns(), deadline = start + warmup_ns;
    while (warm < min_warmup || now_ns() < deadline) {
        send_msg(&there, out, (uint32_t)size);
        recv_msg(&back, in);
        warm++;
    }
    int64_t warm_ns = now_ns() - start;
    long n = iterations;
    if (n <= 0) n = clamp((long)(budget / (warm_ns / warm + 1)), min_it, max_it);
    int64_t *samples = malloc(sizeof(int64_t) * (size_t)n);
    if (!samples) fail("malloc");
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        send_msg(&there, out, (uint32_t)size);
        recv_msg(&back, in);
        samples[i] = now_ns() - t0;
    }
    finish(&there, &back, pid, max);

    /* the one-way stream */
    pid = fork_peer(&there, &back, echo_cpu, client_cpu, 1, peer, max);
    long warm_messages = 0, per = 8;
    start = now_ns();
    do {
        batch(&there, &back, out, size, per, in);
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
    for (long b = 0; b < batches; b++) times[b] = batch(&there, &back, out, size, count, in);
    finish(&there, &back, pid, max);

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
