/* Test support: the real server binary, started on an ephemeral port. See support.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

static void nap_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* Reads the log from offset `from` and picks the fields of the lines this run writes at start. */
static bool scan_log(ow_test_server *s, long from) {
  FILE *f = fopen(s->log, "r");
  if (!f) return false;
  fseek(f, from, SEEK_SET);
  char line[2048];
  bool listening = false;
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, "event=recovered")) {
      const char *p = strstr(line, " frame=");
      if (p) s->recovered_frame = strtoull(p + 7, NULL, 10);
    }
    const char *u = strstr(line, "url=ws://127.0.0.1:");
    if (strstr(line, "event=listening") && u) {
      s->port = atoi(u + strlen("url=ws://127.0.0.1:"));
      listening = s->port > 0;
    }
  }
  fclose(f);
  return listening;
}

int ow_test_server_start(ow_test_server *s, const char *bin, const char *data_dir,
                         const char *log_path, const char *const *args, int timeout_ms) {
  memset(s, 0, sizeof *s);
  snprintf(s->log, sizeof s->log, "%s", log_path);
  /* Appended to, so that one log can hold every run of a test; this run's lines start here. */
  int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  long from = lseek(fd, 0, SEEK_END);
  const char *argv[96];
  int n = 0;
  /* OW_SERVER_WRAPPER runs the server under a tool, e.g. "valgrind --error-exitcode=99". */
  static char wrap[512];
  const char *w = getenv("OW_SERVER_WRAPPER");
  if (w && *w) {
    snprintf(wrap, sizeof wrap, "%s", w);
    char *save = NULL;
    for (char *tok = strtok_r(wrap, " ", &save); tok && n < 32; tok = strtok_r(NULL, " ", &save))
      argv[n++] = tok;
    timeout_ms *= 6; /* valgrind starts slowly */
  }
  const char *fixed[] = {bin, "--data_dir", data_dir, "--bind", "127.0.0.1", "--port", "0"};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) argv[n++] = fixed[i];
  /* Under tests/pg/pg_env.sh the server keeps the world in PostgreSQL, one schema per data_dir. */
  static char *pg_uri;
  ow_free(pg_uri);
  pg_uri = ow_test_store_uri(data_dir);
  if (pg_uri) {
    argv[n++] = "--store";
    argv[n++] = pg_uri;
  }
  for (int i = 0; args && args[i] && n < 95; i++) argv[n++] = args[i];
  argv[n] = NULL;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    return -1;
  }
  if (pid == 0) {
    dup2(fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fd);
  s->pid = pid;
  for (int waited = 0; waited < timeout_ms; waited += 5) {
    if (scan_log(s, from)) return 0;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      s->pid = 0;
      return -1;
    }
    nap_ms(5);
  }
  ow_test_server_stop(s, SIGKILL);
  return -1;
}

int ow_test_server_stop(ow_test_server *s, int sig) {
  if (s->pid <= 0) return -1;
  if (sig) kill(s->pid, sig);
  int status;
  pid_t r;
  while ((r = waitpid(s->pid, &status, 0)) < 0 && errno == EINTR) {
  }
  s->pid = 0;
  return r < 0 ? -1 : status;
}

double ow_test_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
