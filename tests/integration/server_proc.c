/* Integration tests: the real server binary as a child process. See server_proc.h. */
#define _GNU_SOURCE
#include "server_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int ow_server_proc_start(ow_server_proc *p, const char *bin, const char *data, const char *log,
                         const char *const *args) {
  /* OW_SERVER_WRAPPER runs the server under a tool, e.g. "valgrind --error-exitcode=99". */
  static char wrap[512];
  const char *argv[96];
  size_t n = 0;
  const char *w = getenv("OW_SERVER_WRAPPER");
  if (w && *w) {
    snprintf(wrap, sizeof wrap, "%s", w);
    for (char *save = NULL, *tok = strtok_r(wrap, " ", &save); tok && n < 32; tok = strtok_r(NULL, " ", &save))
      argv[n++] = tok;
  }
  const char *fixed[] = {bin, "--data_dir", data, "--bind", "127.0.0.1", "--port", "0"};
  for (size_t i = 0; i < 7; i++) argv[n++] = fixed[i];
  for (size_t i = 0; args && args[i] && n < 95; i++) argv[n++] = args[i];
  argv[n] = NULL;
  p->port = 0;
  unlink(log); /* a stale log would name a stale port */
  p->pid = fork();
  if (p->pid < 0) return -1;
  if (p->pid == 0) {
    if (!freopen(log, "w", stderr)) _exit(126);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  int tries = w && *w ? 1200 : 200; /* 60 s under a wrapper such as valgrind, else 10 s */
  for (int i = 0; i < tries; i++) {
    FILE *f = fopen(log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
      char *u = strstr(line, "url=ws://127.0.0.1:");
      if (u) {
        fclose(f);
        p->port = atoi(u + strlen("url=ws://127.0.0.1:"));
        return 0;
      }
    }
    if (f) fclose(f);
    if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
      p->pid = -1;
      return -1;
    }
    usleep(50000);
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, NULL, 0);
  p->pid = -1;
  return -1;
}

int ow_server_proc_stop(ow_server_proc *p, int sig) {
  if (p->pid <= 0) return -1;
  kill(p->pid, sig);
  int status;
  pid_t r = waitpid(p->pid, &status, 0);
  p->pid = -1;
  return r < 0 ? -1 : status;
}

double ow_test_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
