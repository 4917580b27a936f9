/*
 * net: HTTP and WebSocket on one port, libwebsockets 4.1 running on the zone's libuv loop. It
 * turns connections into complete binary messages in and queued messages out, with bounded memory
 * per connection; it knows nothing about the protocol inside the messages.
 */
#ifndef OW_NET_H
#define OW_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/core.h"

typedef struct ow_net ow_net;
typedef struct ow_conn ow_conn;

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
} ow_net_stats;

typedef struct ow_net_handlers {
  void (*on_open)(void *ud, ow_conn *c);
  /* One complete inbound message. p is valid during the call only. */
  void (*on_message)(void *ud, ow_conn *c, const uint8_t *p, size_t n, bool binary);
  /* An inbound message exceeded max_message. Called as soon as the excess shows (the frame header
   * announces it or the fragments add up past it), before its bytes are read; the rest of the
   * message is discarded as it arrives. The handler is expected to close the connection. */
  void (*on_oversize)(void *ud, ow_conn *c);
  /* The connection is gone; c is freed after this returns. */
  void (*on_close)(void *ud, ow_conn *c);
  /* Writes the body of GET /status (JSON) into out. */
  void (*status)(void *ud, ow_buf *out);
  void *ud;
} ow_net_handlers;

/* Starts listening. The loop must be the one the caller runs. */
int ow_net_create(ow_net **out, uv_loop_t *loop, const ow_net_config *cfg, const ow_net_handlers *h);
/* The port actually bound. */
int ow_net_port(const ow_net *n);
/* /status is answered from a copy up to 100 ms old; after a change operators must see at once
 * (a disk fault), the next request builds a fresh one. */
void ow_net_status_changed(ow_net *n);
/* Number of open WebSocket connections. */
size_t ow_net_connections(const ow_net *n);
const ow_net_stats *ow_net_stats_get(const ow_net *n);
/* Starts closing every connection and the listener; handles close as the loop keeps running. The
 * on_close callbacks still run. */
void ow_net_destroy(ow_net *n);
/* After uv_run has returned: frees the context and *n. Run the loop once more afterwards (lws
 * closes its last handles), then close it. */
void ow_net_free(ow_net *n);

/* Queues one WebSocket binary message (the bytes are copied; joined to the previous one while
 * both are still queued and fit in `coalesce` bytes). Returns OW_E_FULL when the
 * connection already has send_limit bytes queued (nothing is queued then), OW_E_STATE when it is
 * closing. */
int ow_net_send(ow_conn *c, const void *p, size_t n);
/* Bytes queued and not yet written to the socket. */
size_t ow_conn_queued(const ow_conn *c);
/* Closes the connection once what is queued has been written (or at once if `now`). */
void ow_conn_close(ow_conn *c, bool now);
bool ow_conn_closing(const ow_conn *c);
void ow_conn_set_user(ow_conn *c, void *user);
void *ow_conn_user(const ow_conn *c);
/* The peer's address as text ("127.0.0.1"), valid while the connection is. */
const char *ow_conn_peer(const ow_conn *c);
/* The peer's address as a key for per-address limits: the IPv4 address (IPv4-mapped IPv6 too), or
 * the /64 prefix of an IPv6 address, since one IPv6 host usually holds a whole /64. Never 0. */
uint64_t ow_conn_addr(const ow_conn *c);
/* Bytes received and sent on this connection (WebSocket payloads). */
uint64_t ow_conn_rx_bytes(const ow_conn *c);
uint64_t ow_conn_tx_bytes(const ow_conn *c);

#endif
