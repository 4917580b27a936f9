/*
 * abuse_loopback: the real server under attack on loopback while honest players keep playing.
 *
 * 50 honest players (the C client library, from 127.0.0.1, on their own thread) register, log in,
 * join and play: a move of their avatar every 500 ms and a pose at 60 Hz. Meanwhile raw sockets
 * (epoll, bound to other loopback addresses 127.x.y.z so that per-address limits can be shown)
 * attack, bounded in count and time:
 *   garbage   5,000 connections: bytes that are no HTTP request, invalid WebSocket framing after a
 *             valid handshake, binary messages that are no protocol message, text messages
 *   slowloris half-open handshakes: partial HTTP requests trickled a byte every 500 ms, and bare
 *             TCP connections; 150 of them from one address (max_conns_per_addr)
 *   oversize  WebSocket messages announcing 1 MiB and 2^40 bytes, fragments adding up past
 *             4096 bytes, a 64 KiB HTTP header
 *   floods    logged-in, joined clients sending actions, poses and chat far above the limits
 *   guessing  one account from one address, one account from ten addresses, many accounts (the
 *             honest players') from one address, and a flood of LOGINs from 40 addresses
 * Checks (any failure fails the test): no honest player is disconnected or gets an error, every
 * honest action is APPLIED (code 0) and DURABLE; every attack connection gets the expected errors
 * and SERVER_BYE reason or is closed by the server; the login limits trigger per account and per
 * address; /status answers throughout; the server's heap returns to its baseline; SIGTERM still
 * stops it cleanly. Figures are key=value lines on stdout; the honest applied p99 is printed, not
 * asserted (machines are noisy).
 *
 * usage: abuse SERVER_BINARY [--quick]   (--quick: fewer attack connections, for sanitizer builds)
 * Environment: OW_ABUSE_RATE new attack connections per second (1,000); OW_ABUSE_TIMELINE=1 prints
 * the honest latency second by second; OW_ABUSE_ONLY=gsofp runs only some attacks (garbage,
 * slowloris, oversize, floods, passwords: the checks of the others then fail); OW_ABUSE_KEEP=1
 * keeps the temporary directory with the server's log.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otherworld/client.h"
#include "proto/proto.h"
#include "support.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ---- settings of the run ----------------------------------------------------------------------
 */

static bool garbage_skip;
static struct {
  bool quick;
  int honest;
  int garbage_http, garbage_frames, garbage_msgs, garbage_text;
  int slow_one_addr, slow_spread;
  int oversize_each;
  int floods_each;
  int hashflood_addrs;
} R;

/* The server's settings that the checks depend on (everything else is the default). */
#define HANDSHAKE_TIMEOUT_S 3
#define MAX_CONNS_PER_ADDR 64 /* the default */
#define LOGIN_FAILS_ACCOUNT 5 /* the default */
#define LOGIN_FAILS_ADDR 20   /* the default */
#define PWHASH_PER_ADDR 4     /* the default */

static char dir[] = "/tmp/ow-abuse-XXXXXX";
static pid_t server = -1;
static int port;
static int failures;

static void check(bool ok, const char *fmt, ...) {
  if (ok) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "abuse: FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  failures++;
}

static _Noreturn void die(const char *what) {
  fprintf(stderr, "abuse: FAIL: %s\n", what);
  if (server > 0) kill(server, SIGKILL);
  exit(1);
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

/* xorshift64*, fixed seeds: one generator per thread. */
static uint64_t xs(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}
static uint64_t rng_attack = 0x9e3779b97f4a7c15ull, rng_honest = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) { return xs(&rng_attack); }
static uint64_t hrnd(void) { return xs(&rng_honest); }

/* ---- the server --------------------------------------------------------------------------------
 */

static void start_server(const char *bin) {
  char log[300], data[300];
  snprintf(log, sizeof log, "%s/server.log", dir);
  snprintf(data, sizeof data, "%s/data", dir);
  /* Cheap argon2id (the limits are under test, not the hash's strength); a short handshake
   * timeout so that the slowloris phase fits the test's time. Everything else: defaults. */
  static const char *const args[] = {"--shutdown_notice_s", "0", "--pwhash_ops", "1",
                                     "--pwhash_mem_kb", "8192", "--handshake_timeout_s", "3",
                                     "--durability", "nosync", NULL};
  ow_test_server ts;
  if (ow_test_server_start(&ts, bin, data, log, args, 30000))
    die("the server did not start (see its log)");
  server = ts.pid;
  port = ts.port;
}

/* GET /status into buf (the JSON body). Returns false when it does not answer within 5 s. */
static bool get_status(char *buf, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
    close(fd);
    return false;
  }
  const char *req = "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
    close(fd);
    return false;
  }
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  buf[n] = 0;
  char *body = strstr(buf, "\r\n\r\n");
  if (!body || !strstr(buf, "200")) return false;
  memmove(buf, body + 4, strlen(body + 4) + 1);
  return strchr(buf, '}') != NULL;
}

static double field(const char *json, const char *key) {
  char k[80];
  snprintf(k, sizeof k, "\"%s\":", key);
  const char *p = strstr(json, k);
  return p ? atof(p + strlen(k)) : -1;
}

static long rss_kb(void) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)server);
  FILE *f = fopen(path, "r");
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

/* CPU seconds used so far by the server (every thread: the loop and argon2) and by this process. */
static double server_cpu_s(void) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)server);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  long long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* ---- latency samples ---------------------------------------------------------------------------
 */

typedef struct sample {
  uint64_t at, ns; /* when the action was issued, and how long the reply took */
} sample;
typedef OW_VEC(sample) samples;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile (ms) of the samples issued within [from, to); -1 without samples. */
static double pct(const samples *s, uint64_t from, uint64_t to, double p, size_t *count) {
  uint64_t *v = malloc((s->len + 1) * sizeof *v);
  size_t n = 0;
  for (size_t i = 0; i < s->len; i++)
    if (s->v[i].at >= from && s->v[i].at < to) v[n++] = s->v[i].ns;
  if (count) *count = n;
  if (!n) {
    free(v);
    return -1;
  }
  qsort(v, n, sizeof *v, cmp_u64);
  size_t i = (size_t)ceil(p * (double)n);
  i = i ? i - 1 : 0;
  double r = ms(v[i < n ? i : n - 1]);
  free(v);
  return r;
}

/* ---- honest players (the C client library, their own thread) --------------------------------- */

#define RING 1024
enum { H_CONNECTING, H_REGISTER, H_LOGIN, H_JOIN, H_PLAY, H_RETRY_REGISTER, H_RETRY_LOGIN, H_DONE };

typedef struct honest {
  int idx;
  ow_client *c;
  int phase;
  uint32_t req;
  uint64_t retry_at;
  uint64_t avatar;
  float home[3];
  uint64_t next_pose, next_action;
  uint64_t sent_ns[RING], seq_of[RING];
  bool applied[RING];
  uint64_t sent, applied_ok, applied_bad, durable;
} honest;

static struct {
  honest *p;
  ow_client_ctx *ctx;
  atomic_int joined;
  atomic_int stop;     /* 1: stop playing, drain, log out */
  atomic_int finished; /* the thread is done */
  samples applied, durable;
  uint64_t errors, rate_errors, byes, disconnects, register_retries;
  uint16_t last_bye;
} H;

static void h_name(int i, char *out, size_t n) { snprintf(out, n, "honest%d", i); }
static void h_password(int i, char *out, size_t n) { snprintf(out, n, "honest-password-%d", i); }

/* REGISTER (or LOGIN) with the player's name and password. */
static void h_creds(honest *p, bool reg) {
  char n[32], pw[64];
  h_name(p->idx, n, sizeof n);
  h_password(p->idx, pw, sizeof pw);
  int rc = reg ? ow_client_register(p->c, n, pw) : ow_client_login(p->c, n, pw);
  if (rc < 0) die("honest REGISTER or LOGIN could not be queued");
  p->req = (uint32_t)rc;
  p->phase = reg ? H_REGISTER : H_LOGIN;
}

static void hcb_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)c, (void)req, (void)w;
  h_creds(ud, true);
}

static void hcb_ok(ow_client *c, void *ud, uint32_t req) {
  (void)c;
  honest *p = ud;
  if (p->phase == H_REGISTER && req == p->req) h_creds(p, false);
}

