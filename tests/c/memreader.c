/* memreader SHM SEM LEN TIMEOUT_MS
 *
 * The reader half of the memwriter/memreader pattern, in plain POSIX C: open the existing
 * segment SHM and semaphore SEM, wait for the semaphore (sem_timedwait, at most TIMEOUT_MS),
 * then print the segment's size on the first line and its first LEN bytes after it, and check
 * that every byte after them follows the pattern i % 251. Names are left for the caller.
 * Exit status: 0 on success, 3 on timeout, 4 on a pattern mismatch, 1 on any other failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what, const char *name) {
    fprintf(stderr, "memreader: %s %s: %s\n", what, name, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: memreader SHM SEM LEN TIMEOUT_MS\n");
        return 2;
    }
    const char *shm_name = argv[1], *sem_name = argv[2];
    size_t len = (size_t)strtoul(argv[3], NULL, 10);
    long timeout_ms = strtol(argv[4], NULL, 10);
    sem_t *sem = sem_open(sem_name, 0);
    if (sem == SEM_FAILED)
        return fail("sem_open", sem_name);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec += 1;
        until.tv_nsec -= 1000000000L;
    }
    while (sem_timedwait(sem, &until) != 0) {
        if (errno == ETIMEDOUT) {
            fprintf(stderr, "memreader: timed out waiting for %s\n", sem_name);
            return 3;
        }
        if (errno != EINTR)
            return fail("sem_timedwait", sem_name);
    }
    int fd = shm_open(shm_name, O_RDWR, 0);
    if (fd < 0)
        return fail("shm_open", shm_name);
    struct stat st;
    if (fstat(fd, &st) != 0)
        return fail("fstat", shm_name);
    size_t size = (size_t)st.st_size;
    if (len > size) {
        fprintf(stderr, "memreader: segment of %zu bytes is shorter than %zu\n", size, len);
        return 1;
    }
    unsigned char *mem = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED)
        return fail("mmap", shm_name);
    close(fd);
    printf("%zu\n", size);
    fwrite(mem, 1, len, stdout);
    for (size_t i = len; i < size; i++) {
        if (mem[i] != (unsigned char)(i % 251)) {
            fprintf(stderr, "memreader: byte %zu is %u, not %zu\n", i, mem[i], i % 251);
            return 4;
        }
    }
    munmap(mem, size);
    sem_close(sem);
    return 0;
}
