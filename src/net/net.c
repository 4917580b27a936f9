/* net: libwebsockets server on a foreign libuv loop: the WebSocket transport (an ow_conn
 * implementation) and the HTTP router. See net.h and net/conn.h. */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>

/* /status is answered from a copy at most this old: building it sorts the loop's latency
 * samples, and a client polling it in a loop must not be able to stall the world. */
#define STATUS_REUSE_NS 100000000ull
/* A connection closed after its last message (SERVER_BYE) waits this long for the peer to close
 * (see LWS_CALLBACK_SERVER_WRITEABLE). */
#define LINGER_S 2
/* A peer that sends this much more meanwhile is not listening: the rest is left unread (and
 * costs nothing) until LINGER_S is over. */
#define LINGER_MAX_RX (64u * 1024u)
/* How long a request may wait for its asynchronous reply when its route does not say. */
#define REPLY_TIMEOUT_S 30
/* Descriptors kept free for the store, the log and the loop when max_conns is clamped. */
#define FD_RESERVE 64

typedef struct out_msg {
  struct out_msg *next;
  size_t len, cap;
  uint8_t data[]; /* LWS_PRE bytes of headroom, then the payload (cap bytes of room) */
} out_msg;


/* A WebSocket connection: the transport interface's head, then what lws needs. */
typedef struct ws_conn {
  ow_conn base; /* first: the server sees an ow_conn */
  ow_net *net;
  struct lws *wsi;
  ow_buf rx;
  bool rx_oversize;
  out_msg *head, *tail;
  out_msg **tail_link; /* the pointer to tail: &head, or the next of the message before it */
  size_t queued;
  bool close_now;
  bool lingering; /* everything is written and the write side shut: waiting for the peer */
  size_t linger_rx;
  /* On the net's flush list: it has queued bytes to write before the loop sleeps. */
  struct ws_conn *flush_next, **flush_prev;
} ws_conn;

typedef struct route {
  ow_http_route r;
  char *path;
  size_t len;
} route;

struct ow_http_req {
  ow_net *net;
  struct lws *wsi;
  const route *rt;
  unsigned method;
  char *path, *query, *auth, *ctype;
  uint64_t clen, got;
  uint64_t addr;
  char peer[64];
  void *user;
  bool ended;    /* on_end was called (or the request was refused) */
  bool replied;  /* ow_http_reply was called: status, type, out hold the answer */
  bool waiting;  /* on_end returned without a reply: reply_timeout_s runs, reading is paused */
  bool close_after; /* the connection closes after the reply (the request cannot be delimited) */
  bool headers_sent;
  int status;
  const char *type; /* static or owned by out_type */
  char *out_type;
  char allow[48]; /* a 405's Allow header: at most "GET, POST, PUT, DELETE" */
  ow_buf out;
};

struct ow_net {
  struct lws_context *ctx;
  ow_net_config cfg;
  ow_net_handlers h;
  int port;
  size_t conns;
  struct lws_protocols protocols[2];
  /* Every accepted TCP connection (lws wsi) -> its address key, from accept to
   * LWS_CALLBACK_WSI_DESTROY; and address key -> connections open. */
  ow_map by_wsi, per_addr;
  ow_net_stats stats;
  uint64_t refused_logged_ns;
  ow_buf status; /* the last /status body */
  uint64_t status_ns;
  OW_VEC(route) routes;
  /* Connections with bytes queued since the loop last went to sleep, written by `flush` just
   * before it sleeps again (Redis's beforeSleep): one write per client per turn of the loop,
   * with no writable interest armed in epoll unless the socket is full. */
  ws_conn *flush_head;
  uv_prepare_t flush;
  bool flush_started;
};

/* Per-connection data lws allocates for us: a pointer to our own connection object, so that the
 * server can keep referring to it until on_close, or to the HTTP request being answered. */
typedef struct pss {
  ws_conn *conn;
  ow_http_req *req;
} pss;

static const ow_conn_ops ws_ops;

static void free_queue(ws_conn *c) {
  for (out_msg *m = c->head, *next; m; m = next) {
    next = m->next;
    ow_free(m);
  }
  c->head = c->tail = NULL;
  c->queued = 0;
}

static void flush_add(ws_conn *c) {
  if (c->flush_prev) return;
  ow_net *n = c->net;
  c->flush_next = n->flush_head;
  if (n->flush_head) n->flush_head->flush_prev = &c->flush_next;
  n->flush_head = c;
  c->flush_prev = &n->flush_head;
}

