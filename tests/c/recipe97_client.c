/* A client in the shape of the Secure Programming Cookbook's recipe 9.7: a loopback address
 * "127.0.0.1:PORT" is reached through the Unix socket named after it in a shared sticky
 * directory (the recipe uses /tmp; the directory is an argument here).
 *
 * recipe97_client DIR HOST PORT MESSAGE: connects, sends MESSAGE as one frame, prints the
 * answer frame as "reply <text>" and exits 0; exits 2 on any error. */
#include "framed.h"

static int spc_connect_loopback(const char *dir, const char *host, int port)
{
    struct sockaddr_un sa;
    char path[sizeof(sa.sun_path)];
    int len = snprintf(path, sizeof(path), "%s/%s:%d", dir, host, port);
    if (len < 0 || (size_t)len >= sizeof(path))
        return -1;
    if (unix_address(&sa, path) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    int fd = spc_connect_loopback(argv[1], argv[2], atoi(argv[3]));
    if (fd < 0) {
        perror("connect");
        return 2;
    }
    if (write_frame(fd, (const unsigned char *)argv[4], (uint32_t)strlen(argv[4])) < 0)
        return 2;
    unsigned char *reply = NULL;
    uint64_t n = 0;
    if (read_frame(fd, &reply, &n, 1u << 20) != 1)
        return 2;
    printf("reply %.*s\n", (int)n, (const char *)reply);
    free(reply);
    close(fd);
    return 0;
}
