/*
 * session: from a new client to a player in the world. HELLO, REGISTER and LOGIN (their argon2 work
 * runs on jobs.c's threads, the outcome comes back here), RESUME with a token, JOIN, LEAVE and
 * LOGOUT; a second connection of the same account takes the session over.
 */
#include <stdio.h>
#include <time.h>

#include "server/server_int.h"

void server_leave_world(client *c) {
  if (c->state == S_JOINED) {
    c->srv->joined--;
    c->state = S_AUTHED;
  }
}

void server_unbind(client *c) {
  ow_server *s = c->srv;
  if (c->session) {
    uint64_t *v = ow_map_get(&s->by_session, c->session);
    if (v && (client *)(uintptr_t)*v == c) ow_map_del(&s->by_session, c->session);
  }
  if (c->account) {
    uint64_t *v = ow_map_get(&s->by_account, c->account);
    if (v && (client *)(uintptr_t)*v == c) ow_map_del(&s->by_account, c->account);
  }
}

/* A second connection to the same account takes over: the old one is told why and closed. */
static void take_over(ow_server *s, uint64_t account, client *newc) {
  uint64_t *v = ow_map_get(&s->by_account, account);
  client *old = v ? (client *)(uintptr_t)*v : NULL;
  if (!old || old == newc) return;
  server_leave_world(old);
  server_unbind(old);
  old->session = old->account = 0;
  old->state = S_GREETED;
  server_kick(old, OW_BYE_TAKEN_OVER, "this account logged in on another connection");
}

static void bind_session(client *c, uint64_t account, uint64_t session, ow_id avatar, uint8_t role) {
  ow_server *s = c->srv;
  take_over(s, account, c);
  /* The session may still be held by an older connection of the same account (resume). */
  uint64_t *v = ow_map_get(&s->by_session, session);
  if (v && (client *)(uintptr_t)*v != c) take_over(s, ((client *)(uintptr_t)*v)->account, c);
  c->account = account;
  c->session = session;
  c->avatar = avatar;
  c->role = role;
  c->state = S_AUTHED;
  ow_map_set(&s->by_session, session, (uint64_t)(uintptr_t)c);
  ow_map_set(&s->by_account, account, (uint64_t)(uintptr_t)c);
}

uint8_t server_role_of(const ow_server *s, const ow_account *acc) {
  if (!acc) return OW_ROLE_PLAYER;
  const char *list = s->cfg.admins ? s->cfg.admins : "";
  size_t n = strlen(acc->name);
  for (const char *p = list; *p;) {
    while (*p == ',' || *p == ' ') p++;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ') e++;
    if ((size_t)(e - p) == n && n && !memcmp(p, acc->name, n)) return OW_ROLE_ADMIN;
    p = e;
  }
  return acc->role;
}

static void send_session(client *c, uint32_t req, uint64_t expires, bool resumed) {
  uint64_t last_seq = 0;
  ow_zone_session(c->srv->zone, c->session, NULL, NULL, &last_seq);
  ow_msg m = {.type = OW_MSG_SESSION, .req = req};
  memcpy(m.u.session.token, c->token, OW_TOKEN_LEN);
  m.u.session.account = c->account;
  m.u.session.avatar = c->avatar;
  m.u.session.role = c->role;
  m.u.session.last_seq = last_seq;
  uint64_t now = (uint64_t)time(NULL);
  m.u.session.expires_in_s = expires > now ? (uint32_t)(expires - now) : 0;
  m.u.session.resumed = resumed;
  server_send_msg(c, &m);
}

/* A keyed hash of an account name: the throttle's key, not guessable from outside, so that no
 * chosen name can share an account's record. */
static uint64_t account_key(ow_server *s, const char *name, size_t n) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const unsigned char *)name, n, s->name_key);
  uint64_t k;
  memcpy(&k, h, sizeof k);
  return k;
}

void server_on_hello(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (m->u.hello.version < OW_PROTO_VERSION_MIN || m->u.hello.version > OW_PROTO_VERSION) {
    server_send_error(c, m->req, OW_E_VERSION, "this server speaks protocol versions 1 and 2");
    server_kick(c, OW_BYE_PROTOCOL, "unsupported protocol version");
    return;
  }
  /* The version is fixed by the first HELLO: a later one cannot change how POSES already sent
   * (and the slots they bound) are read. */
  if (c->state == S_NEW) {
    c->state = S_GREETED;
    c->proto = m->u.hello.version;
  } else if (m->u.hello.version != c->proto) {
    server_send_error(c, m->req, OW_E_VERSION, "the protocol version cannot change on a connection");
    return;
  }
  ow_msg w = {.type = OW_MSG_WELCOME, .req = m->req};
  w.u.welcome.version = c->proto;
  w.u.welcome.tick_hz = (uint16_t)s->cfg.tick_hz;
  w.u.welcome.pose_hz = (uint16_t)s->cfg.pose_hz;
  w.u.welcome.server_time_us = ow_now_ns() / 1000;
  w.u.welcome.max_message = (uint32_t)s->cfg.net.max_message;
  w.u.welcome.server_name = (ow_str){s->cfg.name, strlen(s->cfg.name)};
  server_send_msg(c, &w);
  if (s->store_failed) server_send_store_failed(c);
}