static void flush_remove(ws_conn *c) {
  if (!c->flush_prev) return;
  *c->flush_prev = c->flush_next;
  if (c->flush_next) c->flush_next->flush_prev = c->flush_prev;
  c->flush_next = NULL;
  c->flush_prev = NULL;
}

/* Writes queued messages to the socket: at most `max`, stopping when lws had to keep part of a
 * write (the kernel's buffer is full; lws then arms writable interest itself and finishes it).
 * Returns 0, or -1 when the connection failed and must close. */
static int write_queue(ws_conn *c, int max) {
  for (int i = 0; i < max && c->head; i++) {
    out_msg *m = c->head;
    if (lws_partial_buffered(c->wsi)) break;
    int w = lws_write(c->wsi, m->data + LWS_PRE, m->len, LWS_WRITE_BINARY);
    if (w < (int)m->len) return -1;
    c->head = m->next;
    if (!c->head) c->tail = NULL;
    else if (c->tail_link == &m->next) c->tail_link = &c->head;
    c->queued -= m->len;
    ow_free(m);
  }
  return 0;
}

/* The loop is about to sleep: every connection that queued bytes this turn writes them now, in
 * one send each (ws_send joins back-to-back messages). What the socket cannot take, and every
 * close, goes through lws's writable callback as before. */
static void flush_cb(uv_prepare_t *h) {
  ow_net *n = h->data;
  while (n->flush_head) {
    ws_conn *c = n->flush_head;
    flush_remove(c);
    if (c->base.closing || c->close_now) {
      lws_callback_on_writable(c->wsi);
      continue;
    }
    if (write_queue(c, 16) < 0) {
      c->close_now = true; /* the writable callback closes it: lws may not close it from here */
      free_queue(c);
      c->base.closing = true;
    }
    /* After a short write lws has armed writable interest itself, and calls the writable callback
     * once it has written the rest: asking again would only cost epoll_ctl calls. */
    if (c->close_now || (c->head && !lws_partial_buffered(c->wsi))) lws_callback_on_writable(c->wsi);
  }
}

/* The address key of ow_conn_addr(): IPv4 as itself with bit 32 set, IPv6 as its /64 prefix. */
static uint64_t addr_key(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    return (1ull << 32) | ntohl(a->sin_addr.s_addr);
  }
  if (ss->ss_family == AF_INET6) {
    const uint8_t *b = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(b, mapped, 12))
      return (1ull << 32) | ((uint64_t)b[12] << 24) | ((uint64_t)b[13] << 16) |
             ((uint64_t)b[14] << 8) | b[15];
    uint64_t k = 0;
    for (int i = 0; i < 8; i++) k = (k << 8) | b[i];
    return k ? k : 1;
  }
  return 2; /* unix sockets and the like share one key */
}

static int peer_key(int fd, uint64_t *key, char *text, size_t tl) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getpeername(fd, (struct sockaddr *)&ss, &sl)) return -errno;
  *key = addr_key(&ss);
  if (text) {
    const void *a = ss.ss_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (!inet_ntop(ss.ss_family, a, text, (socklen_t)tl)) snprintf(text, tl, "?");
  }
  return 0;
}

/* Decides at accept, before lws spends anything on the connection, whether it may stay. */
static bool admit(ow_net *n, int fd) {
  uint64_t key = 0;
  char text[64];
  if (peer_key(fd, &key, text, sizeof text)) return false;
  const uint64_t *open = ow_map_get(&n->per_addr, key);
  const char *why = NULL;
  if (n->cfg.max_conns && n->stats.tcp_open >= n->cfg.max_conns) {
    n->stats.refused_total++;
    why = "max_conns";
  } else if (n->cfg.max_conns_per_addr && open && *open >= n->cfg.max_conns_per_addr) {
    n->stats.refused_addr++;
    why = "max_conns_per_addr";
  }
  if (!why) return true;
  /* One line a second at most: a flood of refusals must not become a flood of log lines. */
  uint64_t now = ow_now_ns();
  if (now - n->refused_logged_ns >= 1000000000ull) {
    n->refused_logged_ns = now;
    OW_WARN("connection_refused", "peer=%s limit=%s open=%zu from_peer=%llu refused_total=%llu "
            "refused_addr=%llu", text, why, n->stats.tcp_open,
            open ? (unsigned long long)*open : 0ull, (unsigned long long)n->stats.refused_total,
            (unsigned long long)n->stats.refused_addr);
  }
  return false;
}

