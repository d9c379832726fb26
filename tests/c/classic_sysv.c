/* A System V message queue peer for the fastipc tests; the key is ftok(PATH, ID).
 *   classic_sysv key PATH ID                 print the key in decimal
 *   classic_sysv create PATH ID              create the queue (0600, IPC_EXCL), print its id
 *   classic_sysv send PATH ID TYPE TEXT      send TEXT as a message of TYPE
 *   classic_sysv recv PATH ID TYPE           receive (msgtyp TYPE), print "TYPE TEXT"
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>

struct message {
    long mtype;
    char mtext[8192];
};

int main(int argc, char **argv) {
    if (argc < 4) goto usage;
    key_t key = ftok(argv[2], atoi(argv[3]));
    if (key == -1) { perror("ftok"); return 1; }
    if (strcmp(argv[1], "key") == 0) {
        printf("%d\n", (int)key);
        return 0;
    }
    if (strcmp(argv[1], "create") == 0) {
        int id = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
        if (id < 0) { perror("msgget"); return 1; }
        printf("%d\n", id);
        return 0;
    }
    int id = msgget(key, 0);
    if (id < 0) { perror("msgget"); return 1; }
    static struct message m;
    if (argc == 6 && strcmp(argv[1], "send") == 0) {
        m.mtype = atol(argv[4]);
        size_t len = strlen(argv[5]);
        if (len > sizeof m.mtext) return 1;
        memcpy(m.mtext, argv[5], len);
        if (msgsnd(id, &m, len, 0) < 0) { perror("msgsnd"); return 1; }
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "recv") == 0) {
        ssize_t n = msgrcv(id, &m, sizeof m.mtext - 1, atol(argv[4]), 0);
        if (n < 0) { perror("msgrcv"); return 1; }
        m.mtext[n] = 0;
        printf("%ld %s\n", m.mtype, m.mtext);
        return 0;
    }
usage:
    fprintf(stderr, "usage: classic_sysv key|create PATH ID | send PATH ID TYPE TEXT | recv PATH ID TYPE\n");
    return 2;
}
