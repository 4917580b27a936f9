/* net: libwebsockets server on a foreign libuv loop. See net.h. */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>

typedef struct out_msg {
  struct out_msg *next;
  size_t len;
  uint8_t data[]; /* LWS_PRE bytes of headroom, then the payload */
} out_msg;

struct ow_conn {
  ow_net *net;
  struct lws *wsi;
  void *user;
  ow_buf rx;
  bool rx_oversize;
  out_msg *head, *tail;
  size_t queued;
  bool closing;
  bool close_now;
  uint64_t rx_bytes, tx_bytes;
  char peer[64];
};

struct ow_net {
  struct lws_context *ctx;
  ow_net_config cfg;
  ow_net_handlers h;
  int port;
  size_t conns;
  struct lws_protocols protocols[2];
};

/* Per-connection data lws allocates for us: a pointer to our own connection object, so that the
 * server can keep referring to it until on_close. HTTP requests use the body buffer. */
typedef struct pss {
  ow_conn *conn;
  ow_buf *http_body;
} pss;

static void free_queue(ow_conn *c) {
  for (out_msg *m = c->head, *next; m; m = next) {
    next = m->next;
    ow_free(m);
  }
  c->head = c->tail = NULL;
  c->queued = 0;
}

static int http_reply(struct lws *wsi, pss *p, ow_net *n) {
  char uri[128] = "";
  lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
  p->http_body = ow_calloc(1, sizeof(ow_buf));
  int status = HTTP_STATUS_OK;
  const char *type = "application/json";
  if (!strcmp(uri, "/status") && n->h.status) {
    n->h.status(n->h.ud, p->http_body);
  } else if (!strcmp(uri, "/")) {
    type = "text/plain";
    const char *t = "otherworld: WebSocket protocol on /ws (docs/protocol.md), status on /status\n";
    ow_buf_put(p->http_body, t, strlen(t));
  } else {
    status = HTTP_STATUS_NOT_FOUND;
    type = "text/plain";
    ow_buf_put(p->http_body, "not found\n", 10);
  }
  uint8_t hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *pos = start, *end = hdr + sizeof hdr - 1;
  if (lws_add_http_common_headers(wsi, (unsigned)status, type, p->http_body->len, &pos, end) ||
      lws_finalize_write_http_header(wsi, start, &pos, end))
    return 1;
  lws_callback_on_writable(wsi);
  return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  ow_net *n = lws_context_user(lws_get_context(wsi));
  pss *p = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP:
    return http_reply(wsi, p, n);
  case LWS_CALLBACK_HTTP_WRITEABLE: {
    if (!p || !p->http_body) return -1;
    size_t bl = p->http_body->len;
    uint8_t *buf = ow_malloc(LWS_PRE + bl + 1);
    memcpy(buf + LWS_PRE, p->http_body->data, bl);
    int w = lws_write(wsi, buf + LWS_PRE, bl, LWS_WRITE_HTTP_FINAL);
    ow_free(buf);
    ow_buf_deinit(p->http_body);
    ow_free(p->http_body);
    p->http_body = NULL;
    if (w < (int)bl) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
  }
  case LWS_CALLBACK_CLOSED_HTTP:
    if (p && p->http_body) {
      ow_buf_deinit(p->http_body);
      ow_free(p->http_body);
      p->http_body = NULL;
    }
    return 0;
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
    char uri[64] = "";
    lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
    return strcmp(uri, "/ws") != 0; /* WebSocket only on /ws */
  }
  case LWS_CALLBACK_ESTABLISHED: {
    ow_conn *c = ow_calloc(1, sizeof *c);
    c->net = n;
    c->wsi = wsi;
    ow_buf_init(&c->rx);
    lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
    p->conn = c;
    n->conns++;
    if (n->h.on_open) n->h.on_open(n->h.ud, c);
    return 0;
  }
  case LWS_CALLBACK_RECEIVE: {
    ow_conn *c = p->conn;
    if (!c) return -1;
    c->rx_bytes += len;
    if (lws_is_first_fragment(wsi)) {
      c->rx.len = 0;
      c->rx_oversize = false;
    }
    if (!c->rx_oversize && c->rx.len + len + lws_remaining_packet_payload(wsi) > n->cfg.max_message) {
      c->rx_oversize = true;
      c->rx.len = 0;
    }
    if (!c->rx_oversize) ow_buf_put(&c->rx, in, len);
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
      if (c->rx_oversize) {
        if (n->h.on_oversize) n->h.on_oversize(n->h.ud, c);
      } else if (!c->closing && n->h.on_message) {
        n->h.on_message(n->h.ud, c, c->rx.data, c->rx.len, lws_frame_is_binary(wsi));
      }
      c->rx.len = 0;
      /* A connection that finished its business gives its receive buffer back. */
      if (c->rx.cap > 65536) ow_buf_deinit(&c->rx);
    }
    return 0;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE: {
    ow_conn *c = p->conn;
    if (!c) return -1;
    /* Closing happens in a writable callback of its own, once everything queued is written.
     * lws 4.1 on libuv drops the TCP connection here without a Close frame although a reason is
     * set (clients see 1006); the protocol's SERVER_BYE, written before, is the real reason. */
    if (c->close_now || (c->closing && !c->head)) {
      lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
      return -1;
    }
    /* Several messages per writable event, but never so many that one client hogs the loop. */
    for (int i = 0; i < 16 && c->head; i++) {
      out_msg *m = c->head;
      if (lws_send_pipe_choked(wsi)) break;
      int w = lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_BINARY);
      if (w < (int)m->len) return -1;
      c->tx_bytes += m->len;
      c->head = m->next;
      if (!c->head) c->tail = NULL;
      c->queued -= m->len;
      ow_free(m);
    }
    if (c->head || c->closing) lws_callback_on_writable(wsi);
    return 0;
  }
  case LWS_CALLBACK_CLOSED: {
    ow_conn *c = p ? p->conn : NULL;
    if (!c) return 0;
    p->conn = NULL;
    n->conns--;
    if (n->h.on_close) n->h.on_close(n->h.ud, c);
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
  info.timeout_secs = 10; /* half-open handshakes and slow headers are dropped after this */
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
  *out = n;
  return 0;
}