static void hcb_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)req;
  honest *p = ud;
  p->avatar = s->avatar;
  int rc = ow_client_join(c);
  if (rc < 0) die("honest JOIN could not be queued");
  p->phase = H_JOIN;
}

static void hcb_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req, (void)w;
  honest *p = ud;
  if (p->phase != H_JOIN) return;
  p->phase = H_PLAY;
  uint64_t now = ow_now_ns();
  p->next_pose = now + hrnd() % 16666666;
  p->next_action = now + hrnd() % 500000000;
  atomic_fetch_add(&H.joined, 1);
}

static void hcb_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                        uint64_t frame, bool replayed) {
  (void)c, (void)req, (void)frame, (void)replayed;
  honest *p = ud;
  size_t i = seq % RING;
  if (p->seq_of[i] != seq || p->applied[i]) return;
  p->applied[i] = true;
  sample s = {p->sent_ns[i], ow_now_ns() - p->sent_ns[i]};
  OW_VEC_PUSH(H.applied, s);
  if (r->code) {
    p->applied_bad++;
    fprintf(stderr, "honest%d: action %llu applied with %s\n", p->idx, (unsigned long long)seq,
            ow_err_name(r->code));
  } else {
    p->applied_ok++;
  }
}

static void hcb_durable(ow_client *c, void *ud, uint64_t frame, int32_t status,
                        const uint64_t *seqs, size_t n) {
  (void)c, (void)frame;
  honest *p = ud;
  if (status) {
    H.errors++;
    fprintf(stderr, "honest%d: DURABLE with status %d\n", p->idx, status);
    return;
  }
  uint64_t now = ow_now_ns();
  for (size_t k = 0; k < n; k++) {
    size_t i = seqs[k] % RING;
    if (p->seq_of[i] != seqs[k]) continue;
    sample s = {p->sent_ns[i], now - p->sent_ns[i]};
    OW_VEC_PUSH(H.durable, s);
    p->durable++;
  }
}

static void hcb_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c;
  honest *p = ud;
  /* Registering 50 players at once from one address meets pwhash_per_addr: a client retries. */
  if (code == OW_E_RATE && req == p->req && (p->phase == H_REGISTER || p->phase == H_LOGIN)) {
    H.register_retries++;
    p->phase = p->phase == H_REGISTER ? H_RETRY_REGISTER : H_RETRY_LOGIN;
    p->retry_at = ow_now_ns() + 100000000ull + hrnd() % 200000000ull;
    return;
  }
  H.errors++;
  if (code == OW_E_RATE) H.rate_errors++;
  fprintf(stderr, "honest%d: ERROR %s req=%u \"%s\"\n", p->idx, ow_err_name(code), req, text);
}

static void hcb_bye(ow_client *c, void *ud, uint16_t reason, const char *text) {
  (void)c;
  honest *p = ud;
  if (p->phase == H_DONE && reason == OW_BYE_NORMAL) return; /* our own logout */
  H.byes++;
  H.last_bye = reason;
  fprintf(stderr, "honest%d: SERVER_BYE %u \"%s\"\n", p->idx, reason, text);
}

static void hcb_close(ow_client *c, void *ud) {
  (void)c;
  honest *p = ud;
  if (p->phase != H_DONE) {
    H.disconnects++;
    fprintf(stderr, "honest%d: disconnected (phase %d)\n", p->idx, p->phase);
  }
  p->phase = H_DONE;
}

static void h_act(honest *p, uint64_t now) {
  ow_action a;
  memset(&a, 0, sizeof a);
  a.type = OW_ACT_MOVE;
  a.target = p->avatar;
  a.xf.pos[0] = p->home[0] + (float)(hrnd() % 2000) / 1000.0f - 1.0f;
  a.xf.pos[2] = p->home[2] + (float)(hrnd() % 2000) / 1000.0f - 1.0f;
  a.xf.rot[3] = 1;
  a.xf.scale[0] = a.xf.scale[1] = a.xf.scale[2] = 1;
  uint64_t seq;
  if (ow_client_action(p->c, &a, &seq) < 0) {
    H.errors++;
    fprintf(stderr, "honest%d: action could not be queued\n", p->idx);
    return;
  }
  size_t i = seq % RING;
  p->seq_of[i] = seq;
  p->sent_ns[i] = now;
  p->applied[i] = false;
  p->sent++;
}

static void h_pose(honest *p, uint64_t now) {
  float root[3] = {p->home[0], 0, p->home[2]}, rot[4] = {0, 0, 0, 1};
  double t = (double)now / 1e9 + p->idx;
  ow_client_bone b[3] = {{{0, 1.6f, 0}, {0, 0, 0, 1}},
                         {{-0.3f + 0.1f * (float)sin(t), 1.1f, 0.3f}, {0, 0, 0, 1}},
                         {{0.3f, 1.1f + 0.1f * (float)cos(t), 0.3f}, {0, 0, 0, 1}}};
  ow_pose pose;
  if (!ow_client_pose_build(&pose, root, rot, 7, 0, b)) ow_client_pose(p->c, &pose);
}

static void *honest_thread(void *arg) {
  (void)arg;
  ow_client_ctx_opts o = {.max_connections = (unsigned)R.honest + 16};
  if (ow_client_ctx_create(&o, &H.ctx)) die("client context");
  ow_client_callbacks cb = {.on_welcome = hcb_welcome,
                            .on_ok = hcb_ok,
                            .on_session = hcb_session,
                            .on_joined = hcb_joined,
                            .on_applied = hcb_applied,
                            .on_durable = hcb_durable,
                            .on_error = hcb_error,
                            .on_bye = hcb_bye,
                            .on_close = hcb_close};
  for (int i = 0; i < R.honest; i++) {
    honest *p = &H.p[i];
    p->idx = i;
    p->home[0] = (float)(i % 10) * 3 - 15;
    p->home[2] = (float)(i / 10) * 3 - 8;
    p->c = ow_client_create(H.ctx, &cb, p);
    if (ow_client_connect(p->c, "127.0.0.1", port, NULL) ||
        ow_client_hello(p->c, "abuse-honest") < 0)
      die("honest connect");
  }
  while (!atomic_load(&H.stop)) {
    uint64_t now = ow_now_ns();
    for (int i = 0; i < R.honest; i++) {
      honest *p = &H.p[i];
      if ((p->phase == H_RETRY_REGISTER || p->phase == H_RETRY_LOGIN) && now >= p->retry_at) {
        h_creds(p, p->phase == H_RETRY_REGISTER);
      }
      if (p->phase != H_PLAY) continue;
      if (now >= p->next_pose) {
        h_pose(p, now);
        p->next_pose += 16666666;
        if (p->next_pose < now) p->next_pose = now + 16666666;
      }
      if (now >= p->next_action) {
        h_act(p, now);
        p->next_action += 500000000;
        if (p->next_action < now) p->next_action = now + 500000000;
      }
    }
    ow_client_ctx_service(H.ctx, 1);
  }
  /* Drain: every action confirmed durable (bounded), then log out. */
  uint64_t until = ow_now_ns() + 10000000000ull;
  for (;;) {
    size_t open = 0;
    for (int i = 0; i < R.honest; i++)
      if (H.p[i].phase == H_PLAY) open += ow_client_unconfirmed(H.p[i].c);
    if (!open || ow_now_ns() > until) break;
    ow_client_ctx_service(H.ctx, 5);
  }
  for (int i = 0; i < R.honest; i++) {
    honest *p = &H.p[i];
    if (p->phase == H_DONE) continue;
    p->phase = H_DONE;
    if (ow_client_logout(p->c) < 0) ow_client_close(p->c);
  }
  until = ow_now_ns() + 3000000000ull;
  for (;;) {
    int open = 0;
    for (int i = 0; i < R.honest; i++) open += ow_client_connected(H.p[i].c);
    if (!open || ow_now_ns() > until) break;
    ow_client_ctx_service(H.ctx, 5);
  }
  ow_client_ctx_destroy(H.ctx);
  atomic_store(&H.finished, 1);
  return NULL;
}

/* ---- raw attack connections (epoll)
 * -------------------------------------------------------------- */

