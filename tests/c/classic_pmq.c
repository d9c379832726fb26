/* A POSIX message queue peer for the fastipc tests.
 *   classic_pmq send NAME PRIORITY TEXT   send TEXT with PRIORITY (the queue must exist)
 *   classic_pmq recv NAME                 receive one message, print "PRIORITY TEXT"
 *   classic_pmq create NAME MAXMSG SIZE   create the queue (0600, O_EXCL)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "send") == 0) {
        mqd_t q = mq_open(argv[2], O_WRONLY);
        if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
        if (mq_send(q, argv[4], strlen(argv[4]), (unsigned)atoi(argv[3])) < 0) { perror("mq_send"); return 1; }
        mq_close(q);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "recv") == 0) {
        mqd_t q = mq_open(argv[2], O_RDONLY);
        if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
        struct mq_attr attr;
        if (mq_getattr(q, &attr) < 0) { perror("mq_getattr"); return 1; }
        char *buf = malloc((size_t)attr.mq_msgsize + 1);
        if (!buf) return 1;
        unsigned prio = 0;
        ssize_t n = mq_receive(q, buf, (size_t)attr.mq_msgsize, &prio);
        if (n < 0) { perror("mq_receive"); return 1; }
        buf[n] = 0;
        printf("%u %s\n", prio, buf);
        free(buf);
        mq_close(q);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "create") == 0) {
        struct mq_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.mq_maxmsg = atol(argv[3]);
        attr.mq_msgsize = atol(argv[4]);
        mqd_t q = mq_open(argv[2], O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
        if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
        mq_close(q);
        return 0;
    }
    fprintf(stderr, "usage: classic_pmq send NAME PRIO TEXT | recv NAME | create NAME MAXMSG SIZE\n");
    return 2;
}
