/* Integration tests: the real server binary as a child process. */
#ifndef OW_TEST_SERVER_PROC_H
#define OW_TEST_SERVER_PROC_H

#include <sys/types.h>

typedef struct ow_server_proc {
  pid_t pid;
  int port;
} ow_server_proc;

/* Starts `bin` with --data_dir data --bind 127.0.0.1 --port 0 and the NULL-terminated extra
 * arguments `args` (may be NULL), its stderr going to `log` (truncated), and waits until its
 * "listening" line names the port. Returns 0, or -1 when the server exited or did not listen
 * within 10 s (the child is killed then). The environment variable OW_SERVER_WRAPPER, when set,
 * is a command line the server runs under (split at spaces), e.g. valgrind; waits 60 s then. */
int ow_server_proc_start(ow_server_proc *p, const char *bin, const char *data, const char *log,
                         const char *const *args);
/* Sends `sig` and waits for the process. Returns its exit status as waitpid() reports it, or -1. */
int ow_server_proc_stop(ow_server_proc *p, int sig);

/* Seconds on the monotonic clock, for deadlines of waits (never of assertions on speed). */
double ow_test_now(void);

#endif
