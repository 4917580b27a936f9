/*
 * net: HTTP and WebSocket on one port, libwebsockets 4.1 running on the zone's libuv loop. WebSocket
 * connections become transport connections (net/conn.h: complete messages in, queued messages out,
 * bounded memory each); HTTP requests go to the routes registered with ow_net_route(), bodies
 * streamed and limited. It knows nothing about the protocol inside the messages, and no header
 * outside src/net names a libwebsockets type.
 */
#ifndef OW_NET_H
#define OW_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/core.h"
#include "net/conn.h"

typedef struct ow_net ow_net;

typedef struct ow_net_config {
  const char *bind;   /* interface address, NULL for all */
  int port;           /* 0: an ephemeral port, see ow_net_port() */
  size_t max_message; /* largest inbound WebSocket message; larger ones call on_oversize */
  size_t send_limit;  /* bytes queued per connection beyond which ow_net_send refuses */
  /* Messages queued back to back on a connection are joined into one WebSocket message of at most
   * this many bytes; 0 never joins. Only for a protocol that allows several of its messages in
   * one WebSocket message. */
  size_t coalesce;
  /* TCP connections (HTTP and WebSocket, handshakes included) open at once, in total and per
   * remote address (ow_conn_addr); one more is closed as soon as it is accepted. 0: no limit. The
   * total is also kept below the process's descriptor limit. */
  size_t max_conns, max_conns_per_addr;
  /* Seconds a connection may take to send its HTTP request or WebSocket handshake, however it
   * trickles the bytes (slowloris); 0: 10. */
  unsigned handshake_timeout_s;
} ow_net_config;

/* Counters of the network face, for /status and tests. */
typedef struct ow_net_stats {
  size_t tcp_open;           /* accepted TCP connections open now, WebSocket or not */
  uint64_t accepted;         /* TCP connections accepted since start */
  uint64_t refused_total;    /* closed at accept: max_conns reached */
  uint64_t refused_addr;     /* closed at accept: max_conns_per_addr reached for the address */
  uint64_t oversize;         /* WebSocket messages larger than max_message */
  uint64_t http_requests;    /* HTTP requests routed (answered by a route or refused by net) */
} ow_net_stats;

/* The WebSocket connections' handlers (as ow_conn_handlers, in the same order) and the body of
 * GET /status. on_oversize is called as soon as the excess shows (the frame header announces it or
 * the fragments add up past max_message). */
typedef struct ow_net_handlers {
  void (*on_open)(void *ud, ow_conn *c);
  void (*on_message)(void *ud, ow_conn *c, const uint8_t *p, size_t n, bool binary);
  void (*on_oversize)(void *ud, ow_conn *c);
  void (*on_close)(void *ud, ow_conn *c);
  /* Writes the body of GET /status (JSON) into out; NULL: no /status route. The route is
   * registered by ow_net_create and answers from a copy up to 100 ms old. */
  void (*status)(void *ud, ow_buf *out);
  void *ud;
} ow_net_handlers;

/* ---- HTTP routes ---------------------------------------------------------------------------- */

typedef struct ow_http_req ow_http_req;
enum { OW_HTTP_GET = 1, OW_HTTP_POST = 2, OW_HTTP_PUT = 4, OW_HTTP_DELETE = 8 };

/* A route: requests whose path is `path` (or, with prefix, starts with it) and whose method is in
 * `methods`. A path no route has is answered 404; a method the route lacks, 405 with Allow. A
 * request body longer than max_body (0: none allowed) is answered 413 from its Content-Length,
 * before any of it is read, and the connection is closed; a POST or PUT without Content-Length
 * gets 411 and the connection is closed (where such a body ends cannot be known). Every callback
 * runs on the loop thread. */
typedef struct ow_http_route {
  const char *path; /* copied */
  bool prefix;
  unsigned methods; /* OW_HTTP_* */
  size_t max_body;
  /* Seconds a request may wait for ow_http_reply after on_end; then the connection closes and
   * on_abort runs. 0: 30. Without it libwebsockets 4.1 would close a request still waiting at
   * handshake_timeout_s. While a reply is awaited the connection is not read (a peer's close
   * left unread would wake the loop again and again), so a client that leaves shows only when
   * the reply is made or at this timeout. */
  unsigned reply_timeout_s;
  /* The headers are in. Return 0 to go on (body chunks, then on_end), or an HTTP status >= 400
   * to refuse the request with it (401, 403, 409, ...). May be NULL. */
  int (*on_request)(void *ud, ow_http_req *r);
  /* The next piece of the body, in order; p is valid during the call. Non-zero: refuse with that
   * status. May be NULL (the body is dropped). */
  int (*on_body)(void *ud, ow_http_req *r, const uint8_t *p, size_t n);
  /* The body is complete: reply now or later, from the loop, with ow_http_reply(). */
  void (*on_end)(void *ud, ow_http_req *r);
  /* The connection went away before the reply (or reply_timeout_s passed); r is freed when this
   * returns. May be NULL; a route that replies later must have one, to forget r. */
  void (*on_abort)(void *ud, ow_http_req *r);
  void *ud;
} ow_http_route;

/* Registers a route (copied). Exact paths win over prefixes, longer prefixes over shorter ones.
 * OW_E_INVAL for a route without a path, methods or on_end. */
int ow_net_route(ow_net *n, const ow_http_route *route);

/* The request. Strings are NUL-terminated, valid until the reply or on_abort. */
unsigned ow_http_method(const ow_http_req *r);
const char *ow_http_path(const ow_http_req *r);
const char *ow_http_query(const ow_http_req *r);         /* "" if none */
const char *ow_http_authorization(const ow_http_req *r); /* the Authorization header or "" */
const char *ow_http_content_type(const ow_http_req *r);  /* "" if none */
uint64_t ow_http_content_length(const ow_http_req *r);   /* 0 without a body */
const char *ow_http_peer(const ow_http_req *r);
uint64_t ow_http_addr(const ow_http_req *r); /* as ow_conn_addr() */
void ow_http_set_user(ow_http_req *r, void *user);
void *ow_http_user(const ow_http_req *r);
/* Answers the request (once): status, content type, body (copied). After it, r is not used again
 * by the caller. */
void ow_http_reply(ow_http_req *r, int status, const char *type, const void *body, size_t n);

/* Starts listening. The loop must be the one the caller runs. */
int ow_net_create(ow_net **out, uv_loop_t *loop, const ow_net_config *cfg, const ow_net_handlers *h);
/* The port actually bound. */
int ow_net_port(const ow_net *n);
/* /status is answered from a copy up to 100 ms old; after a change operators must see at once
 * (a disk fault), the next request builds a fresh one. */
void ow_net_status_changed(ow_net *n);
const ow_net_stats *ow_net_stats_get(const ow_net *n);
/* Starts closing every connection and the listener; handles close as the loop keeps running. The
 * on_close callbacks still run. */
void ow_net_destroy(ow_net *n);
/* After uv_run has returned: frees the context and *n. Run the loop once more afterwards (lws
 * closes its last handles), then close it. */
void ow_net_free(ow_net *n);

/* WebSocket connections are ow_conn (net/conn.h); ow_net_send queues one binary message, joined to
 * the previous one while both are still queued and fit in `coalesce` bytes. */

#endif