int ow_net_port(const ow_net *n) { return n->port; }
size_t ow_net_connections(const ow_net *n) { return n->conns; }

void ow_net_destroy(ow_net *n) {
  if (n && n->ctx) lws_context_destroy(n->ctx);
}

/* With a foreign loop, the first lws_context_destroy() starts closing and the loop finishes it;
 * this second call frees the context. The caller runs the loop once more afterwards so that lws's
 * last handles close. */
void ow_net_free(ow_net *n) {
  if (!n) return;
  if (n->ctx) lws_context_destroy(n->ctx);
  ow_free(n);
}

int ow_net_send(ow_conn *c, const void *p, size_t len) {
  if (c->closing) return OW_E_STATE;
  if (c->queued + len > c->net->cfg.send_limit) return OW_E_FULL;
  out_msg *m = ow_malloc(sizeof *m + LWS_PRE + len);
  m->next = NULL;
  m->len = len;
  memcpy(m->data + LWS_PRE, p, len);
  if (c->tail)
    c->tail->next = m;
  else
    c->head = m;
  c->tail = m;
  c->queued += len;
  lws_callback_on_writable(c->wsi);
  return 0;
}

size_t ow_conn_queued(const ow_conn *c) { return c->queued; }

void ow_conn_close(ow_conn *c, bool now) {
  c->closing = true;
  if (now) {
    c->close_now = true;
    free_queue(c);
  }
  lws_callback_on_writable(c->wsi);
}

bool ow_conn_closing(const ow_conn *c) { return c->closing; }
void ow_conn_set_user(ow_conn *c, void *user) { c->user = user; }
void *ow_conn_user(const ow_conn *c) { return c->user; }
const char *ow_conn_peer(const ow_conn *c) { return c->peer; }
uint64_t ow_conn_rx_bytes(const ow_conn *c) { return c->rx_bytes; }
uint64_t ow_conn_tx_bytes(const ow_conn *c) { return c->tx_bytes; }
