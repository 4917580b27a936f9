/* net: the HTTP router (routes, streamed bodies, limits, 404/405/411/413, asynchronous replies) and
 * the WebSocket transport behind the ow_conn interface, driven over loopback by raw sockets from a
 * client thread while the loop runs on the test's thread. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "net/net.h"

typedef struct fixture {
  uv_loop_t loop;
  uv_async_t done, mark;
  uv_timer_t late, later;
  uv_check_t turn;
  uint64_t turns;          /* loop iterations */
  uint64_t marks[2];       /* turns at the client's two marks */
  int nmarks;
  ow_net *net;
  int port;
  ow_buf body;            /* what /echo received */
  size_t chunks;          /* on_body calls of the last /echo */
  ow_http_req *pending;   /* /slow, answered by the timer */
  ow_http_req *pending2;  /* /later, answered after handshake_timeout_s */
  int aborts;
  unsigned ws_caps;
  const char *ws_transport;
} fixture;

/* ---- the server side (loop thread) ---- */

static void on_open(void *ud, ow_conn *c) {
  fixture *fx = ud;
  fx->ws_caps = ow_conn_caps(c);
  fx->ws_transport = ow_conn_transport(c);
}
/* "burst": BURST_N messages of BURST_LEN bytes, message i filled with the byte i % 251. */
#define BURST_N 5000
#define BURST_LEN 1000
static void on_message(void *ud, ow_conn *c, const uint8_t *p, size_t n, bool binary) {
  (void)ud, (void)binary;
  if (n == 5 && !memcmp(p, "burst", 5)) {
    uint8_t m[BURST_LEN];
    for (int i = 0; i < BURST_N; i++) {
      memset(m, i % 251, sizeof m);
      assert_int_equal(ow_net_send(c, m, sizeof m), 0);
    }
    return;
  }
  /* WebSocket has no unreliable channel: this falls back to the reliable send. */
  ow_conn_send_unreliable(c, p, n);
}
static void on_oversize(void *ud, ow_conn *c) { (void)ud, ow_conn_close(c, true); }
static void on_close(void *ud, ow_conn *c) { (void)ud, (void)c; }
static void status(void *ud, ow_buf *out) {
  (void)ud;
  ow_buf_put(out, "{\"ok\":1}", 8);
}

static int echo_request(void *ud, ow_http_req *r) {
  fixture *fx = ud;
  fx->body.len = 0;
  fx->chunks = 0;
  assert_string_equal(ow_http_content_type(r), "application/octet-stream");
  assert_string_equal(ow_http_authorization(r), "Bearer abc");
  assert_string_equal(ow_http_peer(r), "127.0.0.1");
  assert_true(ow_http_addr(r) != 0);
  return 0;
}
static int echo_body(void *ud, ow_http_req *r, const uint8_t *p, size_t n) {
  (void)r;
  fixture *fx = ud;
  ow_buf_put(&fx->body, p, n);
  fx->chunks++;
  return 0;
}
static void echo_end(void *ud, ow_http_req *r) {
  fixture *fx = ud;
  assert_int_equal(fx->body.len, ow_http_content_length(r));
  ow_http_reply(r, 200, "application/octet-stream", fx->body.data, fx->body.len);
}
static void path_end(void *ud, ow_http_req *r) {
  (void)ud;
  char t[256];
  int n = snprintf(t, sizeof t, "%s?%s", ow_http_path(r), ow_http_query(r));
  ow_http_reply(r, 200, "text/plain", t, (size_t)n);
}
static int deny_request(void *ud, ow_http_req *r) { (void)ud, (void)r; return 403; }
static void late_cb(uv_timer_t *t) {
  fixture *fx = t->data;
  if (fx->pending) ow_http_reply(fx->pending, 202, "text/plain", "late", 4);
  fx->pending = NULL;
}
static void slow_end(void *ud, ow_http_req *r) {
  fixture *fx = ud;
  fx->pending = r;
  uv_timer_start(&fx->late, late_cb, 50, 0);
}
static void later_cb(uv_timer_t *t) {
  fixture *fx = t->data;
  if (fx->pending2) ow_http_reply(fx->pending2, 202, "text/plain", "later", 5);
  fx->pending2 = NULL;
}
/* Answers after 1.5 s, longer than the fixture's handshake_timeout_s (1 s). */
static void later_end(void *ud, ow_http_req *r) {
  fixture *fx = ud;
  fx->pending2 = r;
  uv_timer_start(&fx->later, later_cb, 1500, 0);
}
static void later_abort(void *ud, ow_http_req *r) {
  (void)r;
  fixture *fx = ud;
  fx->pending2 = NULL;
}
static void turn_cb(uv_check_t *c) { ((fixture *)c->data)->turns++; }
static void mark_cb(uv_async_t *a) {
  fixture *fx = a->data;
  if (fx->nmarks < 2) fx->marks[fx->nmarks++] = fx->turns;
}
static void hold_end(void *ud, ow_http_req *r) { (void)ud, (void)r; } /* never answers */
static void hold_abort(void *ud, ow_http_req *r) {
  (void)r;
  fixture *fx = ud;
  fx->aborts++;
}

