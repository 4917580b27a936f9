/* The real server speaks systemd's notify protocol as Type=notify with WatchdogSec= expects: this
 * test plays systemd's part (a datagram socket named by NOTIFY_SOCKET, WATCHDOG_USEC set), starts
 * the server, and requires READY=1 once it listens, WATCHDOG=1 pings at about half the watchdog
 * interval while it runs, and STOPPING=1 when SIGTERM stops it. Usage: systemd_notify SERVER */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static char dir[] = "/tmp/ow-notify-XXXXXX";
static ow_test_server server;

static void die(const char *what) {
  fprintf(stderr, "systemd_notify: FAIL: %s\n", what);
  if (server.pid > 0) ow_test_server_stop(&server, SIGKILL);
  exit(1);
}

/* Counts of what the server said, from every datagram received until the deadline. */
typedef struct heard {
  int ready, watchdog, stopping;
  char status[256];
} heard;

static void listen_for(int fd, double seconds, heard *h) {
  double end = ow_test_now() + seconds;
  char buf[1024];
  for (double now; (now = ow_test_now()) < end;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)((end - now) * 1000) + 1) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) continue;
    buf[n] = 0;
    /* One datagram may carry several newline-separated assignments. */
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
      if (!strcmp(line, "READY=1")) h->ready++;
      else if (!strcmp(line, "WATCHDOG=1")) h->watchdog++;
      else if (!strcmp(line, "STOPPING=1")) h->stopping++;
      else if (!strncmp(line, "STATUS=", 7)) snprintf(h->status, sizeof h->status, "%s", line + 7);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 2) die("usage: systemd_notify SERVER_BINARY");
  if (!mkdtemp(dir)) die("mkdtemp");
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", dir);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa)) die("notify socket");
  setenv("NOTIFY_SOCKET", sa.sun_path, 1);
  setenv("WATCHDOG_USEC", "200000", 1); /* pings expected every 100 ms */
  unsetenv("WATCHDOG_PID");

  char log[300], data[300];
  snprintf(log, sizeof log, "%s/server.log", dir);
  snprintf(data, sizeof data, "%s/data", dir);
  const char *args[] = {"--shutdown_notice_s", "0.1", NULL};
  if (ow_test_server_start(&server, argv[1], data, log, args, 30000)) die("server did not start");

  heard h = {0};
  listen_for(fd, 1.5, &h);
  if (h.ready != 1) die("no single READY=1 after the server listened");
  if (!strstr(h.status, "serving ws://")) die("READY came without its STATUS line");
  /* About 15 pings in 1.5 s; a loaded machine may delay some, but a few must arrive. */
  if (h.watchdog < 3) die("fewer than 3 WATCHDOG=1 pings in 1.5 s at WATCHDOG_USEC=200000");
  printf("ready=%d watchdog_pings=%d status=\"%s\"\n", h.ready, h.watchdog, h.status);

  kill(server.pid, SIGTERM);
  heard s = {0};
  listen_for(fd, 1.0, &s);
  int st = ow_test_server_stop(&server, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) die("server did not exit 0 after SIGTERM");
  if (s.stopping < 1) die("no STOPPING=1 after SIGTERM");
  printf("stopping=%d exit=0\n", s.stopping);
  close(fd);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) return 1;
  return 0;
}
