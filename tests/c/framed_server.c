/* framed_server PATH: listens on the Unix stream socket PATH, prints "ready", accepts one
 * connection and answers every frame with the frame's payload reversed, until end of file.
 * Prints "frames N" and exits 0; exits 2 on any error. */
#include "framed.h"

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    struct sockaddr_un sa;
    if (unix_address(&sa, argv[1]) < 0)
        return 2;
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0) {
        perror("listen");
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
        perror("accept");
        return 2;
    }
    unsigned long frames = 0;
    for (;;) {
        unsigned char *buf = NULL;
        uint64_t n = 0;
        int r = read_frame(fd, &buf, &n, 64u << 20);
        if (r == 0)
            break;
        if (r < 0) {
            fprintf(stderr, "bad frame\n");
            return 2;
        }
        reverse(buf, (size_t)n);
        if (write_frame(fd, buf, (uint32_t)n) < 0) {
            perror("write");
            return 2;
        }
        free(buf);
        frames++;
    }
    close(fd);
    close(lfd);
    unlink(argv[1]);
    printf("frames %lu\n", frames);
    return 0;
}