enum kind {
  K_GARBAGE_HTTP,   /* bytes that are no HTTP request */
  K_GARBAGE_FRAMES, /* a valid handshake, then invalid WebSocket framing */
  K_GARBAGE_MSG,    /* a valid handshake (and HELLO for half), then a binary message of garbage */
  K_GARBAGE_TEXT,   /* a valid handshake, then a text message */
  K_SLOWLORIS,      /* a partial HTTP request, one more byte every 500 ms */
  K_HALFOPEN,       /* a TCP connection that sends nothing */
  K_OVERSIZE,       /* HELLO, then a frame announcing 1 MiB (8 KiB of it sent) */
  K_OVERSIZE_HUGE,  /* HELLO, then a frame announcing 2^40 bytes */
  K_OVERSIZE_FRAG,  /* HELLO, then three 2000-byte fragments of one message */
  K_OVERSIZE_HDR,   /* an HTTP request with a 64 KiB header */
  K_FLOOD_ACTION,   /* logged in and joined: 2,000 actions/s */
  K_FLOOD_POSE,     /* 3,000 poses/s */
  K_FLOOD_CHAT,     /* 600 chat messages/s */
  K_GUESS,          /* LOGIN attempts in sequence, wrong passwords */
  K_HASHFLOOD,      /* one LOGIN of an unknown name, many connections at once */
  K_NKINDS
};
static const char *const kind_name[K_NKINDS] = {
    "garbage_http",         "garbage_frames", "garbage_msg",
    "garbage_text",         "slowloris",      "halfopen",
    "oversize_1mib",        "oversize_2e40",  "oversize_fragments",
    "oversize_http_header", "flood_action",   "flood_pose",
    "flood_chat",           "guess",          "hashflood"};

enum { C_IDLE, C_CONNECTING, C_OPEN, C_DONE };
/* Steps of the scripted WebSocket conversations. */
enum {
  W_NONE,
  W_HANDSHAKE,
  W_WELCOME,
  W_REGISTERED,
  W_SESSION,
  W_JOINED,
  W_READY,
  W_FLOOD,
  W_GUESS,
  W_END
};

typedef struct rconn {
  int kind, st, step;
  int fd;
  uint32_t src; /* source IPv4, host order */
  uint64_t t_start, t_open, t_closed, t_next, t_flood_end;
  ow_buf in, out;
  size_t out_off;
  ow_buf wsmsg; /* a server WebSocket message being reassembled */
  bool hs_done, closed_by_server, connect_failed, got_http_response;
  uint64_t rx;
  /* protocol replies */
  int errors, err_proto, err_too_large, err_rate, err_auth, err_other;
  int bye;
  uint32_t req;
  uint64_t avatar, seq;
  int flood_sent;
  /* guessing script */
  int guess_kind, guess_left, guess_i;
  int idx;
  char account[40]; /* flooders and victims: the account they register and log in to */
  bool victim;      /* registers and joins, never floods */
} rconn;

static struct {
  int ep;
  OW_VEC(rconn *) all;
  OW_VEC(rconn *) active;
  int open, garbage_open;
  bool flood_go;
  /* Attack connections wait here and start at `rate` per second, so that the attack is a flood
   * and not one burst of thousands of connects in a millisecond. */
  OW_VEC(rconn *) pending;
  size_t pending_head;
  double rate, tokens;
  uint64_t tokens_ns;
} A;

static rconn *new_conn(int kind, uint32_t src) {
  rconn *c = ow_calloc(1, sizeof *c);
  c->kind = kind;
  c->src = src;
  c->fd = -1;
  c->idx = (int)A.all.len;
  ow_buf_init(&c->in);
  ow_buf_init(&c->out);
  ow_buf_init(&c->wsmsg);
  OW_VEC_PUSH(A.all, c);
  return c;
}

