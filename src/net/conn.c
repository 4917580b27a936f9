/* conn: the transport interface's dispatchers and shared fields. See conn.h. */
#include "net/conn.h"

int ow_net_send(ow_conn *c, const void *p, size_t n) { return c->ops->send(c, p, n); }

int ow_conn_send_unreliable(ow_conn *c, const void *p, size_t n) {
  return c->ops->send_unreliable ? c->ops->send_unreliable(c, p, n) : c->ops->send(c, p, n);
}

unsigned ow_conn_caps(const ow_conn *c) { return c->ops->caps; }
const char *ow_conn_transport(const ow_conn *c) { return c->ops->name; }
size_t ow_conn_queued(const ow_conn *c) { return c->ops->queued(c); }
void ow_conn_close(ow_conn *c, bool now) { c->ops->close(c, now); }
bool ow_conn_closing(const ow_conn *c) { return c->closing; }
void ow_conn_set_user(ow_conn *c, void *user) { c->user = user; }
void *ow_conn_user(const ow_conn *c) { return c->user; }
const char *ow_conn_peer(const ow_conn *c) { return c->peer; }
uint64_t ow_conn_addr(const ow_conn *c) { return c->addr; }