static void count_open(ow_net *n, struct lws *wsi) {
  uint64_t key = 2;
  int fd = (int)lws_get_socket_fd(wsi);
  if (fd >= 0) peer_key(fd, &key, NULL, 0);
  uint64_t *v = ow_map_get(&n->per_addr, key);
  ow_map_set(&n->per_addr, key, v ? *v + 1 : 1);
  ow_map_set(&n->by_wsi, (uint64_t)(uintptr_t)wsi, key);
  n->stats.tcp_open++;
  n->stats.accepted++;
}

static void count_closed(ow_net *n, struct lws *wsi) {
  uint64_t *k = ow_map_get(&n->by_wsi, (uint64_t)(uintptr_t)wsi);
  if (!k) return;
  uint64_t key = *k;
  ow_map_del(&n->by_wsi, (uint64_t)(uintptr_t)wsi);
  uint64_t *v = ow_map_get(&n->per_addr, key);
  if (v && *v > 1)
    (*v)--;
  else
    ow_map_del(&n->per_addr, key);
  n->stats.tcp_open--;
}

/* ---- HTTP router --------------------------------------------------------------------------- */

/* A header's whole value, allocated to its length ("" when absent): no buffer that truncates. */
static char *hdr_dup(struct lws *wsi, enum lws_token_indexes t) {
  int len = lws_hdr_total_length(wsi, t);
  char *v = ow_malloc((size_t)(len > 0 ? len : 0) + 1);
  v[0] = 0;
  if (len > 0 && lws_hdr_copy(wsi, v, len + 1, t) < 0) v[0] = 0;
  return v;
}

static unsigned method_of(struct lws *wsi) {
  static const struct {
    enum lws_token_indexes t;
    unsigned m;
  } methods[] = {{WSI_TOKEN_GET_URI, OW_HTTP_GET},
                 {WSI_TOKEN_POST_URI, OW_HTTP_POST},
                 {WSI_TOKEN_PUT_URI, OW_HTTP_PUT},
                 {WSI_TOKEN_DELETE_URI, OW_HTTP_DELETE}};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (lws_hdr_total_length(wsi, methods[i].t) > 0) return methods[i].m;
  return 0;
}

static void allow_list(unsigned m, char *out, size_t cap) {
  static const char *const names[] = {"GET", "POST", "PUT", "DELETE"};
  out[0] = 0;
  for (unsigned i = 0; i < 4; i++)
    if (m & (1u << i)) snprintf(out + strlen(out), cap - strlen(out), "%s%s", *out ? ", " : "", names[i]);
}

static const route *find_route(const ow_net *n, const char *path) {
  const route *best = NULL;
  for (size_t i = 0; i < n->routes.len; i++) {
    const route *rt = &n->routes.v[i];
    if (!rt->r.prefix) {
      if (!strcmp(path, rt->path)) return rt;
    } else if (!strncmp(path, rt->path, rt->len) && (!best || rt->len > best->len)) {
      best = rt;
    }
  }
  return best;
}

int ow_net_route(ow_net *n, const ow_http_route *r) {
  if (!r->path || !*r->path || !r->methods || !r->on_end) return OW_E_INVAL;
  route rt = {.r = *r, .path = ow_strdup(r->path), .len = strlen(r->path)};
  rt.r.path = rt.path;
  OW_VEC_PUSH(n->routes, rt);
  return 0;
}

static void req_free(ow_http_req *r) {
  ow_free(r->path);
  ow_free(r->query);
  ow_free(r->auth);
  ow_free(r->ctype);
  ow_free(r->out_type);
  ow_buf_deinit(&r->out);
  ow_free(r);
}

/* The handshake bound, which also bounds writing a reply. */
static int write_timeout_s(const ow_net *n) {
  return (int)(n->cfg.handshake_timeout_s ? n->cfg.handshake_timeout_s : 10);
}

/* Calls the route's on_end. A request left unanswered waits at most reply_timeout_s, unread:
 * libwebsockets 4.1 does not read a connection whose request is in progress, and a peer's close
 * left in the poll set would wake the loop on every turn until the reply. */