static void finish(rconn *c) {
  if (c->st == C_DONE) return;
  if (c->fd >= 0) {
    epoll_ctl(A.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    A.open--;
  }
  if (!c->t_closed) c->t_closed = ow_now_ns();
  if (c->kind <= K_GARBAGE_TEXT) A.garbage_open--;
  c->st = C_DONE;
  ow_buf_deinit(&c->in);
  ow_buf_deinit(&c->out);
  ow_buf_deinit(&c->wsmsg);
}

static void on_readable(rconn *c);

static void flush_out(rconn *c) {
  while (c->fd >= 0 && c->out_off < c->out.len) {
    ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
    if (w > 0) {
      c->out_off += (size_t)w;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    /* The server closed the connection under our feet (that is how it refuses): what it said
     * before, SERVER_BYE included, may still wait to be read. */
    c->out.len = c->out_off = 0;
    on_readable(c);
    c->closed_by_server = true;
    finish(c);
    return;
  }
  if (c->out_off == c->out.len) c->out.len = c->out_off = 0;
}

static void send_bytes(rconn *c, const void *p, size_t n) {
  if (c->st == C_DONE) return;
  ow_buf_put(&c->out, p, n);
  flush_out(c);
}

/* One masked client frame: b0 is FIN/RSV/opcode; `announced` may exceed n (oversize). */
static void ws_frame(rconn *c, uint8_t b0, const uint8_t *p, size_t n, uint64_t announced,
                     bool mask) {
  uint8_t h[14];
  size_t hl = 0;
  h[hl++] = b0;
  uint8_t m = mask ? 0x80 : 0;
  if (announced < 126) {
    h[hl++] = m | (uint8_t)announced;
  } else if (announced < 65536) {
    h[hl++] = m | 126;
    h[hl++] = (uint8_t)(announced >> 8);
    h[hl++] = (uint8_t)announced;
  } else {
    h[hl++] = m | 127;
    for (int i = 7; i >= 0; i--) h[hl++] = (uint8_t)(announced >> (8 * i));
  }
  uint8_t key[4];
  uint64_t r = rnd();
  memcpy(key, &r, 4);
  if (mask)
    for (int i = 0; i < 4; i++) h[hl++] = key[i];
  uint8_t *buf = ow_malloc(hl + n + 1);
  memcpy(buf, h, hl);
  for (size_t i = 0; i < n; i++) buf[hl + i] = mask ? p[i] ^ key[i % 4] : p[i];
  send_bytes(c, buf, hl + n);
  ow_free(buf);
}

static void send_msg(rconn *c, const ow_msg *m) {
  ow_buf b;
  ow_buf_init(&b);
  ow_proto_encode(&b, m);
  ws_frame(c, 0x82, b.data, b.len, b.len, true);
  ow_buf_deinit(&b);
}

static void send_hello(rconn *c) {
  ow_msg m = {.type = OW_MSG_HELLO, .req = ++c->req};
  m.u.hello.version = OW_PROTO_VERSION;
  m.u.hello.client = (ow_str){"abuse", 5};
  send_msg(c, &m);
  c->step = W_WELCOME;
}

static void send_creds(rconn *c, uint8_t type, const char *name, const char *pw) {
  ow_msg m = {.type = type, .req = ++c->req};
  m.u.creds.name = (ow_str){name, strlen(name)};
  m.u.creds.password = (ow_str){pw, strlen(pw)};
  send_msg(c, &m);
}

static const char *const victim1 = "victim-one", *const victim2 = "victim-two";

static void next_guess(rconn *c) {
  char name[40], pw[40];
  snprintf(pw, sizeof pw, "wrong-guess-%d", c->guess_i);
  switch (c->guess_kind) {
  case 1: snprintf(name, sizeof name, "%s", victim1); break;
  case 2: snprintf(name, sizeof name, "%s", victim2); break;
  default: h_name(c->guess_i % R.honest, name, sizeof name); break; /* many accounts */
  }
  c->guess_i++;
  c->guess_left--;
  send_creds(c, OW_MSG_LOGIN, name, pw);
}

static void on_handshake(rconn *c) {
  uint8_t junk[600];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rnd();
  switch (c->kind) {
  case K_GARBAGE_FRAMES:
    if (c->idx % 2) {
      ws_frame(c, (uint8_t)(0x80 | (3 + rnd() % 5)), junk, 10, 10, true); /* reserved opcode */
    } else {
      junk[0] = 0x70 | (junk[0] & 0x0f); /* RSV bits without an extension */
      send_bytes(c, junk, 64);
    }
    break;
  case K_GARBAGE_MSG:
    if (c->idx % 2) {
      send_hello(c);
    } else {
      junk[0] = (uint8_t)(0x40 | (junk[0] & 0x3f)); /* no such message type */
      size_t n = 40 + rnd() % 200;
      ws_frame(c, 0x82, junk, n, n, true);
    }
    break;
  case K_GARBAGE_TEXT: ws_frame(c, 0x81, (const uint8_t *)"hello, server", 13, 13, true); break;
  default: send_hello(c); break;
  }
}

static void on_welcome(rconn *c) {
  uint8_t junk[8192];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rnd();
  switch (c->kind) {
  case K_GARBAGE_MSG:
    junk[0] = (uint8_t)(0x40 | (junk[0] & 0x3f));
    size_t n = 40 + rnd() % 200;
    ws_frame(c, 0x82, junk, n, n, true);
    break;
  case K_OVERSIZE: ws_frame(c, 0x82, junk, sizeof junk, 1u << 20, true); break;
  case K_OVERSIZE_HUGE: ws_frame(c, 0x82, junk, 4096, 1ull << 40, true); break;
  case K_OVERSIZE_FRAG:
    ws_frame(c, 0x02, junk, 2000, 2000, true);
    ws_frame(c, 0x00, junk + 2000, 2000, 2000, true);
    ws_frame(c, 0x80, junk + 4000, 2000, 2000, true);
    break;
  case K_FLOOD_ACTION:
  case K_FLOOD_POSE:
  case K_FLOOD_CHAT: {
    send_creds(c, OW_MSG_REGISTER, c->account, "flood-password");
    c->step = W_REGISTERED;
    break;
  }
  case K_GUESS:
    c->step = W_GUESS;
    next_guess(c);
    break;
  case K_HASHFLOOD: {
    char who[40];
    snprintf(who, sizeof who, "nobody%d-%u", c->idx, (unsigned)(rnd() % 100000));
    send_creds(c, OW_MSG_LOGIN, who, "some-password");
    c->step = W_GUESS;
    break;
  }
  default: break;
  }
}

static void on_msg(rconn *c, const ow_msg *m) {
  switch (m->type) {
  case OW_MSG_WELCOME:
    if (c->step == W_WELCOME) on_welcome(c);
    break;
  case OW_MSG_ERROR: {
    int code = m->u.error.code;
    c->errors++;
    if (code == OW_E_PROTO)
      c->err_proto++;
    else if (code == OW_E_TOO_LARGE)
      c->err_too_large++;
    else if (code == OW_E_RATE)
      c->err_rate++;
    else if (code == OW_E_AUTH)
      c->err_auth++;
    else
      c->err_other++;
    if (c->kind >= K_FLOOD_ACTION && c->kind <= K_FLOOD_CHAT && c->step < W_READY) {
      /* Setting up the flooder: registration meets the job limits like anyone's. */
      c->errors--;
      if (code == OW_E_RATE) { /* retried from tick_conns */
        c->err_rate--;
        c->t_next = ow_now_ns() + 100000000ull;
        return;
      }
      if (code == OW_E_NAME_TAKEN) {
        send_creds(c, OW_MSG_LOGIN, c->account, "flood-password");
        c->step = W_SESSION;
        return;
      }
      fprintf(stderr, "flooder %d: setup error %s\n", c->idx, ow_err_name(code));
    }
    if (c->step == W_GUESS) {
      if (c->guess_left > 0)
        next_guess(c);
      else
        c->step = W_END;
    }
    break;
  }
  case OW_MSG_OK:
    if (c->step == W_REGISTERED) {
      send_creds(c, OW_MSG_LOGIN, c->account, "flood-password");
      c->step = W_SESSION;
    }
    break;
  case OW_MSG_SESSION:
    if (c->step == W_SESSION) {
      c->avatar = m->u.session.avatar;
      c->seq = m->u.session.last_seq;
      ow_msg j = {.type = OW_MSG_JOIN, .req = ++c->req};
      send_msg(c, &j);
      c->step = W_JOINED;
    } else if (c->step == W_GUESS) {
      c->err_other++; /* a guess that got in: must never happen */
      c->step = W_END;
    }
    break;
  case OW_MSG_JOINED:
    if (c->step == W_JOINED) c->step = W_READY;
    break;
  case OW_MSG_SERVER_BYE: c->bye = m->u.bye.reason; break;
  default: break;
  }
}

/* Parses what the server sent: the HTTP response to the handshake, then WebSocket frames. */
static void parse_in(rconn *c) {
  if (!c->hs_done) {
    if (c->in.len >= 5 && !memcmp(c->in.data, "HTTP/", 5)) c->got_http_response = true;
    uint8_t *end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
    if (!end) return;
    size_t hl = (size_t)(end - c->in.data) + 4;
    bool upgraded = c->in.len > 12 && !memcmp(c->in.data + 9, "101", 3);
    memmove(c->in.data, c->in.data + hl, c->in.len - hl);
    c->in.len -= hl;
    if (!upgraded) return; /* refused: the server closes */
    c->hs_done = true;
    c->t_open = ow_now_ns();
    on_handshake(c);
    if (c->st == C_DONE) return;
  }
  size_t off = 0;
  while (c->in.len - off >= 2) {
    const uint8_t *p = c->in.data + off;
    size_t avail = c->in.len - off;
    uint8_t op = p[0] & 0x0f;
    bool fin = p[0] & 0x80;
    uint64_t len = p[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = ((uint64_t)p[2] << 8) | p[3];
      hl = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
      hl = 10;
    }
    if (avail < hl + len) break;
    if (op == 2 || op == 0) {
      ow_buf_put(&c->wsmsg, p + hl, (size_t)len);
      if (fin) {
        size_t mo = 0;
        while (mo < c->wsmsg.len) {
          ow_msg m;
          size_t used;
          char err[160];
          if (ow_proto_decode(c->wsmsg.data + mo, c->wsmsg.len - mo, &used, &m, err, sizeof err)) {
            fprintf(stderr, "attack conn %d: undecodable server message: %s\n", c->idx, err);
            c->err_other++;
            break;
          }
          on_msg(c, &m);
          if (c->st == C_DONE) return;
          mo += used;
        }
        c->wsmsg.len = 0;
      }
    }
    off += hl + (size_t)len;
  }
  if (off) {
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
  }
}

static void on_readable(rconn *c) {
  uint8_t buf[65536];
  for (;;) {
    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
    if (r > 0) {
      c->rx += (uint64_t)r;
      /* Kinds that only wait for the close do not keep what they read. */
      if (c->kind == K_GARBAGE_HTTP || c->kind == K_SLOWLORIS || c->kind == K_HALFOPEN ||
          c->kind == K_OVERSIZE_HDR) {
        if (r >= 5 && !memcmp(buf, "HTTP/", 5)) c->got_http_response = true;
        continue;
      }
      ow_buf_put(&c->in, buf, (size_t)r);
      parse_in(c);
      if (c->st == C_DONE) return;
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    c->closed_by_server = true; /* EOF or reset */
    finish(c);
    return;
  }
}

static const char *const handshake =
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static void on_connected(rconn *c) {
  c->t_open = ow_now_ns();
  switch (c->kind) {
  case K_GARBAGE_HTTP: {
    uint8_t junk[512];
    size_t n = 64 + rnd() % 448;
    for (size_t i = 0; i < n; i++) junk[i] = (uint8_t)rnd();
    junk[0] |= 0x80; /* never a method name */
    send_bytes(c, junk, n);
    break;
  }
  case K_SLOWLORIS: {
    const char *part = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
    send_bytes(c, part, strlen(part));
    c->t_next = ow_now_ns() + 500000000ull;
    break;
  }
  case K_HALFOPEN: break;
  case K_OVERSIZE_HDR: {
    size_t n = 65536;
    char *req = ow_malloc(n + 256);
    int k = snprintf(req, 256, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ");
    memset(req + k, 'a', n);
    memcpy(req + k + n, "\r\n\r\n", 4);
    send_bytes(c, req, (size_t)k + n + 4);
    ow_free(req);
    break;
  }
  default:
    c->step = W_HANDSHAKE;
    send_bytes(c, handshake, strlen(handshake));
    break;
  }
}

static void start_conn(rconn *c) {
  c->t_start = ow_now_ns();
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) die("socket() failed: raise ulimit -n");
  int one = 1;
  setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in src = {.sin_family = AF_INET};
  src.sin_addr.s_addr = htonl(c->src);
  if (bind(c->fd, (struct sockaddr *)&src, sizeof src)) die("bind to a loopback address failed");
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  A.open++;
  c->st = C_CONNECTING;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
  epoll_ctl(A.ep, EPOLL_CTL_ADD, c->fd, &ev);
  if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) && errno != EINPROGRESS) {
    c->connect_failed = true;
    finish(c);
    return;
  }
  OW_VEC_PUSH(A.active, c);
}

static void on_event(rconn *c, uint32_t ev) {
  if (c->st == C_CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
      c->connect_failed = true;
      finish(c);
      return;
    }
    c->st = C_OPEN;
    on_connected(c);
  }
  if (c->st == C_DONE) return;
  if (ev & EPOLLOUT) flush_out(c);
  if (c->st == C_DONE) return;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
}

