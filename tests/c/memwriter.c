/* memwriter SHM SEM SIZE TEXT
 *
 * The writer half of the memwriter/memreader pattern, in plain POSIX C: create the segment SHM
 * (O_EXCL, 0600, SIZE bytes) and the semaphore SEM (O_EXCL, 0600, value 0), copy TEXT to the
 * start of the segment, and post the semaphore. Names are left for the reader to unlink.
 * Exit status: 0 on success, 1 on any failure (with the reason on stderr).
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
#include <unistd.h>

static int fail(const char *what, const char *name) {
    fprintf(stderr, "memwriter: %s %s: %s\n", what, name, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: memwriter SHM SEM SIZE TEXT\n");
        return 2;
    }
    const char *shm_name = argv[1], *sem_name = argv[2], *text = argv[4];
    size_t size = (size_t)strtoul(argv[3], NULL, 10);
    size_t len = strlen(text);
    if (size == 0 || len > size) {
        fprintf(stderr, "memwriter: bad size\n");
        return 2;
    }
    int fd = shm_open(shm_name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0)
        return fail("shm_open", shm_name);
    if (ftruncate(fd, (off_t)size) != 0)
        return fail("ftruncate", shm_name);
    unsigned char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED)
        return fail("mmap", shm_name);
    close(fd);
    sem_t *sem = sem_open(sem_name, O_CREAT | O_EXCL, 0600, 0);
    if (sem == SEM_FAILED)
        return fail("sem_open", sem_name);
    memcpy(mem, text, len);
    /* a recognisable pattern after the text, so that the reader can check the whole segment */
    for (size_t i = len; i < size; i++)
        mem[i] = (unsigned char)(i % 251);
    if (sem_post(sem) != 0)
        return fail("sem_post", sem_name);
    munmap(mem, size);
    sem_close(sem);
    return 0;
}
