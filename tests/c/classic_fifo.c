/* A FIFO peer for the fastipc tests.
 *   classic_fifo write PATH TEXT   open PATH for writing (blocking), write TEXT, close
 *   classic_fifo read PATH         open PATH for reading (blocking), copy everything to stdout
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "write") == 0 && argc == 4) {
        int fd = open(argv[2], O_WRONLY | O_CLOEXEC);
        if (fd < 0) { perror("open"); return 1; }
        size_t len = strlen(argv[3]), off = 0;
        while (off < len) {
            ssize_t n = write(fd, argv[3] + off, len - off);
            if (n < 0) { perror("write"); return 1; }
            off += (size_t)n;
        }
        close(fd);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "read") == 0) {
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0) { perror("open"); return 1; }
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
        if (n < 0) { perror("read"); return 1; }
        close(fd);
        return 0;
    }
    fprintf(stderr, "usage: classic_fifo write PATH TEXT | read PATH\n");
    return 2;
}
