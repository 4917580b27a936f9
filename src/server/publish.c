/*
 * publish: the replica and the players' poses, out to each client's area of interest. At
 * snapshot_hz a client gets a snapshot delta (replica.c) within its bandwidth budget; at pose_hz it
 * gets the freshest poses of the avatars in the cells around it (interest.h), nearest first.
 */
#include <math.h>
#include <stdlib.h>

#include "server/interest.h"
#include "server/server_int.h"

static ow_cell avatar_cell(ow_server *s, client *c) {
  const ow_entity *e = ow_world_get(ow_zone_world(s->zone), c->avatar);
  ow_cell none = {0, 0};
  return e ? ow_world_region_cell(ow_zone_world(s->zone), e->region) : none;
}

static void emit_snapshot(void *ud, const uint8_t *p, size_t n) {
  client *c = ud;
  if (server_send_raw(c, p, n)) {
    c->srv->stats.snapshots_out++;
    c->reliable_bytes += n;
  }
}

static void publish_poses(ow_server *s);

/* Bytes per second of reliable traffic (snapshots) to this client, smoothed over about a second. */
static double reliable_rate(client *c, uint64_t now) {
  double dt = (double)(now - c->reliable_ns) / 1e9;
  if (dt >= 0.25) {
    double inst = (double)c->reliable_bytes / dt;
    c->reliable_bps = c->reliable_ns ? 0.7 * c->reliable_bps + 0.3 * inst : inst;
    c->reliable_bytes = 0;
    c->reliable_ns = now;
  }
  return c->reliable_bps;
}

void server_publish_cb(uv_timer_t *t) {
  ow_server *s = t->data;
  uint64_t now = ow_now_ns();
  if (s->poses_on_tick && now >= s->next_pose_ns) {
    uint64_t period = (uint64_t)(1e9 / s->cfg.pose_hz);
    s->next_pose_ns += period;
    if (s->next_pose_ns < now) s->next_pose_ns = now + period; /* fell behind: no burst */
    publish_poses(s);
    now = ow_now_ns();
  }
  /* Snapshots at snapshot_hz rather than at every tick: a snapshot is a delta, so a skipped tick
   * loses nothing, and at the pose rate a client's SNAPSHOT and POSES of one turn are queued
   * together and leave as one WebSocket message (47 messages per client per second at 60 Hz ticks
   * and 30 Hz poses, against 30). */
  if (s->cfg.snapshot_hz > 0 && s->cfg.snapshot_hz < s->cfg.tick_hz) {
    if (now < s->next_snapshot_ns) return;
    uint64_t period = (uint64_t)(1e9 / s->cfg.snapshot_hz);
    s->next_snapshot_ns += period;
    if (s->next_snapshot_ns < now) s->next_snapshot_ns = now + period; /* fell behind: no burst */
  }
  double budget = s->cfg.down_kbps * 1000.0 / 8.0; /* bytes per second per client */
  for (size_t i = 0; i < s->clients.len; i++) {
    client *c = s->clients.v[i];
    if (c->state != S_JOINED || !c->conn || ow_conn_closing(c->conn)) continue;
    /* Snapshots come first in the client's budget, but stay within it. A snapshot is a delta
     * against what the client acknowledged, so a client that acknowledges late got the same
     * growing delta every tick: 1.5 Mbit/s each in a 200-player room (bench/scaling), with its
     * APPLIED replies queued behind them for seconds, or, with its queue past send_limit_kb, a
     * disconnection. A round skipped here loses nothing: the next delta carries it. */
    if (ow_conn_queued(c->conn) > BACKLOG_BYTES || reliable_rate(c, now) > budget) continue;
    ow_view_update(c->view, s->replica, avatar_cell(s, c), s->radius_cells, now, emit_snapshot, c);
  }
  ow_samples_add(&s->stats.publish_ns, ow_now_ns() - now);
}

typedef struct cand {
  uint32_t j;   /* index of the sender in the publish's posers */
  float prio;
  uint64_t *pv; /* the receiver's prio entry for the sender (valid while rc->prio does not grow) */
} cand;