static void end_request(ow_http_req *r) {
  r->ended = true;
  r->rt->r.on_end(r->rt->r.ud, r);
  if (r->replied) return;
  r->waiting = true;
  unsigned s = r->rt->r.reply_timeout_s ? r->rt->r.reply_timeout_s : REPLY_TIMEOUT_S;
  lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, (int)s);
  lws_rx_flow_control(r->wsi, 0);
}

void ow_http_reply(ow_http_req *r, int status, const char *type, const void *body, size_t n) {
  OW_ASSERT(!r->replied);
  r->replied = true;
  if (r->waiting) {
    /* A late reply: the wait is over, writing it gets the usual bound, and the connection is
     * read again (a pipelined request, or the peer's close). */
    r->waiting = false;
    lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, write_timeout_s(r->net));
    lws_rx_flow_control(r->wsi, 1);
  }
  r->status = status;
  r->out_type = ow_strdup(type ? type : "text/plain");
  r->out.len = 0;
  if (n) ow_buf_put(&r->out, body, n);
  lws_callback_on_writable(r->wsi);
}

/* Answers a request the route never sees the rest of, with a one-line reason. */
static void refuse(ow_http_req *r, int status, const char *why) {
  r->ended = true;
  char text[128];
  int tl = snprintf(text, sizeof text, "%d %s\n", status, why);
  ow_http_reply(r, status, "text/plain", text, (size_t)tl);
}

static const char *reason_of(int status) {
  switch (status) {
  case 400: return "bad request";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not found";
  case 405: return "method not allowed";
  case 409: return "conflict";
  case 411: return "length required";
  case 413: return "request body too large";
  case 429: return "too many requests";
  case 503: return "service unavailable";
  default: return "refused";
  }
}

