/*
 * route: what a joined player sends into the zone and what comes back. ACTION goes to the zone and
 * is answered APPLIED at once, POSE moves the avatar as a stream; when the zone reports a frame
 * durable (ow_server_on_durable), its actions are confirmed with DURABLE, grouped per session in
 * one pass, or kept for a RESUME, and the replica gets the frame.
 */
#include <stdio.h>

#include "server/server_int.h"

/* DURABLE for n seqs of one frame, as many messages as the 16-bit count needs (4096 per message,
 * which keeps each well under the WebSocket message size). The one place DURABLE is chunked. */
void server_send_durable(client *c, uint64_t frame, int status, const uint64_t *seqs, size_t n) {
  ow_server *s = c->srv;
  for (size_t k = 0; k < n; k += DURABLE_CHUNK) {
    size_t cnt = n - k < DURABLE_CHUNK ? n - k : DURABLE_CHUNK;
    s->out.len = 0;
    ow_proto_put_durable(&s->out, frame, status, seqs + k, (uint16_t)cnt);
    server_send_raw(c, s->out.data, s->out.len);
  }
}

void server_deliver_undelivered(client *c) {
  ow_server *s = c->srv;
  uint64_t *v = ow_map_get(&s->undelivered, c->session);
  if (!v) return;
  undelivered *u = (undelivered *)(uintptr_t)*v;
  size_t i = 0;
  while (i < u->frames.len) {
    size_t j = i;
    while (j < u->frames.len && u->frames.v[j] == u->frames.v[i]) j++;
    server_send_durable(c, u->frames.v[i], 0, u->seqs.v + i, j - i);
    i = j;
  }
  OW_VEC_FREE(u->frames);
  OW_VEC_FREE(u->seqs);
  ow_free(u);
  ow_map_del(&s->undelivered, c->session);
}

void server_on_action(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_JOINED) {
    server_send_error(c, m->req, OW_E_STATE, "join the world first");
    return;
  }
  if (!server_take_token(&c->bucket, &c->bucket_ns, s->cfg.action_rate, s->cfg.action_burst)) {
    server_rate_refused(c, m->req, "too many actions per second");
    return;
  }
  ow_result r;
  uint64_t frame;
  bool replayed;
  int rc = ow_zone_act(s->zone, c->session, m->u.action.seq, &m->u.action.action, &r, &frame, &replayed);
  if (rc) {
    server_send_error(c, m->req, rc, ow_strerror(rc));
    return;
  }
  s->stats.actions++;
  /* Players wait for durable confirmations (and other players for the result): rather than wait
   * for the next tick, ask for the commit now. While one is in flight, actions keep gathering
   * into the next frame, so under load this is still group commit. */
  if (s->cfg.eager_commit && !replayed) ow_zone_loop_flush(s->zl);
  ow_msg a = {.type = OW_MSG_APPLIED, .req = m->req};
  a.u.applied.seq = m->u.action.seq;
  a.u.applied.result = r;
  a.u.applied.frame = frame;
  a.u.applied.replayed = replayed;
  server_send_msg(c, &a);
  /* A replay of an action whose frame is already durable is confirmed at once; after a disk
   * fault, a replay of one that never became durable is told so at once too. */
  int status = frame <= ow_zone_durable_frame(s->zone) ? 0 : ow_zone_store_error(s->zone);
  if (replayed && (frame <= ow_zone_durable_frame(s->zone) || status)) {
    uint64_t seq = m->u.action.seq;
    server_send_durable(c, frame, status, &seq, 1);
  }
}

void server_on_pose(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_JOINED) return;
  if (!server_take_token(&c->pose_bucket, &c->pose_ns, s->cfg.pose_rate, server_pose_burst(s))) {
    /* Poses are a stream: extra ones are dropped, and the client is told at most once a second. */
    s->stats.rate_limited++;
    if (c->pose_ns - c->pose_warned_ns > 1000000000ull) {
      c->pose_warned_ns = c->pose_ns;
      server_send_error(c, 0, OW_E_RATE, "poses above pose_rate are dropped");
    }
    /* A headset tracking faster than pose_rate (144 Hz against 90) is not an attack: a dropped
     * pose weighs a quarter, so only a flood far above the rate gets the client disconnected. */
    server_rate_strike(c, 0.25);
    return;
  }
  s->stats.poses_in++;
  c->pose = m->u.pose;
  c->pose_seq++;
  ow_transform xf;
  ow_transform_identity(&xf);
  for (int i = 0; i < 3; i++) xf.pos[i] = ow_dequant_mm(m->u.pose.root[i]);
  ow_quat_unpack(m->u.pose.root_rot, xf.rot);
  /* The root moves the avatar (validated like a move); a seated avatar keeps its seat. */
  ow_zone_stream(s->zone, c->session, c->avatar, &xf);
}

/* The system EVENT every client gets once after a disk fault: at the fault, or after WELCOME. */
void server_send_store_failed(client *c) {
  int err = ow_zone_store_error(c->srv->zone);
  char text[320];
  snprintf(text, sizeof text,
           "durability suspended: the server could not write to disk (%s: %s); nothing more is "
           "saved until it restarts, so actions, registrations and logins are refused, and the "
           "world you see is the last saved state", ow_err_name(err), ow_strerror(err));
  ow_msg e = {.type = OW_MSG_EVENT};
  e.u.event.kind = OW_EVENT_SYSTEM;
  e.u.event.text = (ow_str){text, strlen(text)};
  server_send_msg(c, &e);
}

