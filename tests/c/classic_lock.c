/* A record-lock peer for the fastipc tests (classic fcntl locks, as C programs use them).
 *   classic_lock hold PATH START LEN r|w   take the lock with F_SETLKW, print "locked PID",
 *                                          hold it until stdin reaches end of file
 *   classic_lock try PATH START LEN r|w    F_SETLK once: print "ok", or "busy PID START LEN r|w"
 *                                          from F_GETLK
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: classic_lock hold|try PATH START LEN r|w\n");
        return 2;
    }
    int fd = open(argv[2], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) { perror("open"); return 1; }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = argv[5][0] == 'r' ? F_RDLCK : F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = atol(argv[3]);
    fl.l_len = atol(argv[4]);
    if (strcmp(argv[1], "hold") == 0) {
        if (fcntl(fd, F_SETLKW, &fl) < 0) { perror("fcntl"); return 1; }
        printf("locked %d\n", (int)getpid());
        fflush(stdout);
        char buf[64];
        while (read(0, buf, sizeof buf) > 0) {
        }
        return 0;
    }
    if (fcntl(fd, F_SETLK, &fl) == 0) {
        printf("ok\n");
        return 0;
    }
    if (errno != EAGAIN && errno != EACCES) { perror("fcntl"); return 1; }
    if (fcntl(fd, F_GETLK, &fl) < 0) { perror("fcntl"); return 1; }
    printf("busy %d %ld %ld %c\n", (int)fl.l_pid, (long)fl.l_start, (long)fl.l_len,
           fl.l_type == F_RDLCK ? 'r' : 'w');
    return 0;
}