static int http_request(struct lws *wsi, pss *p, ow_net *n, const char *path) {
  ow_http_req *r = ow_calloc(1, sizeof *r);
  r->net = n;
  r->wsi = wsi;
  ow_buf_init(&r->out);
  p->req = r;
  n->stats.http_requests++;
  r->method = method_of(wsi);
  r->path = ow_strdup(path ? path : "");
  r->query = hdr_dup(wsi, WSI_TOKEN_HTTP_URI_ARGS);
  r->auth = hdr_dup(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  r->ctype = hdr_dup(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
  lws_get_peer_simple(wsi, r->peer, sizeof r->peer);
  const uint64_t *key = ow_map_get(&n->by_wsi, (uint64_t)(uintptr_t)wsi);
  r->addr = key ? *key : 2;
  char *cl = hdr_dup(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
  bool has_len = *cl != 0, bad_len = false;
  for (const char *c = cl; *c; c++) {
    if (*c < '0' || *c > '9' || r->clen > (UINT64_MAX - 9) / 10) {
      bad_len = true;
      break;
    }
    r->clen = r->clen * 10 + (uint64_t)(*c - '0');
  }
  ow_free(cl);
  bool chunked = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
  const route *rt = find_route(n, r->path);
  if (bad_len) {
    r->close_after = true;
    refuse(r, 400, "bad Content-Length");
  } else if (!rt || !r->method) {
    refuse(r, rt ? 405 : 404, rt ? "method not allowed" : "not found");
    if (rt) allow_list(rt->r.methods, r->allow, sizeof r->allow);
  } else if (!(rt->r.methods & r->method)) {
    allow_list(rt->r.methods, r->allow, sizeof r->allow);
    refuse(r, 405, "method not allowed");
  } else if ((r->method & (OW_HTTP_POST | OW_HTTP_PUT)) && (!has_len || chunked)) {
    /* Where such a body ends is unknown, so no next request can be read after it: closing once
     * the 411 is out is the only end (the client otherwise waits for a close that never comes). */
    r->close_after = true;
    refuse(r, 411, "length required (no chunked bodies)");
  } else if (r->clen > rt->r.max_body) {
    refuse(r, 413, "request body too large");
  } else {
    r->rt = rt;
    int st = rt->r.on_request ? rt->r.on_request(rt->r.ud, r) : 0;
    if (st) {
      refuse(r, st, reason_of(st));
    } else if (!r->clen) {
      end_request(r);
    }
  }
  return 0;
}

static int http_body(ow_http_req *r, const uint8_t *in, size_t len) {
  if (r->ended) return 0; /* refused: the rest is not looked at */
  r->got += len;
  const ow_http_route *rt = &r->rt->r;
  int st = r->got > r->clen ? 400 : rt->on_body ? rt->on_body(rt->ud, r, in, len) : 0;
  if (st) refuse(r, st, reason_of(st));
  return 0;
}

static int http_writeable(struct lws *wsi, pss *p) {
  ow_http_req *r = p ? p->req : NULL;
  if (!r) return -1;
  if (!r->replied) return 0; /* an asynchronous reply is still being made */
  if (!r->headers_sent) {
    uint8_t hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *pos = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->out_type, r->out.len, &pos, end) ||
        (r->allow[0] && lws_add_http_header_by_name(wsi, (const uint8_t *)"allow:",
                                                    (const uint8_t *)r->allow,
                                                    (int)strlen(r->allow), &pos, end)) ||
        lws_finalize_write_http_header(wsi, start, &pos, end))
      return -1;
    r->headers_sent = true;
    lws_callback_on_writable(wsi);
    return 0;
  }
  size_t bl = r->out.len;
  if (bl) {
    uint8_t *buf = ow_malloc(LWS_PRE + bl);
    memcpy(buf + LWS_PRE, r->out.data, bl);
    int w = lws_write(wsi, buf + LWS_PRE, bl, LWS_WRITE_HTTP_FINAL);
    ow_free(buf);
    if (w < (int)bl) return -1;
  }
  /* A refused request whose body is still coming: closing is how the rest is discarded unread.
   * One that cannot be delimited (close_after) ends the connection too. */
  bool close = r->got < r->clen || r->close_after;
  p->req = NULL;
  req_free(r);
  if (close) return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void http_closed(pss *p) {
  ow_http_req *r = p ? p->req : NULL;
  if (!r) return;
  p->req = NULL;
  if (r->rt && !r->replied && r->rt->r.on_abort) r->rt->r.on_abort(r->rt->r.ud, r);
  req_free(r);
}

unsigned ow_http_method(const ow_http_req *r) { return r->method; }
const char *ow_http_path(const ow_http_req *r) { return r->path; }
const char *ow_http_query(const ow_http_req *r) { return r->query; }
const char *ow_http_authorization(const ow_http_req *r) { return r->auth; }
const char *ow_http_content_type(const ow_http_req *r) { return r->ctype; }
uint64_t ow_http_content_length(const ow_http_req *r) { return r->clen; }
const char *ow_http_peer(const ow_http_req *r) { return r->peer; }
uint64_t ow_http_addr(const ow_http_req *r) { return r->addr; }
void ow_http_set_user(ow_http_req *r, void *user) { r->user = user; }
void *ow_http_user(const ow_http_req *r) { return r->user; }

/* The built-in routes: GET /status (the server's JSON, from a copy at most STATUS_REUSE_NS old)
 * and GET / (a line saying where things are). */
static void status_end(void *ud, ow_http_req *r) {
  ow_net *n = ud;
  uint64_t now = ow_now_ns();
  if (!n->status_ns || now - n->status_ns >= STATUS_REUSE_NS) {
    n->status.len = 0;
    n->h.status(n->h.ud, &n->status);
    n->status_ns = now;
  }
  ow_http_reply(r, 200, "application/json", n->status.data, n->status.len);
}

static void root_end(void *ud, ow_http_req *r) {
  (void)ud;
  const char *t = "otherworld: WebSocket protocol on /ws (docs/protocol.md), status on /status\n";
  ow_http_reply(r, 200, "text/plain", t, strlen(t));
}

/* ---- WebSocket transport and the lws callback --------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  ow_net *n = lws_context_user(lws_get_context(wsi));
  pss *p = user;
  switch (reason) {
  case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: /* wsi is the listener, in the accepted socket */
    return admit(n, (int)(intptr_t)in) ? 0 : 1;
  case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
    count_open(n, wsi);
    return 0;
  case LWS_CALLBACK_WSI_DESTROY: /* every wsi ends here, whatever role it reached */
    count_closed(n, wsi);
    return 0;
  case LWS_CALLBACK_HTTP:
    return http_request(wsi, p, n, in);
  case LWS_CALLBACK_HTTP_BODY:
    return p && p->req ? http_body(p->req, in, len) : -1;
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    if (p && p->req && !p->req->ended) end_request(p->req);
    return 0;
  case LWS_CALLBACK_HTTP_WRITEABLE:
    return http_writeable(wsi, p);
  case LWS_CALLBACK_CLOSED_HTTP:
    http_closed(p);
    return 0;
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
    char uri[64] = "";
    lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
    return strcmp(uri, "/ws") != 0; /* WebSocket only on /ws */
  }
  case LWS_CALLBACK_ESTABLISHED: {
    ws_conn *c = ow_calloc(1, sizeof *c);
    c->base.ops = &ws_ops;
    c->net = n;
    c->wsi = wsi;
    ow_buf_init(&c->rx);
    lws_get_peer_simple(wsi, c->base.peer, sizeof c->base.peer);
    const uint64_t *key = ow_map_get(&n->by_wsi, (uint64_t)(uintptr_t)wsi);
    c->base.addr = key ? *key : 2;
    p->conn = c;
    n->conns++;
    if (n->h.on_open) n->h.on_open(n->h.ud, &c->base);
    return 0;
  }
  case LWS_CALLBACK_RECEIVE: {
    ws_conn *c = p->conn;
    if (!c) return -1;
    if (c->lingering) { /* the conversation is over: read and dropped, up to a point */
      c->linger_rx += len;
      if (c->linger_rx > LINGER_MAX_RX) lws_rx_flow_control(wsi, 0);
      return 0;
    }
    if (lws_is_first_fragment(wsi)) {
      c->rx.len = 0;
      c->rx_oversize = false;
    }
    /* The frame header says how much is coming: an oversized message is refused before its
     * payload is read, however large it claims to be. */
    if (!c->rx_oversize && c->rx.len + len + lws_remaining_packet_payload(wsi) > n->cfg.max_message) {
      c->rx_oversize = true;
      ow_buf_deinit(&c->rx);
      n->stats.oversize++;
      if (!c->base.closing && n->h.on_oversize) n->h.on_oversize(n->h.ud, &c->base);
    }
    if (!c->rx_oversize) ow_buf_put(&c->rx, in, len);
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
      if (!c->rx_oversize && !c->base.closing && n->h.on_message) {
        n->h.on_message(n->h.ud, &c->base, c->rx.data, c->rx.len, lws_frame_is_binary(wsi));
      }
      c->rx.len = 0;
      /* A connection that finished its business gives its receive buffer back. */
      if (c->rx.cap > 65536) ow_buf_deinit(&c->rx);
    }
    return 0;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE: {
    ws_conn *c = p->conn;
    if (!c) return -1;
    /* Closing happens in a writable callback of its own, once everything queued is written.
     * lws 4.1 on libuv drops the TCP connection here without a Close frame although a reason is
     * set (clients see 1006); the protocol's SERVER_BYE, written before, is the real reason. */
    if (c->close_now || (c->base.closing && !c->head)) {
      /* A lingering close, as web servers do: closing a socket that still holds unread input
       * makes the kernel send a reset that can destroy what was written last (the SERVER_BYE
       * saying why) before the peer reads it, which is what happens to a client that keeps
       * sending. So the write side is shut (the FIN follows the BYE), the input is read and
       * dropped (LINGER_MAX_RX at most), and the connection closes when the peer closes or after
       * LINGER_S. */
      if (c->close_now) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
      }
      if (!c->lingering) {
        c->lingering = true;
        shutdown((int)lws_get_socket_fd(wsi), SHUT_WR);
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LINGER_S);
      }
      return 0;
    }
    /* Several messages per writable event, but never so many that one client hogs the loop; lws
     * keeps what a short write leaves over, and then no more is written until it is out. The
     * connection leaves the flush list: this writes what it would have. */
    flush_remove(c);
    if (write_queue(c, 16) < 0) return -1;
    if (c->head || c->base.closing) lws_callback_on_writable(wsi);
    return 0;
  }
  case LWS_CALLBACK_CLOSED: {
    ws_conn *c = p ? p->conn : NULL;
    if (!c) return 0;
    p->conn = NULL;
    n->conns--;
    flush_remove(c);
    c->base.closing = true;
    if (n->h.on_close) n->h.on_close(n->h.ud, &c->base);
    free_queue(c);
    ow_buf_deinit(&c->rx);
    ow_free(c);
    return 0;
  }
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* Binds the port once ourselves, so that "address in use" is reported before libwebsockets holds
 * any state on the loop. Returns 0 or -errno. */
