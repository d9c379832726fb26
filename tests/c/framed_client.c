/* framed_client PATH SIZE...: connects to the Unix stream socket PATH and, for each SIZE k,
 * sends pattern(k, index) as one frame and expects the same bytes reversed back.
 * Prints "ok N" and exits 0; exits 1 on a wrong answer, 2 on any other error. */
#include "framed.h"

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct sockaddr_un sa;
    if (unix_address(&sa, argv[1]) < 0)
        return 2;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        size_t n = strtoul(argv[i], NULL, 10);
        unsigned char *msg = malloc(n ? n : 1);
        if (!msg)
            return 2;
        fill_pattern(msg, n, (unsigned)(i - 2));
        if (write_frame(fd, msg, (uint32_t)n) < 0) {
            perror("write");
            return 2;
        }
        unsigned char *back = NULL;
        uint64_t m = 0;
        if (read_frame(fd, &back, &m, 64u << 20) != 1) {
            fprintf(stderr, "no answer to frame %d\n", i - 2);
            return 2;
        }
        reverse(msg, n);
        if (m != n || (n && memcmp(back, msg, n) != 0)) {
            fprintf(stderr, "wrong answer to frame %d (%lu bytes)\n", i - 2, (unsigned long)m);
            return 1;
        }
        free(msg);
        free(back);
    }
    close(fd);
    printf("ok %d\n", argc - 2);
    return 0;
}
