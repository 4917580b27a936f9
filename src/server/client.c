/*
 * client: one client per transport connection, the entry of the one-way flow. Its messages are
 * decoded and dispatched in order to the part that handles each type; replies, errors, kicks and
 * rate limits are shared here by every part.
 */
#include <math.h>
#include <stdio.h>

#include "server/server_int.h"

/* Sends one WebSocket message. A client that cannot take a reliable message is too slow: it is
 * disconnected, since dropping replies would break the protocol's promises. */
bool server_send_raw(client *c, const uint8_t *p, size_t n) {
  if (!c->conn || ow_conn_closing(c->conn)) return false;
  int rc = ow_net_send(c->conn, p, n);
  if (rc == OW_E_FULL) {
    c->srv->stats.too_slow++;
    OW_WARN("client_too_slow", "peer=%s account=%llu queued=%zu", ow_conn_peer(c->conn),
            (unsigned long long)c->account, ow_conn_queued(c->conn));
    ow_conn_close(c->conn, true);
    return false;
  }
  if (!rc) c->srv->stats.bytes_out += n;
  return rc == 0;
}

void server_send_msg(client *c, const ow_msg *m) {
  ow_buf *b = &c->srv->out;
  b->len = 0;
  ow_proto_encode(b, m);
  server_send_raw(c, b->data, b->len);
}

void server_send_error(client *c, uint32_t req, int code, const char *text) {
  ow_msg m = {.type = OW_MSG_ERROR, .req = req};
  m.u.error.code = code;
  m.u.error.text = (ow_str){text, strlen(text)};
  server_send_msg(c, &m);
}

void server_send_ok(client *c, uint32_t req) {
  ow_msg m = {.type = OW_MSG_OK, .req = req};
  server_send_msg(c, &m);
}

/* Says why, then closes once the queue is written. */
void server_kick(client *c, uint16_t reason, const char *text) {
  if (!c->conn || c->bye_sent) return;
  ow_msg m = {.type = OW_MSG_SERVER_BYE};
  m.u.bye.reason = reason;
  m.u.bye.text = (ow_str){text, strlen(text)};
  server_send_msg(c, &m);
  c->bye_sent = true;
  if (c->conn) ow_conn_close(c->conn, false);
}

void server_protocol_error(client *c, uint32_t req, int code, const char *text) {
  c->srv->stats.protocol_errors++;
  OW_INFO("protocol_error", "peer=%s account=%llu code=%s text=\"%s\"", ow_conn_peer(c->conn),
          (unsigned long long)c->account, ow_err_name(code), text);
  server_send_error(c, req, code, text);
  server_kick(c, OW_BYE_PROTOCOL, text);
}

/* Token buckets for actions, poses and chat: refilled at rate per second, up to burst. */
bool server_take_token(double *bucket, uint64_t *last_ns, double rate, double burst) {
  uint64_t now = ow_now_ns();
  *bucket += (double)(now - *last_ns) / 1e9 * rate;
  if (*bucket > burst) *bucket = burst;
  *last_ns = now;
  if (*bucket < 1) return false;
  *bucket -= 1;
  return true;
}

/* One more refusal for rate (weighing `w`): a client that keeps going past its limits is
 * disconnected. */
void server_rate_strike(client *c, double w) {
  ow_server *s = c->srv;
  if (s->cfg.rate_kick <= 0 || c->bye_sent) return;
  uint64_t now = ow_now_ns();
  if (c->strike_ns) {
    c->strikes -= (double)(now - c->strike_ns) / 1e9 * s->cfg.rate_kick_decay;
    if (c->strikes < 0) c->strikes = 0;
  }
  c->strike_ns = now;
  c->strikes += w;
  if (c->strikes <= s->cfg.rate_kick) return;
  s->stats.rate_kicks++;
  OW_INFO("rate_kick", "peer=%s account=%llu", ow_conn_peer(c->conn),
          (unsigned long long)c->account);
  server_kick(c, OW_BYE_RATE, "rate limits exceeded repeatedly");
}

/* A refusal for rate that says when to retry (in whole seconds when the throttle knows). */
void server_refuse_rate(client *c, uint32_t req, const char *text, double retry_s) {
  char msg[160];
  if (retry_s > 0)
    snprintf(msg, sizeof msg, "%s; retry in %.0f s", text, ceil(retry_s));
  else
    snprintf(msg, sizeof msg, "%s; retry in a moment", text);
  server_rate_refused(c, req, msg);
}

void server_rate_refused(client *c, uint32_t req, const char *text) {
  c->srv->stats.rate_limited++;
  server_send_error(c, req, OW_E_RATE, text);
  server_rate_strike(c, 1);
}