static int port_free(const char *bind_addr, int port) {
  if (port <= 0) return 0;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, bind_addr ? bind_addr : "0.0.0.0", &sa.sin_addr) != 1) return -EINVAL;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa) ? -errno : 0;
  close(fd);
  return rc;
}

int ow_net_create(ow_net **out, uv_loop_t *loop, const ow_net_config *cfg, const ow_net_handlers *h) {
  *out = NULL;
  int prc = port_free(cfg->bind, cfg->port);
  if (prc) {
    OW_ERROR("net_listen_failed", "bind=%s port=%d err=%s", cfg->bind ? cfg->bind : "*", cfg->port,
             ow_err_name(prc));
    return prc;
  }
  ow_net *n = ow_calloc(1, sizeof *n);
  n->cfg = *cfg;
  if (!n->cfg.max_message) n->cfg.max_message = 4096;
  if (!n->cfg.send_limit) n->cfg.send_limit = 1u << 20;
  n->h = *h;
  ow_map_init(&n->by_wsi);
  ow_map_init(&n->per_addr);
  ow_buf_init(&n->status);
  /* Past the descriptor limit accept() fails and lws keeps retrying it: refuse earlier instead.
   * The soft limit is raised first, as far as the hard limit allows (as Redis does). */
  struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
  if (getrlimit(RLIMIT_NOFILE, &rl)) rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
  if (rl.rlim_cur != RLIM_INFINITY) {
    rlim_t want = n->cfg.max_conns ? (rlim_t)n->cfg.max_conns + FD_RESERVE : rl.rlim_max;
    if (want > rl.rlim_max) want = rl.rlim_max;
    if (want > rl.rlim_cur) {
      struct rlimit up = {want, rl.rlim_max};
      if (!setrlimit(RLIMIT_NOFILE, &up)) rl.rlim_cur = want;
    }
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 2 * FD_RESERVE) {
    size_t cap = (size_t)rl.rlim_cur - FD_RESERVE;
    if (!n->cfg.max_conns || n->cfg.max_conns > cap) {
      OW_WARN("max_conns_clamped", "max_conns=%zu nofile=%llu now=%zu hint=\"raise ulimit -n for "
              "more connections\"", n->cfg.max_conns, (unsigned long long)rl.rlim_cur, cap);
      n->cfg.max_conns = cap;
    }
  }
  n->protocols[0] = (struct lws_protocols){
      .name = "otherworld.v1", .callback = callback, .per_session_data_size = sizeof(pss),
      .rx_buffer_size = 4096};
  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = cfg->port ? cfg->port : 0;
  info.iface = cfg->bind;
  info.protocols = n->protocols;
  info.user = n;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DISABLE_IPV6;
  info.pcontext = &n->ctx;
  /* Half-open and slowloris connections: lws holds a header buffer for a connection from accept
   * until its request is complete, and drops it when the buffer has been held this long, however
   * the bytes trickle in (timeout_secs covers lws's other network round trips). */
  unsigned hs = cfg->handshake_timeout_s ? cfg->handshake_timeout_s : 10;
  info.timeout_secs = hs;
  info.timeout_secs_ah_idle = hs;
  /* No lws validity timers (its default pings after 300 s of silence): idle connections are the
   * server's business (idle_s). lws 4.1 keeps them in one sorted list and re-inserts a
   * connection's timer, walking the list, on every message it receives, which made each message
   * cost O(connections): 73 % of the loop's time while 5,000 clients logged in beside 15,000
   * idle ones (bench/sessions). */
  static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
  info.retry_and_idle_policy = &no_validity;
  void *loops[1] = {loop};
  info.foreign_loops = loops;
  n->ctx = lws_create_context(&info);
  if (!n->ctx) {
    OW_ERROR("net_listen_failed", "bind=%s port=%d", cfg->bind ? cfg->bind : "*", cfg->port);
    ow_map_deinit(&n->by_wsi);
    ow_map_deinit(&n->per_addr);
    ow_free(n);
    return OW_E_INVAL;
  }
  /* lws creates the context even when the listening socket could not be bound (port in use): the
   * missing default vhost is how that shows. */
  struct lws_vhost *vh = lws_get_vhost_by_name(n->ctx, "default");
  if (!vh || lws_get_vhost_listen_port(vh) <= 0) {
    OW_ERROR("net_listen_failed", "bind=%s port=%d hint=\"port in use or address not available\"",
             cfg->bind ? cfg->bind : "*", cfg->port);
    /* Lost a race for the port after the check above. The half-made context is left to the
     * process exit: destroying it needs the loop, and the caller is about to exit anyway. */
    return -EADDRINUSE;
  }
  n->port = lws_get_vhost_listen_port(vh);
  uv_prepare_init(loop, &n->flush);
  n->flush.data = n;
  uv_prepare_start(&n->flush, flush_cb);
  uv_unref((uv_handle_t *)&n->flush); /* it does not keep the loop running by itself */
  n->flush_started = true;
  ow_http_route root = {.path = "/", .methods = OW_HTTP_GET, .on_end = root_end, .ud = n};
  ow_net_route(n, &root);
  if (h->status) {
    ow_http_route status = {.path = "/status", .methods = OW_HTTP_GET, .on_end = status_end, .ud = n};
    ow_net_route(n, &status);
  }
  *out = n;
  return 0;
}

