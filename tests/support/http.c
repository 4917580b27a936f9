/* A minimal HTTP/1.1 client for tests and benchmarks (support.h): one request per connection. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
    close(fd);
    return -1;
  }
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w <= 0) return; /* the server may close after a refusal: its reply is still read */
    b += w;
    n -= (size_t)w;
  }
}

/* One response: status line, headers, Content-Length bytes of body. Status 0 if none came. */
static ow_test_resp read_resp(int fd) {
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  ow_test_resp r = {0};
  size_t hend = 0, clen = 0;
  for (;;) {
    if (n == cap) buf = realloc(buf, cap *= 2);
    ssize_t got = recv(fd, buf + n, cap - n, 0);
    if (got <= 0) break;
    n += (size_t)got;
    if (!hend) {
      uint8_t *e = memmem(buf, n, "\r\n\r\n", 4);
      if (!e) continue;
      hend = (size_t)(e - buf) + 4;
      char *h = strndup((char *)buf, hend);
      sscanf(h, "HTTP/1.%*d %d", &r.status);
      char *save = NULL;
      for (char *line = strtok_r(h, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (!strncasecmp(line, "content-length:", 15)) clen = strtoul(line + 15, NULL, 10);
        if (!strncasecmp(line, "content-type:", 13)) snprintf(r.type, sizeof r.type, "%s", line + 14);
      }
      free(h);
    }
    if (hend && n >= hend + clen) break;
  }
  if (hend) {
    r.n = n - hend < clen ? n - hend : clen;
    r.body = malloc(r.n + 1);
    memcpy(r.body, buf + hend, r.n);
    r.body[r.n] = 0;
  }
  free(buf);
  return r;
}

ow_test_resp ow_test_http(int port, const char *method, const char *path, const char *auth, const void *body,
                          size_t n, size_t body_sent, bool hang_up) {
  ow_test_resp r = {0};
  int fd = dial(port);
  if (fd < 0) return r;
  size_t cap = 1024 + strlen(path) + (auth ? strlen(auth) : 0);
  char *hdr = malloc(cap);
  int hl = snprintf(hdr, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s", method, path,
                    auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
  if (!strcmp(method, "POST") || !strcmp(method, "PUT"))
    hl += snprintf(hdr + hl, cap - (size_t)hl, "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n", n);
  hl += snprintf(hdr + hl, cap - (size_t)hl, "\r\n");
  send_all(fd, hdr, (size_t)hl);
  free(hdr);
  if (body && body_sent) send_all(fd, body, body_sent);
  if (!hang_up) r = read_resp(fd);
  close(fd);
  return r;
}

void ow_test_resp_free(ow_test_resp *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}