void server_on_credentials(client *c, const ow_msg *m) {
  if (c->state != S_GREETED) {
    server_send_error(c, m->req, OW_E_STATE, c->state == S_NEW ? "send HELLO first" : "already logged in");
    return;
  }
  if (c->job) {
    server_send_error(c, m->req, OW_E_STATE, "a login or registration is already in progress");
    return;
  }
  ow_str name = m->u.creds.name, pw = m->u.creds.password;
  if (!ow_auth_name_ok(name.p, name.n) || !ow_auth_password_ok(pw.n)) {
    server_send_error(c, m->req, OW_E_BAD_NAME,
               "names are 3-32 of A-Z a-z 0-9 _ - . and passwords 8-128 bytes");
    return;
  }
  ow_server *s = c->srv;
  if (s->store_failed) {
    /* A new account and a new session token are writes that could never become durable. */
    server_send_error(c, m->req, OW_E_STORE_FAILED,
               m->type == OW_MSG_REGISTER ? "the server cannot save accounts until it restarts"
                                          : "the server cannot save sessions until it restarts; "
                                            "RESUME with an existing token still works");
    return;
  }
  if (m->type == OW_MSG_REGISTER && ow_auth_by_name(s->auth, name.p, name.n)) {
    server_send_error(c, m->req, OW_E_NAME_TAKEN, "account name already taken");
    return;
  }
  /* Refusals first, before any argon2 work: a locked account or address, then the job limits. */
  uint64_t now = ow_now_ns(), addr = ow_conn_addr(c->conn), name_key = 0;
  double retry;
  if (m->type == OW_MSG_LOGIN) {
    name_key = account_key(s, name.p, name.n);
    if (ow_throttle_check(s->fail_account, name_key, now, &retry)) {
      s->stats.login_refused_account++;
      server_refuse_rate(c, m->req, "too many failed logins for this account", retry);
      return;
    }
    if (ow_throttle_check(s->fail_addr, addr, now, &retry)) {
      s->stats.login_refused_addr++;
      server_refuse_rate(c, m->req, "too many failed logins from this address", retry);
      return;
    }
  }
  const uint64_t *per_addr = ow_map_get(&s->jobs_by_addr, addr);
  if (per_addr && *per_addr >= s->cfg.pwhash_per_addr) {
    s->stats.pwhash_refused_addr++;
    server_refuse_rate(c, m->req, "too many password checks from this address", 0);
    return;
  }
  if (s->jobs_running >= s->cfg.pwhash_jobs && s->jobs_queued >= s->cfg.pwhash_queue) {
    s->stats.pwhash_refused_busy++;
    server_refuse_rate(c, m->req, "too many password checks waiting", 0);
    return;
  }
  server_job_start(c, m->type == OW_MSG_REGISTER ? JOB_REGISTER : JOB_LOGIN, m->req, name, pw, name_key);
}

void server_on_resume(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_GREETED) {
    server_send_error(c, m->req, OW_E_STATE, c->state == S_NEW ? "send HELLO first" : "already logged in");
    return;
  }
  ow_token_info ti;
  ow_id account, avatar;
  if (ow_auth_check(s->auth, m->u.resume.token, (uint64_t)time(NULL), &ti) ||
      ow_zone_session(s->zone, ti.session, &account, &avatar, NULL)) {
    server_send_error(c, m->req, OW_E_TOKEN, "session token invalid, expired or revoked");
    return;
  }
  const ow_account *acc = ow_auth_by_id(s->auth, ti.account);
  memcpy(c->token, m->u.resume.token, OW_TOKEN_LEN);
  bind_session(c, ti.account, ti.session, avatar, server_role_of(s, acc));
  OW_INFO("resume", "account=%llu session=%016llx peer=%s", (unsigned long long)ti.account,
          (unsigned long long)ti.session, ow_conn_peer(c->conn));
  send_session(c, m->req, ti.expires, true);
  server_deliver_undelivered(c);
}