int ow_net_port(const ow_net *n) { return n->port; }

void ow_net_status_changed(ow_net *n) { n->status_ns = 0; }
const ow_net_stats *ow_net_stats_get(const ow_net *n) { return &n->stats; }

void ow_net_destroy(ow_net *n) {
  if (!n) return;
  if (n->flush_started) {
    /* Closes send what is queued through the writable callback; the flush handle goes first, so
     * that it is closed by the time the loop returns and ow_net_free frees it. */
    n->flush_started = false;
    while (n->flush_head) {
      ws_conn *c = n->flush_head;
      flush_remove(c);
      lws_callback_on_writable(c->wsi);
    }
    uv_close((uv_handle_t *)&n->flush, NULL);
  }
  if (n->ctx) lws_context_destroy(n->ctx);
}

/* With a foreign loop, the first lws_context_destroy() starts closing and the loop finishes it;
 * this second call frees the context. The caller runs the loop once more afterwards so that lws's
 * last handles close. */
void ow_net_free(ow_net *n) {
  if (!n) return;
  if (n->ctx) lws_context_destroy(n->ctx);
  ow_map_deinit(&n->by_wsi);
  ow_map_deinit(&n->per_addr);
  ow_buf_deinit(&n->status);
  for (size_t i = 0; i < n->routes.len; i++) ow_free(n->routes.v[i].path);
  OW_VEC_FREE(n->routes);
  ow_free(n);
}