/* Timers of the active connections: trickling, floods, retries, ends of scripts. */
static void tick_conns(uint64_t now) {
  size_t keep = 0;
  for (size_t i = 0; i < A.active.len; i++) {
    rconn *c = A.active.v[i];
    if (c->st == C_DONE) continue;
    A.active.v[keep++] = c;
    if (c->st != C_OPEN) continue;
    if (c->kind == K_SLOWLORIS && now >= c->t_next) {
      send_bytes(c, "X", 1);
      c->t_next = now + 500000000ull;
    }
    if (c->kind >= K_FLOOD_ACTION && c->kind <= K_FLOOD_CHAT) {
      if (c->step < W_READY && c->t_next && now >= c->t_next) { /* retry the refused step */
        c->t_next = 0;
        send_creds(c, c->step == W_REGISTERED ? OW_MSG_REGISTER : OW_MSG_LOGIN, c->account,
                   "flood-password");
      }
      if (c->step == W_READY && A.flood_go && !c->victim) {
        c->step = W_FLOOD;
        c->t_flood_end = now + 10000000000ull;
      }
      if (c->step == W_FLOOD && c->bye) c->step = W_END;
      if (c->step == W_FLOOD && c->out.len < (256u << 10)) {
        ow_buf b;
        ow_buf_init(&b);
        int batch = c->kind == K_FLOOD_ACTION ? 10 : c->kind == K_FLOOD_POSE ? 15 : 3;
        for (int k = 0; k < batch; k++) {
          ow_msg m;
          memset(&m, 0, sizeof m);
          if (c->kind == K_FLOOD_ACTION) {
            m.type = OW_MSG_ACTION;
            m.req = ++c->req;
            m.u.action.seq = ++c->seq;
            m.u.action.action.type = OW_ACT_MOVE;
            m.u.action.action.target = c->avatar;
            m.u.action.action.xf.pos[0] = 20 + (float)(rnd() % 100) / 100.0f;
            m.u.action.action.xf.rot[3] = 1;
            m.u.action.action.xf.scale[0] = m.u.action.action.xf.scale[1] =
                m.u.action.action.xf.scale[2] = 1;
          } else if (c->kind == K_FLOOD_POSE) {
            m.type = OW_MSG_POSE;
            float q[4] = {0, 0, 0, 1};
            m.u.pose.root[0] = 20000 + (int32_t)(rnd() % 1000);
            m.u.pose.root_rot = ow_quat_pack(q);
          } else {
            m.type = OW_MSG_CHAT;
            m.req = ++c->req;
            m.u.chat.text = (ow_str){"spam spam spam", 14};
          }
          ow_proto_encode(&b, &m);
          c->flood_sent++;
        }
        ws_frame(c, 0x82, b.data, b.len, b.len, true);
        ow_buf_deinit(&b);
      }
    }
    if (c->st == C_DONE) continue;
    /* Scripts that are over close the connection themselves. */
    if (c->step == W_END && (c->kind == K_GUESS || c->kind == K_HASHFLOOD))
      finish(c);
    else if (c->step == W_GUESS && c->kind == K_HASHFLOOD && c->errors)
      finish(c);
  }
  A.active.len = keep;
}

static void queue_conn(rconn *c) { OW_VEC_PUSH(A.pending, c); }

static size_t pending_len(void) { return A.pending.len - A.pending_head; }

static void start_pending(uint64_t now) {
  A.tokens += (double)(now - A.tokens_ns) / 1e9 * A.rate;
  if (A.tokens > 20) A.tokens = 20;
  A.tokens_ns = now;
  while (A.tokens >= 1 && pending_len()) {
    A.tokens -= 1;
    start_conn(A.pending.v[A.pending_head++]);
  }
}

static void spawn(int kind, int n, uint32_t src_base, int nsrc) {
  for (int i = 0; i < n; i++) queue_conn(new_conn(kind, src_base + (uint32_t)(i % nsrc)));
}

/* Runs the engine for up to `ms_` milliseconds. */
static void pump(int ms_) {
  struct epoll_event ev[256];
  int n = epoll_wait(A.ep, ev, 256, ms_);
  for (int i = 0; i < n; i++) on_event(ev[i].data.ptr, ev[i].events);
  uint64_t now = ow_now_ns();
  start_pending(now);
  tick_conns(now);
}