static void send_joined(client *c, uint32_t req) {
  ow_server *s = c->srv;
  ow_content *ct = ow_world_content(ow_zone_world(s->zone));
  ow_buf *b = &s->out;
  b->len = 0;
  size_t at = ow_proto_begin(b, OW_MSG_JOINED);
  ow_buf_u32(b, req);
  ow_buf_f32(b, ow_world_config_get(ow_zone_world(s->zone))->region_size);
  ow_buf_f32(b, s->cfg.interest_radius);
  ow_buf_u16(b, ct->ntypes);
  for (uint16_t i = 0; i < ct->ntypes; i++) {
    ow_buf_u16(b, i);
    ow_buf_u8(b, ct->types[i].kind);
    size_t n = strlen(ct->types[i].name);
    ow_buf_u8(b, (uint8_t)n);
    ow_buf_put(b, ct->types[i].name, n);
  }
  ow_buf_u16(b, ct->nrecipes);
  for (uint16_t i = 0; i < ct->nrecipes; i++) {
    ow_buf_u16(b, i);
    size_t n = strlen(ct->recipes[i].name);
    ow_buf_u8(b, (uint8_t)n);
    ow_buf_put(b, ct->recipes[i].name, n);
  }
  ow_buf_u16(b, ct->nkeys);
  for (uint16_t i = 0; i < ct->nkeys; i++) {
    size_t n = strlen(ct->keys[i]);
    ow_buf_u8(b, (uint8_t)n);
    ow_buf_put(b, ct->keys[i], n);
  }
  ow_proto_end(b, at);
  server_send_raw(c, b->data, b->len);
}

void server_on_join(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_AUTHED) {
    server_send_error(c, m->req, OW_E_STATE, c->state == S_JOINED ? "already joined" : "log in first");
    return;
  }
  if (s->joined >= s->cfg.max_players) {
    server_send_error(c, m->req, OW_E_SERVER_FULL, "this instance is full");
    return;
  }
  c->state = S_JOINED;
  s->joined++;
  ow_view_reset(c->view);
  ow_view_expect(c->view, c->avatar);
  send_joined(c, m->req);
}

void server_on_leave(client *c, const ow_msg *m) {
  if (c->state != S_JOINED) {
    server_send_error(c, m->req, OW_E_STATE, "not in the world");
    return;
  }
  server_leave_world(c);
  server_send_ok(c, m->req);
}

void server_on_logout(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state < S_AUTHED) {
    server_send_error(c, m->req, OW_E_STATE, "not logged in");
    return;
  }
  server_leave_world(c);
  ow_auth_revoke(s->auth, s->zone, c->token);
  ow_zone_loop_checkpoint(s->zl); /* the avatar's last streamed pose is saved now */
  OW_INFO("logout", "account=%llu", (unsigned long long)c->account);
  server_unbind(c);
  c->account = c->session = 0;
  server_send_ok(c, m->req);
  server_kick(c, OW_BYE_NORMAL, "logged out");
}

/* The outcome of a finished REGISTER or LOGIN job, for a client still connected: the account is
 * created (its OK waits for the frame to be durable), or the session is bound and SESSION sent. */
void server_job_finished(client *c, const job *j) {
  ow_server *s = c->srv;
  if (j->rc) {
    server_send_error(c, j->req, OW_E_NOMEM, "could not hash the password");
  } else if (j->kind == JOB_REGISTER && s->store_failed) {
    /* The disk failed while the password was being hashed: the account could never be saved. */
    server_send_error(c, j->req, OW_E_STORE_FAILED, "the server cannot save accounts until it restarts");
  } else if (j->kind == JOB_REGISTER) {
    const ow_account *acc;
    uint64_t frame;
    int rc = ow_auth_add(s->auth, s->zone, j->name, j->nl, j->hash, OW_ROLE_PLAYER, &acc, &frame);
    if (rc) {
      server_send_error(c, j->req, rc, ow_strerror(rc));
    } else {
      OW_INFO("account_created", "account=%llu name=%s", (unsigned long long)acc->id, acc->name);
      pending_reply p = {frame, c, j->req};
      OW_VEC_PUSH(s->pending, p);
      ow_zone_loop_flush(s->zl);
    }
  } else { /* login */
    const ow_account *acc = ow_auth_by_name(s->auth, j->name, j->nl);
    if (!j->ok || !acc) {
      OW_INFO("login_failed", "peer=%s name=%.*s", ow_conn_peer(c->conn), (int)j->nl, j->name);
      server_send_error(c, j->req, OW_E_AUTH, "wrong name or password");
    } else {
      uint64_t session;
      ow_id avatar;
      int rc = ow_zone_login(s->zone, acc->id, &session, &avatar);
      ow_token_info ti;
      if (!rc) rc = ow_auth_issue(s->auth, s->zone, acc->id, session, (uint64_t)time(NULL), c->token, &ti);
      if (rc) {
        server_send_error(c, j->req, rc, ow_strerror(rc));
      } else {
        bind_session(c, acc->id, session, avatar, server_role_of(s, acc));
        OW_INFO("login", "account=%llu session=%016llx peer=%s", (unsigned long long)acc->id,
                (unsigned long long)session, ow_conn_peer(c->conn));
        send_session(c, j->req, ti.expires, false);
      }
    }
  }
}