static int ws_send(ow_conn *base, const void *p, size_t len) {
  ws_conn *c = (ws_conn *)base;
  if (c->base.closing) return OW_E_STATE;
  if (c->queued + len > c->net->cfg.send_limit) return OW_E_FULL;
  size_t join = c->net->cfg.coalesce;
  out_msg *t = c->tail;
  if (t && join && t->len + len <= join) {
    /* Joined to the last queued message, which has not been written yet (messages leave whole,
     * in the writable callback): what one turn of the loop queues for a client leaves in one
     * WebSocket message, one send and one writable event instead of one each. */
    if (t->len + len > t->cap) {
      size_t cap = t->cap * 2 > t->len + len ? t->cap * 2 : t->len + len;
      if (cap > join) cap = join;
      t = ow_realloc(t, sizeof *t + LWS_PRE + cap);
      t->cap = cap;
      *c->tail_link = t;
      c->tail = t;
    }
    memcpy(t->data + LWS_PRE + t->len, p, len);
    t->len += len;
  } else {
    out_msg *m = ow_malloc(sizeof *m + LWS_PRE + len);
    m->next = NULL;
    m->len = m->cap = len;
    memcpy(m->data + LWS_PRE, p, len);
    c->tail_link = c->tail ? &c->tail->next : &c->head;
    *c->tail_link = m;
    c->tail = m;
  }
  c->queued += len;
  flush_add(c);
  return 0;
}

static size_t ws_queued(const ow_conn *base) { return ((const ws_conn *)base)->queued; }

static void ws_close(ow_conn *base, bool now) {
  ws_conn *c = (ws_conn *)base;
  c->base.closing = true;
  if (now) {
    c->close_now = true;
    free_queue(c);
  }
  lws_callback_on_writable(c->wsi);
}

/* WebSocket is one reliable, ordered stream: no unreliable channel (send_unreliable falls back). */
static const ow_conn_ops ws_ops = {
    .name = "websocket",
    .caps = 0,
    .send = ws_send,
    .send_unreliable = NULL,
    .close = ws_close,
    .queued = ws_queued,
};