#define IP(a, b, c, d)                                                                             \
  (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

/* ---- main --------------------------------------------------------------------------------------
 */

typedef struct tally {
  int conns, closed, timeout, connect_failed, proto_bye, err_proto, err_too_large, err_rate,
      bye_rate;
  int http_response, refused_at_accept, other;
  double max_close_ms;
} tally;

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fprintf(
        stderr,
        "usage: abuse SERVER_BINARY [--quick]\n"
        "Starts SERVER_BINARY on a free loopback port, lets 50 players play and attacks it\n"
        "(garbage, slowloris, oversize, floods, password guessing); prints key=value figures\n"
        "and exits 1 if any check fails. --quick: fewer attack connections (sanitizers).\n"
        "Environment: OW_ABUSE_RATE (attack connections per second, 1000), OW_ABUSE_TIMELINE=1,\n"
        "OW_ABUSE_ONLY=gsofp, OW_ABUSE_KEEP=1 (see tests/abuse/abuse.c).\n");
    return argc < 2 ? 2 : 0;
  }
  R.quick = argc > 2 && !strcmp(argv[2], "--quick");
  R.honest = 50;
  R.garbage_http = R.quick ? 400 : 2000;
  R.garbage_frames = R.quick ? 200 : 1000;
  R.garbage_msgs = R.quick ? 300 : 1500;
  R.garbage_text = R.quick ? 100 : 500;
  R.slow_one_addr = R.quick ? 100 : 150;
  R.slow_spread = R.quick ? 40 : 100;
  R.oversize_each = R.quick ? 10 : 30;
  R.floods_each = R.quick ? 2 : 3;
  R.hashflood_addrs = 40;

  /* Thousands of sockets on both ends: the server inherits the limit. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  /* At the peak about 1,100 sockets are open on each side (600 garbage, 250 slowloris, the
   * players, the floods); the server clamps max_conns to its limit. */
  if (rl.rlim_cur < 2048) die("ulimit -n (hard) is below 2048");
  signal(SIGPIPE, SIG_IGN);
  if (!mkdtemp(dir)) die("mkdtemp");
  start_server(argv[1]);
  fprintf(stderr, "abuse: server pid %d port %d dir %s%s\n", (int)server, port, dir,
          R.quick ? " (quick)" : "");
  char st[8192];

  /* 1. Setup: honest players join; flooders register, log in and join; victims exist. */
  uint64_t t_setup = ow_now_ns();
  H.p = calloc((size_t)R.honest, sizeof *H.p);
  pthread_t ht;
  pthread_create(&ht, NULL, honest_thread, NULL);
  A.ep = epoll_create1(0);
  rconn *victims[2];
  for (int v = 0; v < 2; v++) { /* they register like flooders, and leave before the attack */
    victims[v] = new_conn(K_FLOOD_CHAT, IP(127, 0, 0, 30 + v));
    victims[v]->victim = true;
    snprintf(victims[v]->account, sizeof victims[v]->account, "%s", v ? victim2 : victim1);
    start_conn(victims[v]);
  }
  int nflood = 3 * R.floods_each;
  for (int i = 0; i < nflood; i++) {
    rconn *c = new_conn(K_FLOOD_ACTION + i % 3, IP(127, 0, 0, 20 + i));
    snprintf(c->account, sizeof c->account, "flood%d", i);
    start_conn(c);
  }
  for (;;) {
    pump(5);
    int ready = 0;
    for (size_t i = 0; i < A.all.len; i++) ready += A.all.v[i]->step == W_READY;
    if (atomic_load(&H.joined) == R.honest && ready == (int)A.all.len) break;
    if (ow_now_ns() - t_setup > 60000000000ull) die("setup did not finish in 60 s");
  }
  fprintf(stderr, "abuse: setup done in %.1f s\n", ms(ow_now_ns() - t_setup) / 1e3);
  finish(victims[0]);
  finish(victims[1]);

  /* Baseline: players playing, flooders idle in the world. */
  for (uint64_t until = ow_now_ns() + 1500000000ull; ow_now_ns() < until;) pump(5);
  if (!get_status(st, sizeof st)) die("/status does not answer before the attack");
  double mem_base = field(st, "mem_bytes"), tcp_base = field(st, "tcp_open");
  /* Honest players registering 50 at once from one address met pwhash_per_addr already. */
  double pw_addr_base = field(st, "pwhash_refused_addr"),
         pw_busy_base = field(st, "pwhash_refused_busy");
  long rss_base = rss_kb();

  /* 2. The attack: new connections at OW_ABUSE_RATE per second (default 1,000). */
  A.rate = getenv("OW_ABUSE_RATE") ? atof(getenv("OW_ABUSE_RATE")) : 1000;
  if (A.rate < 1) A.rate = 1000;
  A.tokens_ns = ow_now_ns();
  double server_cpu0 = server_cpu_s(), self_cpu0 = self_cpu_s();
  uint64_t t0 = ow_now_ns();
  int status_polls = 0, status_fail = 0;
  uint64_t next_status = t0 + 1000000000ull;
  double mem_peak = mem_base;
  long rss_peak = rss_base;
  /* Guessing: one account from one address; one account from ten; many accounts from one. */
  rconn *g1 = new_conn(K_GUESS, IP(127, 0, 0, 40));
  g1->guess_kind = 1;
  g1->guess_left = 30;
  rconn *g3 = new_conn(K_GUESS, IP(127, 0, 0, 41));
  g3->guess_kind = 3;
  g3->guess_left = 40;
  rconn *g2[10];
  for (int i = 0; i < 10; i++) {
    g2[i] = new_conn(K_GUESS, IP(127, 0, 0, 50 + i));
    g2[i]->guess_kind = 2;
    g2[i]->guess_left = 3;
  }
  /* OW_ABUSE_ONLY=gsofp (garbage, slowloris, oversize, floods, passwords) runs a part, to find
   * what costs the players what; the checks then fail for the parts left out. */
  const char *only = getenv("OW_ABUSE_ONLY");
  bool do_g = !only || strchr(only, 'g'), do_s = !only || strchr(only, 's'),
       do_o = !only || strchr(only, 'o');
  bool do_f = !only || strchr(only, 'f'), do_p = !only || strchr(only, 'p');
  if (!do_g) garbage_skip = true;
  for (size_t i = 0; !do_f && i < A.all.len; i++)
    if (A.all.v[i]->kind >= K_FLOOD_ACTION && A.all.v[i]->kind <= K_FLOOD_CHAT) finish(A.all.v[i]);
  if (do_p) {
    queue_conn(g1);
    queue_conn(g3);
    for (int i = 0; i < 10; i++) queue_conn(g2[i]);
  } else {
    g1->st = g3->st = C_DONE;
    for (int i = 0; i < 10; i++) g2[i]->st = C_DONE;
  }
  int garbage_total =
      garbage_skip ? 0 : R.garbage_http + R.garbage_frames + R.garbage_msgs + R.garbage_text;
  int garbage_started = 0;
  bool slow_started = false, over_started = false, hash_started = false;
  size_t hash_first = 0;
  for (;;) {
    uint64_t now = ow_now_ns();
    double t = ms(now - t0) / 1e3;
    /* Garbage: up to 600 open at once, from 100 addresses, queued a few at a time so that the
     * other attacks interleave with it. */
    while (garbage_started < garbage_total && A.garbage_open < 600 && pending_len() < 10) {
      int g = garbage_started++;
      int kind = g % 10 < 4   ? K_GARBAGE_HTTP
                 : g % 10 < 6 ? K_GARBAGE_FRAMES
                 : g % 10 < 9 ? K_GARBAGE_MSG
                              : K_GARBAGE_TEXT;
      A.garbage_open++;
      queue_conn(new_conn(kind, IP(127, 0, 1, 1 + g % 100)));
    }
    if (!slow_started && t >= 0.5) {
      slow_started = true;
      if (do_s) {
        spawn(K_SLOWLORIS, R.slow_one_addr / 2, IP(127, 0, 0, 3), 1);
        spawn(K_HALFOPEN, R.slow_one_addr - R.slow_one_addr / 2, IP(127, 0, 0, 3), 1);
        spawn(K_SLOWLORIS, R.slow_spread / 2, IP(127, 0, 2, 1), R.slow_spread);
        spawn(K_HALFOPEN, R.slow_spread - R.slow_spread / 2, IP(127, 0, 2, 101), R.slow_spread);
      }
    }
    if (!over_started && t >= 1.0) {
      over_started = true;
      if (do_o) {
        spawn(K_OVERSIZE, R.oversize_each, IP(127, 0, 3, 1), R.oversize_each);
        spawn(K_OVERSIZE_HUGE, R.oversize_each, IP(127, 0, 3, 101), R.oversize_each);
        spawn(K_OVERSIZE_FRAG, R.oversize_each, IP(127, 0, 4, 1), R.oversize_each);
        spawn(K_OVERSIZE_HDR, R.oversize_each / 2, IP(127, 0, 4, 101), R.oversize_each);
      }
    }
    if (!A.flood_go && t >= 1.5 && do_f) A.flood_go = true;
    bool guesses_done = g1->st == C_DONE && g3->st == C_DONE;
    for (int i = 0; i < 10; i++) guesses_done &= g2[i]->st == C_DONE;
    if (!hash_started && guesses_done) {
      hash_started = true;
      hash_first = A.all.len;
      if (do_p) /* Address by address: each sends pwhash_per_addr + 1 LOGINs in a row. */
        for (int i = 0; i < R.hashflood_addrs * (PWHASH_PER_ADDR + 1); i++)
          queue_conn(
              new_conn(K_HASHFLOOD, IP(127, 0, 5, 1) + (uint32_t)(i / (PWHASH_PER_ADDR + 1))));
    }
    pump(2);
    if (now >= next_status) {
      next_status = now + 1000000000ull;
      status_polls++;
      if (!get_status(st, sizeof st)) {
        status_fail++;
      } else {
        if (field(st, "mem_bytes") > mem_peak) mem_peak = field(st, "mem_bytes");
      }
      long r = rss_kb();
      if (r > rss_peak) rss_peak = r;
    }
    bool all_done = garbage_started == garbage_total && slow_started && over_started &&
                    hash_started && !pending_len();
    for (size_t i = 0; all_done && i < A.all.len; i++) all_done = A.all.v[i]->st == C_DONE;
    if (all_done) break;
    if (t > 45) break; /* whatever is still open is reported as a timeout below */
  }
  uint64_t t1 = ow_now_ns();
  double attack_s = ms(t1 - t0) / 1e3;
  double server_cpu = server_cpu_s() - server_cpu0, self_cpu = self_cpu_s() - self_cpu0;
  for (size_t i = 0; i < A.all.len; i++)
    if (A.all.v[i]->st != C_DONE) A.all.v[i]->t_closed = 0, finish(A.all.v[i]);

  /* 3. After the attack: players keep playing; the server's connections and heap settle. */
  double mem_after = -1, tcp_after = -1;
  for (int i = 0; i < 50; i++) {
    usleep(200000);
    if (!get_status(st, sizeof st)) continue;
    tcp_after = field(st, "tcp_open");
    mem_after = field(st, "mem_bytes");
    if (tcp_after <= tcp_base && i >= 5) break;
  }
  long rss_after = rss_kb();
  char final_status[8192];
  bool final_ok = get_status(final_status, sizeof final_status);
  atomic_store(&H.stop, 1);
  pthread_join(ht, NULL);

  /* 4. Tallies and checks. */
  tally k[K_NKINDS];
  memset(k, 0, sizeof k);
  int g1_auth = g1->err_auth, g1_rate = g1->err_rate, g3_auth = g3->err_auth,
      g3_rate = g3->err_rate;
  int g2_auth = 0, g2_rate = 0, g_other = g1->err_other + g3->err_other;
  for (int i = 0; i < 10; i++) {
    g2_auth += g2[i]->err_auth;
    g2_rate += g2[i]->err_rate;
    g_other += g2[i]->err_other;
  }
  int hash_auth = 0, hash_rate = 0, hash_other = 0, slow_refused_one = 0, slow_held_one = 0;
  for (size_t i = 0; i < A.all.len; i++) {
    rconn *c = A.all.v[i];
    tally *t = &k[c->kind];
    if (c == victims[0] || c == victims[1]) continue;
    t->conns++;
    double close_ms = c->t_closed ? ms(c->t_closed - c->t_start) : -1;
    if (c->connect_failed) t->connect_failed++;
    if (c->closed_by_server) t->closed++;
    if (!c->t_closed) t->timeout++;
    if (close_ms > t->max_close_ms) t->max_close_ms = close_ms;
    if (c->bye == OW_BYE_PROTOCOL) t->proto_bye++;
    if (c->bye == OW_BYE_RATE) t->bye_rate++;
    t->err_proto += c->err_proto > 0;
    t->err_too_large += c->err_too_large > 0;
    t->err_rate += c->err_rate;
    t->http_response += c->got_http_response;
    t->other += c->err_other;
    if (c->kind == K_HASHFLOOD && i >= hash_first) {
      hash_auth += c->err_auth;
      hash_rate += c->err_rate;
      hash_other += c->err_other + (c->err_auth + c->err_rate != 1);
    }
    if ((c->kind == K_SLOWLORIS || c->kind == K_HALFOPEN) && c->src == IP(127, 0, 0, 3)) {
      /* Refused at accept: closed at once, long before the handshake timeout. */
      if (c->closed_by_server && close_ms >= 0 && close_ms < 1000 * HANDSHAKE_TIMEOUT_S / 2)
        slow_refused_one++;
      else
        slow_held_one++;
    }
  }

  /* Honest players. */
  uint64_t sent = 0, ok = 0, bad = 0, dur = 0;
  for (int i = 0; i < R.honest; i++) {
    sent += H.p[i].sent;
    ok += H.p[i].applied_ok;
    bad += H.p[i].applied_bad;
    dur += H.p[i].durable;
  }
  size_t n_attack = 0, n_all = 0;
  double a50 = pct(&H.applied, t0, t1, 0.50, &n_attack), a99 = pct(&H.applied, t0, t1, 0.99, NULL);
  double a999 = pct(&H.applied, t0, t1, 0.999, NULL);
  double d50 = pct(&H.durable, t0, t1, 0.50, NULL), d99 = pct(&H.durable, t0, t1, 0.99, NULL);
  double all99 = pct(&H.applied, 0, UINT64_MAX, 0.99, &n_all);

  printf("quick=%d\n", R.quick);
  printf("attack_s=%.1f\n", attack_s);
  printf("attack_conns_per_s=%.0f\n", A.rate);
  printf("machine_cores=%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
  /* Of one core, over the attack: the server with its argon2 thread; this program (honest players
   * and attackers) shares the same cores. */
  printf("server_cpu_attack_pct=%.1f\n", server_cpu / attack_s * 100);
  printf("harness_cpu_attack_pct=%.1f\n", self_cpu / attack_s * 100);
  printf("honest_players=%d\n", R.honest);
  printf("honest_actions=%llu\n", (unsigned long long)sent);
  printf("honest_actions_during_attack=%zu\n", n_attack);
  printf("honest_applied_p50_ms=%.3f\n", a50);
  printf("honest_applied_p99_ms=%.3f\n", a99);
  printf("honest_applied_p999_ms=%.3f\n", a999);
  printf("honest_applied_p99_whole_run_ms=%.3f\n", all99);
  if (getenv("OW_ABUSE_TIMELINE")) {
    for (size_t i = 0; i < A.all.len; i++) {
      rconn *c = A.all.v[i];
      if (c->kind == K_GARBAGE_FRAMES && c->t_closed && c->t_closed - c->t_start > 1000000000ull)
        fprintf(stderr, "slow close: garbage_frames variant %d after %.0f ms rx=%llu\n", c->idx % 2,
                ms(c->t_closed - c->t_start), (unsigned long long)c->rx);
    } /* the honest applied latency second by second */
    for (uint64_t b = t0 - 2000000000ull; b < t1 + 1000000000ull; b += 1000000000ull) {
      size_t nb;
      double p50 = pct(&H.applied, b, b + 1000000000ull, 0.5, &nb);
      double mx = pct(&H.applied, b, b + 1000000000ull, 1.0, NULL);
      fprintf(stderr, "timeline t=%+.0f n=%zu p50=%.2f max=%.2f\n", ((double)b - (double)t0) / 1e9,
              nb, p50, mx);
    }
  }
  printf("honest_durable_p50_ms=%.3f\n", d50);
  printf("honest_durable_p99_ms=%.3f\n", d99);
  printf("honest_applied=%llu\n", (unsigned long long)ok);
  printf("honest_applied_with_error=%llu\n", (unsigned long long)bad);
  printf("honest_durable=%llu\n", (unsigned long long)dur);
  printf("honest_errors=%llu\n", (unsigned long long)H.errors);
  printf("honest_server_byes=%llu\n", (unsigned long long)H.byes);
  printf("honest_disconnects=%llu\n", (unsigned long long)H.disconnects);
  printf("honest_setup_rate_retries=%llu\n", (unsigned long long)H.register_retries);
  int garbage_closed = k[K_GARBAGE_HTTP].closed + k[K_GARBAGE_FRAMES].closed +
                       k[K_GARBAGE_MSG].closed + k[K_GARBAGE_TEXT].closed;
  printf("garbage_conns=%d\n", garbage_started);
  printf("garbage_closed_by_server=%d\n", garbage_closed);
  for (int i = 0; i < K_NKINDS; i++) {
    if (!k[i].conns || i == K_GUESS || i == K_HASHFLOOD) continue;
    printf("%s_conns=%d %s_closed_by_server=%d %s_max_close_ms=%.0f", kind_name[i], k[i].conns,
           kind_name[i], k[i].closed, kind_name[i], k[i].max_close_ms);
    if (k[i].proto_bye) printf(" %s_bye_protocol=%d", kind_name[i], k[i].proto_bye);
    if (k[i].err_too_large) printf(" %s_error_too_large=%d", kind_name[i], k[i].err_too_large);
    if (k[i].err_rate) printf(" %s_error_rate=%d", kind_name[i], k[i].err_rate);
    if (k[i].bye_rate) printf(" %s_bye_rate=%d", kind_name[i], k[i].bye_rate);
    if (k[i].timeout) printf(" %s_not_closed=%d", kind_name[i], k[i].timeout);
    printf("\n");
  }
  printf("slowloris_one_addr_conns=%d slowloris_one_addr_refused_at_accept=%d "
         "slowloris_one_addr_held=%d\n",
         R.slow_one_addr, slow_refused_one, slow_held_one);
  printf("guess_one_account_one_addr=%d auth=%d rate=%d\n", 30, g1_auth, g1_rate);
  printf("guess_one_account_ten_addrs=%d auth=%d rate=%d\n", 30, g2_auth, g2_rate);
  printf("guess_many_accounts_one_addr=%d auth=%d rate=%d\n", 40, g3_auth, g3_rate);
  printf("hashflood_conns=%d auth=%d rate=%d\n", k[K_HASHFLOOD].conns, hash_auth, hash_rate);
  printf("login_refused_rate=%d\n", g1_rate + g2_rate + g3_rate + hash_rate);
  printf("status_polls=%d status_failed=%d\n", status_polls, status_fail);
  printf("server_mem_baseline_bytes=%.0f server_mem_peak_bytes=%.0f server_mem_after_bytes=%.0f\n",
         mem_base, mem_peak, mem_after);
  printf("server_rss_baseline_kb=%ld server_rss_peak_kb=%ld server_rss_after_kb=%ld\n", rss_base,
         rss_peak, rss_after);
  printf("server_tcp_open_baseline=%.0f server_tcp_open_after=%.0f\n", tcp_base, tcp_after);
  if (final_ok) {
    static const char *const keys[] = {"tcp_accepted",
                                       "conns_refused_addr",
                                       "conns_refused_total",
                                       "oversize",
                                       "protocol_errors",
                                       "rate_limited",
                                       "rate_kicks",
                                       "logins_failed",
                                       "login_refused_account",
                                       "login_refused_addr",
                                       "pwhash_refused_addr",
                                       "pwhash_refused_busy",
                                       "too_slow"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
      printf("server_%s=%.0f\n", keys[i], field(final_status, keys[i]));
  }
  fflush(stdout);

  /* Honest players: never disconnected, every action applied and durable. */
  check(H.disconnects == 0, "honest players disconnected: %llu", (unsigned long long)H.disconnects);
  check(H.byes == 0, "honest players got SERVER_BYE: %llu (last reason %u)",
        (unsigned long long)H.byes, H.last_bye);
  check(H.errors == 0, "honest players got errors: %llu", (unsigned long long)H.errors);
  check(sent > 0 && ok == sent && bad == 0,
        "honest actions: sent %llu applied ok %llu with error %llu", (unsigned long long)sent,
        (unsigned long long)ok, (unsigned long long)bad);
  check(dur == sent, "honest actions durable: %llu of %llu", (unsigned long long)dur,
        (unsigned long long)sent);
  check(n_attack > 0, "no honest action during the attack");
  /* Garbage: every connection closed by the server; protocol garbage told why. */
  check(garbage_started == garbage_total, "garbage connections started: %d", garbage_started);
  check(garbage_closed == garbage_total, "garbage connections closed by the server: %d of %d",
        garbage_closed, garbage_total);
  check(k[K_GARBAGE_MSG].proto_bye == k[K_GARBAGE_MSG].conns &&
            k[K_GARBAGE_MSG].err_proto == k[K_GARBAGE_MSG].conns,
        "garbage messages: ERROR OW_E_PROTO %d, SERVER_BYE PROTOCOL %d of %d",
        k[K_GARBAGE_MSG].err_proto, k[K_GARBAGE_MSG].proto_bye, k[K_GARBAGE_MSG].conns);
  check(k[K_GARBAGE_TEXT].proto_bye == k[K_GARBAGE_TEXT].conns &&
            k[K_GARBAGE_TEXT].err_proto == k[K_GARBAGE_TEXT].conns,
        "text messages: ERROR OW_E_PROTO %d, SERVER_BYE PROTOCOL %d of %d",
        k[K_GARBAGE_TEXT].err_proto, k[K_GARBAGE_TEXT].proto_bye, k[K_GARBAGE_TEXT].conns);
  /* Slowloris: closed by the handshake timeout, or at accept past the per-address limit. */
  for (int i = K_SLOWLORIS; i <= K_HALFOPEN; i++) {
    check(k[i].closed == k[i].conns, "%s: closed by the server %d of %d", kind_name[i], k[i].closed,
          k[i].conns);
    check(k[i].max_close_ms < 1000.0 * (HANDSHAKE_TIMEOUT_S + 3), "%s: a connection lived %.0f ms",
          kind_name[i], k[i].max_close_ms);
  }
  check(slow_refused_one >= R.slow_one_addr - MAX_CONNS_PER_ADDR &&
            slow_held_one <= MAX_CONNS_PER_ADDR,
        "one address: %d refused at accept, %d held (limit %d)", slow_refused_one, slow_held_one,
        MAX_CONNS_PER_ADDR);
  /* Oversize: ERROR OW_E_TOO_LARGE, SERVER_BYE PROTOCOL, closed; a huge header is closed. */
  for (int i = K_OVERSIZE; i <= K_OVERSIZE_FRAG; i++)
    check(k[i].conns == R.oversize_each && k[i].err_too_large == k[i].conns &&
              k[i].proto_bye == k[i].conns && k[i].closed == k[i].conns,
          "%s: %d conns, ERROR TOO_LARGE %d, BYE PROTOCOL %d, closed %d", kind_name[i], k[i].conns,
          k[i].err_too_large, k[i].proto_bye, k[i].closed);
  check(k[K_OVERSIZE_HDR].closed == k[K_OVERSIZE_HDR].conns,
        "oversized HTTP headers: closed %d of %d", k[K_OVERSIZE_HDR].closed,
        k[K_OVERSIZE_HDR].conns);
  /* Floods: refused with OW_E_RATE, then SERVER_BYE RATE. */
  for (int i = K_FLOOD_ACTION; i <= K_FLOOD_CHAT; i++)
    check(k[i].conns == R.floods_each && k[i].err_rate > 0 && k[i].bye_rate == k[i].conns &&
              k[i].closed == k[i].conns,
          "%s: %d conns, ERROR RATE %d, BYE RATE %d, closed %d", kind_name[i], k[i].conns,
          k[i].err_rate, k[i].bye_rate, k[i].closed);
  /* Guessing: exactly the allowed failures, then OW_E_RATE without a password check. */
  check(g1_auth == LOGIN_FAILS_ACCOUNT && g1_rate == 30 - LOGIN_FAILS_ACCOUNT,
        "one account, one address: %d OW_E_AUTH, %d OW_E_RATE", g1_auth, g1_rate);
  check(g2_auth == LOGIN_FAILS_ACCOUNT && g2_rate == 30 - LOGIN_FAILS_ACCOUNT,
        "one account, ten addresses: %d OW_E_AUTH, %d OW_E_RATE", g2_auth, g2_rate);
  check(g3_auth == LOGIN_FAILS_ADDR && g3_rate == 40 - LOGIN_FAILS_ADDR,
        "many accounts, one address: %d OW_E_AUTH, %d OW_E_RATE", g3_auth, g3_rate);
  check(g_other == 0, "guesses got other errors or got in: %d", g_other);
  check(hash_other == 0 && hash_rate > 0 && hash_auth > 0,
        "LOGIN flood: %d OW_E_AUTH, %d OW_E_RATE, %d other", hash_auth, hash_rate, hash_other);
  /* The addresses of the LOGIN flood that come before the queue is full have one LOGIN more than
   * pwhash_per_addr (about 64 / 4 of them); the rest find the queue full (pwhash_jobs +
   * pwhash_queue is at most 4 + 64, far below 200). */
  double pw_addr = field(final_status, "pwhash_refused_addr") - pw_addr_base;
  double pw_busy = field(final_status, "pwhash_refused_busy") - pw_busy_base;
  printf("hashflood_refused_per_addr=%.0f hashflood_refused_busy=%.0f\n", pw_addr, pw_busy);
  check(final_ok && pw_addr >= 4 && pw_busy > 0,
        "argon2 job limits: %.0f refusals per address, %.0f for a full queue", pw_addr, pw_busy);
  check(final_ok &&
            field(final_status, "login_refused_account") >= 2 * (30 - LOGIN_FAILS_ACCOUNT) &&
            field(final_status, "login_refused_addr") >= 40 - LOGIN_FAILS_ADDR,
        "login limits: refusals per account and per address expected");
  /* The server stayed up and answered; its connections and heap came back. */
  check(status_fail == 0 && status_polls > 0, "/status failed %d of %d polls", status_fail,
        status_polls);
  check(tcp_after >= 0 && tcp_after <= tcp_base,
        "server TCP connections after: %.0f (baseline %.0f)", tcp_after, tcp_base);
  check(mem_after >= 0 && mem_after <= mem_base + 2.0 * 1024 * 1024,
        "server heap after the attack %.0f bytes, baseline %.0f", mem_after, mem_base);
  /* Resident memory also holds what the allocator keeps for reuse, so the bound is loose; under
   * the sanitizers (--quick) freed memory sits in ASan's quarantine and is not checked. */
  check(R.quick || rss_after <= rss_base + 64 * 1024,
        "server RSS after the attack %ld kB, baseline %ld kB", rss_after, rss_base);

  kill(server, SIGTERM);
  int status;
  waitpid(server, &status, 0);
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server did not exit 0 on SIGTERM");
  server = -1;
  if (failures) {
    fprintf(stderr, "abuse: %d check(s) failed; server log kept in %s\n", failures, dir);
    return 1;
  }
  if (getenv("OW_ABUSE_KEEP")) { /* the server's log stays, for reading */
    fprintf(stderr, "abuse: server log kept in %s\n", dir);
  } else {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
  }
  printf("abuse_loopback: passed\n");
  return 0;
}