static int cmp_cand(const void *a, const void *b) {
  float x = ((const cand *)a)->prio, y = ((const cand *)b)->prio;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* A receiver's entry for one sender in rc->prio: the priority accumulator (float bits), the
 * version 2 slot the receiver knows the sender's avatar by (slot + 1; 0: none yet) and the low 16
 * bits of the last pose seq sent (a sender cannot send 65,536 poses between two publishes: the
 * pose rate limit is far below). One lookup gives all three. */
#define PV_PRIO(v) ((uint32_t)((v) >> 32))
#define PV_SLOT(v) ((uint32_t)((v) >> 16) & 0xffffu)
#define PV_SEQ(v) ((uint16_t)(v))
#define PV_MAKE(prio, slot, seq) \
  (((uint64_t)(prio) << 32) | ((uint64_t)((slot) & 0xffffu) << 16) | (uint16_t)(seq))

void server_poses_cb(uv_timer_t *t) { publish_poses(t->data); }

/* Poses: every receiver gets the freshest poses of the avatars around it, nearest first, as many as
 * its bandwidth budget allows; a priority accumulator makes sure far avatars are updated too, less
 * often. A client whose send queue is backing up gets none this round: stale poses are never
 * queued. */
static void publish_poses(ow_server *s) {
  uint64_t t0 = ow_now_ns();
  ow_world *w = ow_zone_world(s->zone);
  double total = s->cfg.down_kbps * 1000.0 / 8.0; /* bytes per second per client */
  /* Joined players with a pose, bucketed by region cell once per publish, so that each receiver
   * looks only at the cells around it instead of at every player in the zone. Each one's POSES
   * entry (avatar id and pose) is encoded once here and copied into every receiver's message. */
  OW_VEC(client *) posers = {0};
  OW_VEC(const ow_entity *) where = {0};
  OW_VEC(uint32_t) ent_at = {0}; /* poser j's entry is ents[ent_at[j] .. ent_at[j + 1]) */
  ow_buf ents;
  ow_buf_init(&ents);
  /* Version 2 (compact) entries: the root's cell and fixed-point position, and the bytes after
   * the root (its rotation and the bones), which are the same for every receiver. */
  float rs = ow_world_config_get(w)->region_size;
  OW_VEC(ow_pose2_root) roots = {0};
  OW_VEC(uint32_t) tail_at = {0}; /* poser j's tail is tails[tail_at[j] .. tail_at[j + 1]) */
  ow_buf tails;
  ow_buf_init(&tails);
  ow_map first;      /* cell -> index + 1 of the first poser in it */
  ow_map_init(&first);
  OW_VEC(uint32_t) next = {0};
  for (size_t k = 0; k < s->clients.len; k++) {
    client *sc = s->clients.v[k];
    if (sc->state != S_JOINED || !sc->pose_seq) continue;
    const ow_entity *e = ow_world_get(w, sc->avatar);
    if (!e) continue;
    uint64_t key = ow_cell_key(ow_world_region_cell(w, e->region));
    uint64_t *head = ow_map_get(&first, key);
    OW_VEC_PUSH(next, head ? (uint32_t)*head : 0);
    OW_VEC_PUSH(posers, sc);
    OW_VEC_PUSH(where, e);
    OW_VEC_PUSH(ent_at, (uint32_t)ents.len);
    ow_buf_u64(&ents, sc->avatar);
    ow_proto_put_pose(&ents, &sc->pose);
    ow_pose2_root r2;
    ow_pose2_root_of(&sc->pose, rs, &r2);
    OW_VEC_PUSH(roots, r2);
    OW_VEC_PUSH(tail_at, (uint32_t)tails.len);
    ow_pose2_put_tail(&tails, &sc->pose);
    ow_map_set(&first, key, posers.len);
  }
  OW_VEC_PUSH(ent_at, (uint32_t)ents.len);
  OW_VEC_PUSH(tail_at, (uint32_t)tails.len);
  OW_VEC(cand) cands = {0};
  for (size_t i = 0; i < s->clients.len && posers.len; i++) {
    client *rc = s->clients.v[i];
    if (rc->state != S_JOINED || !rc->conn || ow_conn_closing(rc->conn)) continue;
    if (ow_conn_queued(rc->conn) > BACKLOG_BYTES) continue;
    const ow_entity *me = ow_world_get(w, rc->avatar);
    if (!me) continue;
    ow_cell mc = ow_world_region_cell(w, me->region);
    cands.len = 0;
    size_t prio_cap = rc->prio.cap;
    size_t need = 0; /* bytes of every candidate's entry */
    ow_cell cc;
    for (ow_interest it = ow_interest_begin(mc, s->radius_cells); ow_interest_next(&it, &cc);) {
      uint64_t *head = ow_map_get(&first, ow_cell_key(cc));
      for (uint32_t j = head ? (uint32_t)*head : 0; j; j = next.v[j - 1]) {
        client *sc = posers.v[j - 1];
        if (sc == rc) continue;
        uint64_t *pv = ow_map_get(&rc->prio, sc->session);
        if (!pv) {
          /* Nothing sent yet: a seq that differs from the sender's. */
          ow_map_set(&rc->prio, sc->session, PV_MAKE(0, 0, sc->pose_seq + 1));
          pv = ow_map_get(&rc->prio, sc->session);
        }
        if (PV_SEQ(*pv) == (uint16_t)sc->pose_seq) continue; /* nothing new from this one */
        const ow_entity *other = where.v[j - 1];
        float prio;
        uint32_t bits = PV_PRIO(*pv);
        memcpy(&prio, &bits, 4);
        float ddx = other->xf.pos[0] - me->xf.pos[0], ddz = other->xf.pos[2] - me->xf.pos[2];
        prio += 1.0f / (1.0f + sqrtf(ddx * ddx + ddz * ddz) / 4.0f);
        memcpy(&bits, &prio, 4);
        *pv = PV_MAKE(bits, PV_SLOT(*pv), PV_SEQ(*pv));
        cand cd = {j - 1, prio, pv};
        OW_VEC_PUSH(cands, cd);
        /* v2: u16 slot, then the compact pose (the exact size is known only while writing). */
        need += rc->proto >= 2 ? 2 + 9 + tail_at.v[j] - tail_at.v[j - 1]
                               : ent_at.v[j] - ent_at.v[j - 1];
      }
    }
    if (!cands.len) continue;
    if (rc->prio.cap != prio_cap) /* the map grew while collecting: its entries moved */
      for (size_t k = 0; k < cands.len; k++)
        cands.v[k].pv = ow_map_get(&rc->prio, posers.v[cands.v[k].j]->session);
    /* Reliable traffic comes first; poses get what is left of the client's budget, and never less
     * than one pose per publish so that the nearest avatar keeps moving. Priority order decides
     * only when they do not all fit (header: type, length, server_time_ms, n). */
    double left = total - reliable_rate(rc, t0);
    size_t budget = left > 0 ? (size_t)(left / s->cfg.pose_hz) : 0;
    size_t head = rc->proto >= 2 ? 3 + 4 + 8 + 2 : 3 + 4 + 2;
    if (head + need > budget) qsort(cands.v, cands.len, sizeof *cands.v, cmp_cand);
    ow_buf *b = &s->out;
    b->len = 0;
    size_t at = ow_proto_begin(b, OW_MSG_POSES);
    ow_buf_u32(b, (uint32_t)(ow_now_ns() / 1000000));
    if (rc->proto >= 2) {
      ow_buf_i32(b, mc.x);
      ow_buf_i32(b, mc.z);
    }
    size_t count_at = b->len;
    ow_buf_u16(b, 0);
    uint16_t n = 0;
    /* Slots given in this message count only once it is queued: a message dropped below tells
     * the client nothing, so its avatars are bound again in the next one. */
    if (rc->proto >= 2 && rc->next_slot >= 0x8000) {
      /* Every slot is given anew, each with its avatar id again. */
      for (size_t k = 0; k < rc->prio.cap; k++)
        if (rc->prio.keys[k]) rc->prio.vals[k] &= ~(0xffffull << 16);
      if (rc->prio.has_zero) rc->prio.zero_val &= ~(0xffffull << 16);
      rc->next_slot = 0;
    }
    uint16_t given = 0;
    size_t written = 0;
    for (size_t k = 0; k < cands.len; k++) {
      uint32_t j = cands.v[k].j;
      client *sc = posers.v[j];
      uint64_t *pv = cands.v[k].pv;
      uint32_t slot = PV_SLOT(*pv); /* slot + 1, or 0 */
      size_t mark = b->len;
      if (rc->proto >= 2) {
        if (slot) {
          ow_buf_u16(b, (uint16_t)(slot - 1));
        } else {
          if (rc->next_slot + given >= 0x8000) continue; /* out of slots until the next round */
          ow_buf_u16(b, (uint16_t)(0x8000u | (rc->next_slot + given)));
          ow_buf_u64(b, sc->avatar);
        }
        ow_pose2_put_root(b, &sc->pose, &roots.v[j], mc.x, mc.z);
        ow_buf_put(b, tails.data + tail_at.v[j], tail_at.v[j + 1] - tail_at.v[j]);
      } else {
        ow_buf_put(b, ents.data + ent_at.v[j], ent_at.v[j + 1] - ent_at.v[j]);
      }
      if (n && b->len > budget) {
        b->len = mark;
        break;
      }
      if (rc->proto >= 2 && !slot) given++;
      n++;
      /* Priority back to 0 and the pose counted as sent, whether or not the message can be
       * queued below (a stale pose is never sent later). Its order among the written ones is
       * kept in cands[0 .. written). */
      *pv = PV_MAKE(0, slot, sc->pose_seq);
      cands.v[written++] = cands.v[k];
    }
    b->data[count_at] = (uint8_t)n;
    b->data[count_at + 1] = (uint8_t)(n >> 8);
    ow_proto_end(b, at);
    /* Poses are latest-value-wins: a full queue drops them instead of disconnecting. */
    if (ow_conn_queued(rc->conn) + b->len <= BACKLOG_BYTES && !ow_net_send(rc->conn, b->data, b->len)) {
      s->stats.poses_out += n;
      s->stats.bytes_out += b->len;
      /* Now the client knows the slots of this message: remember them, in the order given. */
      for (size_t k = 0, g = 0; k < written && g < given; k++) {
        uint64_t *pv = cands.v[k].pv;
        if (PV_SLOT(*pv)) continue;
        *pv = PV_MAKE(0, rc->next_slot + g + 1, PV_SEQ(*pv));
        g++;
      }
      rc->next_slot = (uint16_t)(rc->next_slot + given);
    }
  }
  OW_VEC_FREE(cands);
  OW_VEC_FREE(posers);
  OW_VEC_FREE(where);
  OW_VEC_FREE(ent_at);
  OW_VEC_FREE(next);
  ow_buf_deinit(&ents);
  OW_VEC_FREE(roots);
  OW_VEC_FREE(tail_at);
  ow_buf_deinit(&tails);
  ow_map_deinit(&first);
  ow_samples_add(&s->stats.poses_ns, ow_now_ns() - t0);
}