/* One session's confirmations of one frame: sent when its client is connected; kept for a RESUME
 * when nobody holds the session, but only those of a durable frame. */
static void confirm_session(ow_server *s, uint64_t session, uint64_t frame, int status,
                            const uint64_t *seqs, size_t n) {
  uint64_t *cv = ow_map_get(&s->by_session, session);
  client *c = cv ? (client *)(uintptr_t)*cv : NULL;
  if (c && c->conn) {
    server_send_durable(c, frame, status, seqs, n);
    return;
  }
  if (status) return;
  uint64_t *uv = ow_map_get(&s->undelivered, session);
  undelivered *u = uv ? (undelivered *)(uintptr_t)*uv : NULL;
  if (!u) {
    u = ow_calloc(1, sizeof *u);
    ow_map_set(&s->undelivered, session, (uint64_t)(uintptr_t)u);
  }
  for (size_t k = 0; k < n; k++) {
    if (u->frames.len >= UNDELIVERED_MAX) { /* keep the newest: the client also has last_seq */
      memmove(u->frames.v, u->frames.v + 1, (u->frames.len - 1) * sizeof *u->frames.v);
      memmove(u->seqs.v, u->seqs.v + 1, (u->seqs.len - 1) * sizeof *u->seqs.v);
      u->frames.len--;
      u->seqs.len--;
    }
    OW_VEC_PUSH(u->frames, frame);
    OW_VEC_PUSH(u->seqs, seqs[k]);
  }
}

void server_group_by_session(const ow_applied *a, size_t n, confirm_groups *out) {
  memset(out, 0, sizeof *out);
  if (!n) return;
  /* One pass numbers the sessions in order of their first action and counts each one's actions;
   * the counts become the start of each group's run in one flat array; a second pass places each
   * seq at its group's next slot. Two passes and a map: O(n), where one scan of the frame per
   * session was O(n * sessions), quadratic when every player acts in the same frame. */
  ow_map group_of;
  ow_map_init(&group_of);
  out->sessions = ow_malloc(n * sizeof *out->sessions);
  out->start = ow_calloc(n + 1, sizeof *out->start);
  out->seqs = ow_malloc(n * sizeof *out->seqs);
  size_t *group = ow_malloc(n * sizeof *group);
  size_t ngroups = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t *g = ow_map_get(&group_of, a[i].session);
    if (!g) {
      out->sessions[ngroups] = a[i].session;
      ow_map_set(&group_of, a[i].session, ngroups);
      group[i] = ngroups++;
    } else {
      group[i] = (size_t)*g;
    }
    out->start[group[i] + 1]++;
  }
  for (size_t g = 0; g < ngroups; g++) out->start[g + 1] += out->start[g];
  size_t *fill = ow_malloc(ngroups * sizeof *fill);
  memcpy(fill, out->start, ngroups * sizeof *fill);
  for (size_t i = 0; i < n; i++) out->seqs[fill[group[i]]++] = a[i].seq;
  out->ngroups = ngroups;
  ow_free(fill);
  ow_free(group);
  ow_map_deinit(&group_of);
}

void server_groups_free(confirm_groups *g) {
  ow_free(g->sessions);
  ow_free(g->start);
  ow_free(g->seqs);
  memset(g, 0, sizeof *g);
}

void ow_server_on_durable(ow_server *s, const ow_frame_info *f) {
  if (!f->status && f->batch) ow_replica_apply(s->replica, f->batch, f->frame);
  if (f->status && !s->store_failed) {
    /* The first failed frame (it may hold no action at all: a checkpoint): every client learns
     * once that nothing more will be confirmed. The replica keeps the last durable state, so
     * views go on showing what is really on disk. */
    s->store_failed = true;
    ow_net_status_changed(s->net);
    for (size_t i = 0; i < s->clients.len; i++)
      if (s->clients.v[i]->state != S_NEW) server_send_store_failed(s->clients.v[i]);
  }
  /* Confirmations, grouped per session, in the order the actions were applied. */
  confirm_groups g;
  server_group_by_session(f->actions, f->nactions, &g);
  for (size_t k = 0; k < g.ngroups; k++)
    confirm_session(s, g.sessions[k], f->frame, f->status, g.seqs + g.start[k],
                    g.start[k + 1] - g.start[k]);
  server_groups_free(&g);
  /* Replies that waited for durability (REGISTER). */
  size_t keep = 0;
  for (size_t i = 0; i < s->pending.len; i++) {
    pending_reply *p = &s->pending.v[i];
    if (p->frame > f->frame && !f->status) {
      s->pending.v[keep++] = *p;
      continue;
    }
    if (!p->c) continue;
    if (f->status)
      server_send_error(p->c, p->req, f->status, "the account could not be written to disk");
    else
      server_send_ok(p->c, p->req);
  }
  s->pending.len = keep;
}

void server_undelivered_free(ow_server *s) {
  for (size_t i = 0; i < s->undelivered.cap; i++)
    if (s->undelivered.keys[i]) {
      undelivered *u = (undelivered *)(uintptr_t)s->undelivered.vals[i];
      OW_VEC_FREE(u->frames);
      OW_VEC_FREE(u->seqs);
      ow_free(u);
    }
  ow_map_deinit(&s->undelivered);
}
