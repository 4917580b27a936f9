/*
 * admin: messages to everyone and operations on other accounts. CHAT and ANNOUNCE become an EVENT
 * to every joined player (encoded once); ADMIN kicks, revokes and changes roles, for the admin role
 * only, each logged with who asked.
 */
#include "server/server_int.h"

/* An EVENT to every player in the world, encoded once. */
static void broadcast_event(ow_server *s, uint8_t kind, uint64_t from, ow_str text) {
  ow_msg e = {.type = OW_MSG_EVENT};
  e.u.event.kind = kind;
  e.u.event.from = from;
  e.u.event.text = text;
  ow_buf b;
  ow_buf_init(&b);
  ow_proto_encode(&b, &e);
  for (size_t i = 0; i < s->clients.len; i++)
    if (s->clients.v[i]->state == S_JOINED) server_send_raw(s->clients.v[i], b.data, b.len);
  ow_buf_deinit(&b);
}

void server_on_chat(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_JOINED) {
    server_send_error(c, m->req, OW_E_STATE, "join the world first");
    return;
  }
  /* Every chat message goes to every player: the rate limit keeps one client from multiplying
   * its traffic by the number of players. */
  if (!server_take_token(&c->chat_bucket, &c->chat_ns, s->cfg.chat_rate, s->cfg.chat_burst)) {
    server_rate_refused(c, m->req, "too many chat messages per second");
    return;
  }
  broadcast_event(s, OW_EVENT_CHAT, c->account, m->u.chat.text);
  server_send_ok(c, m->req);
}

/* ADMIN: operations on other accounts and on everyone, for the admin role only. Every operation is
 * logged with who asked for it. */
void server_on_admin(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state < S_AUTHED) {
    server_send_error(c, m->req, OW_E_STATE, "log in first");
    return;
  }
  uint8_t op = m->u.admin.op;
  uint64_t target = m->u.admin.account;
  if (c->role != OW_ROLE_ADMIN) {
    OW_WARN("admin_refused", "op=%u account=%llu by=%llu peer=%s", op, (unsigned long long)target,
            (unsigned long long)c->account, ow_conn_peer(c->conn));
    server_send_error(c, m->req, OW_E_NOT_ADMIN, "this operation requires the admin role");
    return;
  }
  if (op == 0 || op >= OW_ADMIN_MAX_) {
    server_send_error(c, m->req, OW_E_INVAL, "unknown admin operation");
    return;
  }
  char text[OW_TEXT_MAX + 1];
  memcpy(text, m->u.admin.text.p, m->u.admin.text.n);
  text[m->u.admin.text.n] = 0;
  const ow_account *acc = ow_auth_by_id(s->auth, target);
  if (op != OW_ADMIN_ANNOUNCE && !acc) {
    server_send_error(c, m->req, OW_E_NOT_FOUND, "no such account");
    return;
  }
  if (op == OW_ADMIN_SET_ROLE && m->u.admin.role > OW_ROLE_ADMIN) {
    server_send_error(c, m->req, OW_E_INVAL, "unknown role");
    return;
  }
  OW_INFO("admin", "op=%u account=%llu role=%u by=%llu", op, (unsigned long long)target,
          m->u.admin.role, (unsigned long long)c->account);
  uint64_t *v = op == OW_ADMIN_ANNOUNCE ? NULL : ow_map_get(&s->by_account, target);
  client *t = v ? (client *)(uintptr_t)*v : NULL;
  uint64_t frame = 0;
  switch (op) {
  case OW_ADMIN_KICK:
    if (t) server_kick(t, OW_BYE_KICKED, text[0] ? text : "removed by an admin");
    break;
  case OW_ADMIN_ANNOUNCE: broadcast_event(s, OW_EVENT_SYSTEM, 0, m->u.admin.text); break;
  case OW_ADMIN_SET_ROLE:
    ow_auth_set_role(s->auth, s->zone, target, m->u.admin.role, &frame);
    if (t) t->role = server_role_of(s, acc);
    break;
  case OW_ADMIN_REVOKE:
    ow_auth_revoke_account(s->auth, s->zone, target, &frame);
    if (t) server_kick(t, OW_BYE_KICKED, text[0] ? text : "sessions revoked by an admin");
    break;
  }
  if (!frame) {
    server_send_ok(c, m->req);
    return;
  }
  /* A stored change is confirmed once its frame is durable, as REGISTER is. */
  pending_reply p = {frame, c, m->req};
  OW_VEC_PUSH(s->pending, p);
  ow_zone_loop_flush(s->zl);
}
