/*
 * conn: the transport interface. A connection is a small table of methods (send reliable, send
 * unreliable where the transport has it, close, bytes queued) with the fields every transport
 * shares (peer address, user pointer, closing flag); the protocol code sees only this, never the
 * library underneath. The libwebsockets WebSocket transport (net.c) implements it today.
 *
 * A second transport (WebRTC data channels) implements it the same way: its connection struct
 * starts with an ow_conn whose ops point at its own functions, it fills peer and addr when the
 * peer is known, and it delivers every complete inbound message and the end of the connection
 * through the same ow_conn_handlers the WebSocket transport calls (on_open, on_message, on_close),
 * so the server handles both alike. Its unreliable channel is what ow_conn_send_unreliable uses.
 */
#ifndef OW_NET_CONN_H
#define OW_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ow_conn ow_conn;

/* What a transport can do beyond reliable, ordered messages. */
enum { OW_CONN_UNRELIABLE = 1 /* has an unordered, lossy channel (a WebRTC data channel) */ };

typedef struct ow_conn_ops {
  const char *name; /* "websocket": for logs */
  unsigned caps;    /* OW_CONN_* */
  /* Queues one message, reliable and in order; the bytes are copied. 0, OW_E_FULL (the send
   * limit is reached; nothing queued) or OW_E_STATE (closing). */
  int (*send)(ow_conn *c, const void *p, size_t n);
  /* Sends one message that may be lost or overtaken; NULL when caps lacks OW_CONN_UNRELIABLE. */
  int (*send_unreliable)(ow_conn *c, const void *p, size_t n);
  /* Closes once what is queued is written, or at once when `now`. on_close follows later. */
  void (*close)(ow_conn *c, bool now);
  /* Bytes queued and not yet handed to the socket. */
  size_t (*queued)(const ow_conn *c);
} ow_conn_ops;

/* The head every transport's connection starts with. Transports write it; everyone else reads it
 * through the functions below. */
struct ow_conn {
  const ow_conn_ops *ops;
  void *user;
  uint64_t addr;  /* ow_conn_addr() */
  bool closing;   /* close was asked for (by either side) */
  char peer[64];  /* ow_conn_peer() */
};

/* How a transport hands its connections to the protocol. Called on the loop thread. */
typedef struct ow_conn_handlers {
  void (*on_open)(void *ud, ow_conn *c);
  /* One complete inbound message. p is valid during the call only. */
  void (*on_message)(void *ud, ow_conn *c, const uint8_t *p, size_t n, bool binary);
  /* An inbound message exceeded the transport's limit; called before its bytes are read, the rest
   * of it is discarded. The handler is expected to close the connection. */
  void (*on_oversize)(void *ud, ow_conn *c);
  /* The connection is gone; c is freed after this returns. */
  void (*on_close)(void *ud, ow_conn *c);
  void *ud;
} ow_conn_handlers;

/* Reliable, ordered send (see ow_conn_ops.send). The name is historic: any transport. */
int ow_net_send(ow_conn *c, const void *p, size_t n);
/* Unreliable send where the transport has one; elsewhere the same as ow_net_send, so a caller that
 * does not care which it gets can always use it. */
int ow_conn_send_unreliable(ow_conn *c, const void *p, size_t n);
unsigned ow_conn_caps(const ow_conn *c);
const char *ow_conn_transport(const ow_conn *c);
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

#endif