static void done_cb(uv_async_t *a) {
  fixture *fx = a->data;
  ow_net_destroy(fx->net);
  uv_close((uv_handle_t *)&fx->done, NULL);
  uv_close((uv_handle_t *)&fx->mark, NULL);
  uv_close((uv_handle_t *)&fx->late, NULL);
  uv_close((uv_handle_t *)&fx->later, NULL);
  uv_close((uv_handle_t *)&fx->turn, NULL);
}

/* ---- the client side (its own thread): raw HTTP and WebSocket over loopback ---- */

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  /* A small receive window, so that a burst fills the server's socket and its writes come short. */
  int rcv = 8192;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) return -1;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    c += w;
    n -= (size_t)w;
  }
}

/* The last recv() of read_all: 0 when the server closed, -1 when the 5 s receive timeout hit. */
static ssize_t last_recv;

/* Reads until the peer closes (every request says Connection: close). */
static char *read_all(int fd, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap + 1);
  for (;;) {
    if (n == cap) b = realloc(b, (cap *= 2) + 1);
    ssize_t r = recv(fd, b + n, cap - n, 0);
    last_recv = r;
    if (r <= 0) break;
    n += (size_t)r;
  }
  b[n] = 0;
  if (len) *len = n;
  return b;
}

static int status_of(const char *resp) {
  int st = 0;
  return sscanf(resp, "HTTP/1.1 %d", &st) == 1 ? st : -1;
}

static const char *body_of(const char *resp) {
  const char *b = strstr(resp, "\r\n\r\n");
  return b ? b + 4 : "";
}

static char *request(int port, const char *head, const void *body, size_t bl, size_t *len) {
  int fd = dial(port);
  assert_true(fd >= 0);
  send_all(fd, head, strlen(head));
  if (bl) send_all(fd, body, bl);
  char *r = read_all(fd, len);
  close(fd);
  return r;
}

typedef struct client_run {
  fixture *fx;
  int failures;
  char log[4096];
} client_run;

#define CHECK(cond, ...)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      cr->failures++;                                                                       \
      snprintf(cr->log + strlen(cr->log), sizeof cr->log - strlen(cr->log), __VA_ARGS__); \
    }                                                                                       \
  } while (0)