/* Every client-to-server message type goes to the part that handles it. */
static void dispatch(client *c, const ow_msg *m) {
  switch (m->type) {
  case OW_MSG_HELLO: server_on_hello(c, m); break;
  case OW_MSG_REGISTER:
  case OW_MSG_LOGIN: server_on_credentials(c, m); break;
  case OW_MSG_RESUME: server_on_resume(c, m); break;
  case OW_MSG_JOIN: server_on_join(c, m); break;
  case OW_MSG_LEAVE: server_on_leave(c, m); break;
  case OW_MSG_LOGOUT: server_on_logout(c, m); break;
  case OW_MSG_ACTION: server_on_action(c, m); break;
  case OW_MSG_POSE: server_on_pose(c, m); break;
  case OW_MSG_ACK: ow_view_ack(c->view, m->u.ack.snapshot); break;
  case OW_MSG_CHAT: server_on_chat(c, m); break;
  case OW_MSG_ADMIN: server_on_admin(c, m); break;
  case OW_MSG_PING: {
    ow_msg p = {.type = OW_MSG_PONG, .req = m->req};
    p.u.pong.client_time = m->u.ping.client_time;
    p.u.pong.server_time_us = ow_now_ns() / 1000;
    server_send_msg(c, &p);
    break;
  }
  case OW_MSG_BYE:
    c->bye_sent = true; /* the client is leaving: no BYE back */
    ow_conn_close(c->conn, false);
    break;
  default: server_protocol_error(c, m->req, OW_E_PROTO, "server-to-client message sent by a client"); break;
  }
}

void server_on_open(void *ud, ow_conn *conn) {
  ow_server *s = ud;
  client *c = ow_calloc(1, sizeof *c);
  c->srv = s;
  c->conn = conn;
  c->view = ow_view_create();
  c->bucket = s->cfg.action_burst;
  c->pose_bucket = server_pose_burst(s); /* full, as the action bucket */
  c->bucket_ns = c->pose_ns = c->last_rx_ns = ow_now_ns();
  ow_map_init(&c->prio);
  c->proto = 1;
  ow_conn_set_user(conn, c);
  OW_VEC_PUSH(s->clients, c);
  s->stats.connections++;
  if (s->shutting) server_kick(c, OW_BYE_SHUTDOWN, "server is restarting");
}

/* Decodes and dispatches the protocol messages of one WebSocket message, in order. While an
 * argon2 job runs for the client, the rest is held and processed when the job is done, so that a
 * client may pipeline REGISTER, LOGIN and JOIN. */
static void process(client *c, const uint8_t *p, size_t n) {
  ow_server *s = c->srv;
  size_t off = 0;
  while (off < n && c->conn && !c->bye_sent) {
    if (c->job) {
      if (c->held.len + (n - off) > HELD_MAX) {
        server_protocol_error(c, 0, OW_E_TOO_LARGE, "too many messages sent while logging in");
        return;
      }
      ow_buf_put(&c->held, p + off, n - off);
      return;
    }
    ow_msg m;
    size_t used;
    char err[160];
    if (ow_proto_decode(p + off, n - off, &used, &m, err, sizeof err)) {
      server_protocol_error(c, 0, OW_E_PROTO, err);
      return;
    }
    s->stats.messages_in++;
    dispatch(c, &m);
    off += used;
  }
}

void server_process_held(client *c) {
  if (!c->held.len) return;
  ow_buf pending = c->held;
  ow_buf_init(&c->held);
  process(c, pending.data, pending.len);
  ow_buf_deinit(&pending);
}

void server_on_message(void *ud, ow_conn *conn, const uint8_t *p, size_t n, bool binary) {
  ow_server *s = ud;
  client *c = ow_conn_user(conn);
  if (!c || c->bye_sent) return;
  c->last_rx_ns = ow_now_ns();
  s->stats.bytes_in += n;
  if (!binary) {
    server_protocol_error(c, 0, OW_E_PROTO, "text WebSocket messages are not part of the protocol");
    return;
  }
  process(c, p, n);
}

void server_on_oversize(void *ud, ow_conn *conn) {
  (void)ud;
  client *c = ow_conn_user(conn);
  if (c) server_protocol_error(c, 0, OW_E_TOO_LARGE, "message larger than max_message");
}

void server_client_drop(ow_server *s, client *c) {
  server_leave_world(c);
  server_unbind(c);
  if (c->job) c->job->c = NULL;
  for (size_t i = 0; i < s->pending.len; i++)
    if (s->pending.v[i].c == c) s->pending.v[i].c = NULL;
  for (size_t i = 0; i < s->clients.len; i++)
    if (s->clients.v[i] == c) {
      s->clients.v[i] = s->clients.v[--s->clients.len];
      break;
    }
  ow_view_destroy(c->view);
  ow_map_deinit(&c->prio);
  ow_buf_deinit(&c->held);
  ow_free(c);
}

void server_on_close(void *ud, ow_conn *conn) {
  client *c = ow_conn_user(conn);
  if (c) server_client_drop(ud, c);
}

/* A connection that sends nothing for idle_s (not even PING) is closed. */
void server_housekeeping_cb(uv_timer_t *t) {
  ow_server *s = t->data;
  uint64_t now = ow_now_ns();
  for (size_t i = 0; i < s->clients.len; i++) {
    client *c = s->clients.v[i];
    if (c->conn && !c->bye_sent && (double)(now - c->last_rx_ns) / 1e9 > s->cfg.idle_s)
      server_kick(c, OW_BYE_IDLE, "no message received for too long");
  }
}