static void *client_main(void *arg) {
  client_run *cr = arg;
  int port = cr->fx->port;
  char *r;

  r = request(port, "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 200 && !strcmp(body_of(r), "{\"ok\":1}"), "status: %.200s\n", r);
  free(r);

  /* A 100 KiB body in four pieces with pauses: the route sees all of it, in order. */
  size_t bl = 100 * 1024;
  uint8_t *body = malloc(bl);
  for (size_t i = 0; i < bl; i++) body[i] = (uint8_t)(i * 7 + i / 251);
  char head[512];
  snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           "Authorization: Bearer abc\r\nContent-Type: application/octet-stream\r\n"
           "Content-Length: %zu\r\n\r\n", bl);
  int fd = dial(port);
  send_all(fd, head, strlen(head));
  for (int i = 0; i < 4; i++) {
    send_all(fd, body + i * (bl / 4), bl / 4);
    usleep(20000);
  }
  size_t rl;
  r = read_all(fd, &rl);
  close(fd);
  const char *rb = body_of(r);
  CHECK(status_of(r) == 200 && (size_t)(r + rl - rb) == bl && !memcmp(rb, body, bl),
        "echo: status %d, %zu body bytes\n", status_of(r), (size_t)(r + rl - rb));
  free(r);

  /* Over the route's limit: 413 from the length alone, and the server serves the next one. */
  r = request(port, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              "Content-Length: 2000000\r\n\r\n", body, 4096, NULL);
  CHECK(status_of(r) == 413, "413: %.200s\n", r);
  free(r);
  r = request(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 200 && strstr(r, "/ws"), "after 413: %.200s\n", r);
  free(r);
  free(body);

  r = request(port, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 404, "404: %.200s\n", r);
  free(r);
  r = request(port, "DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 405 && strcasestr(r, "allow: POST"), "405: %.300s\n", r);
  free(r);
  r = request(port, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 411, "411: %.200s\n", r);
  free(r);
  r = request(port, "GET /deny HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 403, "403: %.200s\n", r);
  free(r);
  r = request(port, "GET /api/x/y?k=v HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 200 && !strcmp(body_of(r), "/api/x/y?k=v"), "prefix: %.200s\n", r);
  free(r);
  r = request(port, "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 202 && !strcmp(body_of(r), "late"), "async: %.200s\n", r);
  free(r);
  /* Regression: a route that never answers got its connection closed at handshake_timeout_s
   * (1 s here, 10 s by default) whatever it wanted. /held allows 1 s (reply_timeout_s), after
   * which the server closes the connection and the route hears of it (on_abort). Meanwhile /later
   * answers after 1.5 s, past handshake_timeout_s, and its client gets the answer. */
  int held = dial(port);
  const char *hold = "GET /held HTTP/1.1\r\nHost: x\r\n\r\n";
  send_all(held, hold, strlen(hold));
  r = request(port, "GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 202 && !strcmp(body_of(r), "later"), "later: %.200s\n", r);
  free(r);
  r = read_all(held, NULL);
  CHECK(last_recv == 0 && !*r, "held: not closed at reply_timeout_s (%zd): %.200s\n", last_recv, r);
  free(r);
  close(held);

  /* Regression: a client that leaves before the asynchronous reply made the loop spin (lws does
   * not read a request in progress, and the peer's close left in the poll set woke the loop on
   * every turn). The loop now stops reading such a connection: over the 200 ms between the two
   * marks it turns a few times (lws's timers), not thousands. The route hears of the close at
   * the latest when the server shuts down (on_abort). */
  fd = dial(port);
  hold = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
  send_all(fd, hold, strlen(hold));
  usleep(20000);
  close(fd);
  usleep(20000);
  uv_async_send(&cr->fx->mark);
  usleep(200000);
  uv_async_send(&cr->fx->mark);
  usleep(20000);

  /* WebSocket on /ws: handshake, one masked binary message, echoed back through ow_conn. */
  fd = dial(port);
  const char *ws = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  send_all(fd, ws, strlen(ws));
  char hs[1024];
  ssize_t hn = recv(fd, hs, sizeof hs - 1, 0);
  hs[hn > 0 ? hn : 0] = 0;
  CHECK(strstr(hs, "101") && strstr(hs, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "ws handshake: %s\n", hs);
  const uint8_t mask[4] = {1, 2, 3, 4}, msg[5] = {'h', 'e', 'l', 'l', 'o'};
  uint8_t frame[2 + 4 + 5] = {0x82, 0x80 | 5, 1, 2, 3, 4};
  for (int i = 0; i < 5; i++) frame[6 + i] = msg[i] ^ mask[i % 4];
  send_all(fd, frame, sizeof frame);
  uint8_t in[16];
  size_t got = 0;
  while (got < 7) {
    ssize_t n = recv(fd, in + got, sizeof in - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
  }
  CHECK(got == 7 && in[0] == 0x82 && in[1] == 5 && !memcmp(in + 2, msg, 5), "ws echo: %zu bytes\n", got);

  /* 5 MB queued in one turn to a client that does not read for 100 ms: the loop writes up to 16
   * messages before it sleeps, the writable callback goes on from there (and lws would keep the
   * rest of a short write, which this loopback socket did not make in our runs), and every
   * message arrives whole and in order. */
  const uint8_t bmsg[5] = {'b', 'u', 'r', 's', 't'};
  for (int i = 0; i < 5; i++) frame[6 + i] = bmsg[i] ^ mask[i % 4];
  send_all(fd, frame, sizeof frame);
  usleep(100000);
  size_t flen = 4 + BURST_LEN, total = (size_t)BURST_N * flen;
  uint8_t *all = malloc(total);
  got = 0;
  while (got < total) {
    ssize_t n = recv(fd, all + got, total - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
  }
  int bad = got == total ? -1 : 0;
  for (int i = 0; bad < 0 && i < BURST_N; i++) {
    const uint8_t *f = all + (size_t)i * flen;
    if (f[0] != 0x82 || f[1] != 126 || ((f[2] << 8) | f[3]) != BURST_LEN) bad = i;
    for (size_t k = 0; bad < 0 && k < BURST_LEN; k++)
      if (f[4 + k] != i % 251) bad = i;
  }
  CHECK(bad < 0, "ws burst: %zu of %zu bytes, message %d wrong\n", got, total, bad);
  free(all);
  close(fd);
  usleep(50000);
  uv_async_send(&cr->fx->done);
  return NULL;
}

/* The loop, its handles and a server with cfg; the test adds its routes. */
static fixture *fixture_open(const ow_net_config *cfg, void (*status_fn)(void *, ow_buf *)) {
  fixture *fx = calloc(1, sizeof *fx);
  ow_buf_init(&fx->body);
  uv_loop_init(&fx->loop);
  uv_async_init(&fx->loop, &fx->done, done_cb);
  uv_async_init(&fx->loop, &fx->mark, mark_cb);
  uv_timer_init(&fx->loop, &fx->late);
  uv_timer_init(&fx->loop, &fx->later);
  uv_check_init(&fx->loop, &fx->turn);
  uv_check_start(&fx->turn, turn_cb);
  fx->done.data = fx->mark.data = fx->late.data = fx->later.data = fx->turn.data = fx;
  ow_net_handlers h = {on_open, on_message, on_oversize, on_close, status_fn, fx};
  assert_int_equal(ow_net_create(&fx->net, &fx->loop, cfg, &h), 0);
  fx->port = ow_net_port(fx->net);
  return fx;
}

/* Runs the loop while `client` talks to the server from its own thread, until it signals done;
 * then frees the server and the loop. The client's failures are printed and fail the test. */
static void fixture_run(fixture *fx, void *(*client)(void *)) {
  client_run cr = {.fx = fx};
  pthread_t t;
  pthread_create(&t, NULL, client, &cr);
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  pthread_join(t, NULL);
  ow_net_free(fx->net);
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  uv_loop_close(&fx->loop);
  if (cr.failures) fprintf(stderr, "%s", cr.log);
  assert_int_equal(cr.failures, 0);
}

static void test_router_and_websocket(void **state) {
  (void)state;
  ow_net_config cfg = {.bind = "127.0.0.1", .port = 0, .max_message = 4096, .send_limit = 8 << 20,
                       .handshake_timeout_s = 1};
  fixture *fx = fixture_open(&cfg, status);
  ow_http_route echo = {.path = "/echo", .methods = OW_HTTP_POST, .max_body = 1 << 20,
                        .on_request = echo_request, .on_body = echo_body, .on_end = echo_end, .ud = fx};
  ow_http_route api = {.path = "/api/", .prefix = true, .methods = OW_HTTP_GET, .on_end = path_end};
  ow_http_route deny = {.path = "/deny", .methods = OW_HTTP_GET, .on_request = deny_request,
                        .on_end = path_end};
  ow_http_route late = {.path = "/slow", .methods = OW_HTTP_GET, .on_end = slow_end, .ud = fx};
  ow_http_route held = {.path = "/hold", .methods = OW_HTTP_GET, .on_end = hold_end,
                        .on_abort = hold_abort, .ud = fx};
  ow_http_route held1 = {.path = "/held", .methods = OW_HTTP_GET, .reply_timeout_s = 1,
                         .on_end = hold_end, .on_abort = hold_abort, .ud = fx};
  ow_http_route later = {.path = "/later", .methods = OW_HTTP_GET, .on_end = later_end,
                         .on_abort = later_abort, .ud = fx};
  ow_http_route bad = {.path = "/bad", .methods = OW_HTTP_GET};
  assert_int_equal(ow_net_route(fx->net, &echo), 0);
  assert_int_equal(ow_net_route(fx->net, &api), 0);
  assert_int_equal(ow_net_route(fx->net, &deny), 0);
  assert_int_equal(ow_net_route(fx->net, &late), 0);
  assert_int_equal(ow_net_route(fx->net, &held), 0);
  assert_int_equal(ow_net_route(fx->net, &held1), 0);
  assert_int_equal(ow_net_route(fx->net, &later), 0);
  assert_int_equal(ow_net_route(fx->net, &bad), OW_E_INVAL);
  fixture_run(fx, client_main);
  assert_true(fx->chunks >= 2); /* the body arrived in pieces, as sent */
  assert_int_equal(fx->aborts, 2); /* /held at its reply_timeout_s, /hold at the shutdown */
  assert_int_equal(fx->nmarks, 2);
  if (fx->marks[1] - fx->marks[0] > 100)
    fail_msg("the loop turned %llu times in 200 ms with a closed request waiting: it spins",
             (unsigned long long)(fx->marks[1] - fx->marks[0]));
  assert_int_equal(fx->ws_caps, 0);
  assert_string_equal(fx->ws_transport, "websocket");
  ow_buf_deinit(&fx->body);
  free(fx);
}

/* Regression: a 411 went out but the connection stayed open until handshake_timeout_s (10 s by
 * default), and the client waited for its 5 s receive timeout in every run. Where such a body
 * ends is unknown, so the server closes once the 411 is out, and what follows is never read as a
 * request. Run with the default handshake_timeout_s, longer than the client's receive timeout, so
 * that only the server's close can end read_all with 0. */
static void *client_411(void *arg) {
  client_run *cr = arg;
  char *r = request(cr->fx->port, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0, NULL);
  CHECK(status_of(r) == 411 && !strstr(r, "200 OK"), "411: %.300s\n", r);
  CHECK(last_recv == 0, "411: the server did not close the connection (recv %zd)\n", last_recv);
  free(r);
  uv_async_send(&cr->fx->done);
  return NULL;
}

static void test_411_closes(void **state) {
  (void)state;
  ow_net_config cfg = {.bind = "127.0.0.1", .port = 0, .max_message = 4096, .send_limit = 1 << 20};
  fixture *fx = fixture_open(&cfg, NULL);
  ow_http_route echo = {.path = "/echo", .methods = OW_HTTP_POST, .max_body = 1 << 20,
                        .on_end = path_end};
  assert_int_equal(ow_net_route(fx->net, &echo), 0);
  fixture_run(fx, client_411);
  ow_buf_deinit(&fx->body);
  free(fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_router_and_websocket),
      cmocka_unit_test(test_411_closes),
  };
  return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
