/* zone: sessions, exactly-once actions, frames and group commit. See zone.h and docs/storage.md. */
#include "zone/zone.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>

#include "otherworld/protocol.h"

enum { FORMAT_VERSION = 1 };
/* The frame record's version byte. Version 1 (before variable-length actions) had none and began
 * with the frame number, so recovery tells them apart by that number (see scan_frame). */
enum { FRAME_RECORD_V2 = 2 };

/* Entity ids handed out after the last durable frame are lost with a crash, but clients may have
 * seen them in APPLIED replies. The store therefore keeps a high-water mark this far ahead of the
 * counter, and recovery continues from it: no id is ever given to two entities. */
#define ID_RESERVE (1ull << 20)

typedef struct ring_ent {
  uint64_t seq, frame;
  ow_result res;
} ring_ent;

typedef struct session {
  uint64_t id;
  ow_id account, avatar;
  uint64_t last_seq;
  uint32_t head, n; /* ring of the last `replay_window` results; head = next write */
  bool dirty;
  ring_ent ring[];
} session;

struct ow_zone_commit {
  ow_store *store;
  ow_batch batch;
  uint64_t frame;
  uint64_t sealed_ns;
  uint32_t retries; /* writes retried after a retryable store error (ow_zone_commit_run) */
  OW_VEC(ow_applied) actions;
  /* The argument bytes of the frame's actions that are not built-in (the caller's copy is gone
   * once ow_zone_act returns), one ow_malloc block each; actions[i].action.args points into them. */
  OW_VEC(uint8_t *) args;
  OW_VEC(ow_id) changed;
  ow_buf scratch;
};

struct ow_zone {
  ow_zone_config cfg;
  ow_content *content;
  ow_store *store;
  ow_world *world;
  ow_durable_fn on_durable;
  void *ud;
  ow_map sessions; /* id -> session* */
  ow_map players;  /* account -> avatar id */
  OW_VEC(session *) dirty_sessions;
  OW_VEC(ow_id) dirty_players;
  ow_zone_commit commits[2];
  ow_zone_commit *gather, *inflight;
  uint64_t durable_frame;
  int store_err;
  bool write_format;
  ow_zone_load_stats stats;
};

/* ---- records ------------------------------------------------------------------------------------ */

static void meta_key(ow_buf *k, const char *name) {
  k->len = 0;
  ow_buf_u8(k, OW_KEY_META);
  ow_buf_put(k, name, strlen(name));
}

static void put_meta_u64(ow_zone_commit *c, const char *name, uint64_t v) {
  ow_buf k;
  ow_buf_init(&k);
  meta_key(&k, name);
  ow_batch_put_begin(&c->batch, k.data, k.len);
  ow_buf_u64(&c->batch.ops, v);
  ow_batch_put_end(&c->batch);
  ow_buf_deinit(&k);
}

/* The session record holds only who it is and how far it got; each remembered result is a key of
 * its own ('Q'), written with its action and deleted when it leaves the replay window, so that a
 * frame writes a few bytes per action instead of every active session's whole window. */
static void encode_session(const session *s, ow_buf *out) {
  ow_buf_u64(out, s->account);
  ow_buf_u64(out, s->avatar);
  ow_buf_u64(out, s->last_seq);
}

/* Result keys lead with the frame: a frame's puts land together at the end of the range and the
 * results it evicts, written around the same old frame, lie together too. Keyed by session first,
 * every frame dirtied one LMDB page per active session (5 MB for 1,000 actions). */
#define RESULT_KEY_LEN 25
static void result_key(uint8_t k[RESULT_KEY_LEN], uint64_t frame, uint64_t sid, uint64_t seq) {
  k[0] = OW_KEY_RESULT;
  ow_be64_write(k + 1, frame);
  ow_be64_write(k + 9, sid);
  ow_be64_write(k + 17, seq);
}

static session *session_new(ow_zone *z, uint64_t id) {
  session *s = ow_calloc(1, sizeof *s + z->cfg.replay_window * sizeof(ring_ent));
  s->id = id;
  ow_map_set(&z->sessions, id, (uint64_t)(uintptr_t)s);
  return s;
}

static int decode_session(ow_zone *z, uint64_t id, const uint8_t *v, size_t vl) {
  ow_reader r;
  ow_reader_init(&r, v, vl);
  session *s = session_new(z, id);
  s->account = ow_rd_u64(&r);
  s->avatar = ow_rd_u64(&r);
  s->last_seq = ow_rd_u64(&r);
  return r.err || r.left ? OW_E_CORRUPT : 0;
}

/* Results come back in key order (frame, then session, then seq), so each session's ring fills
 * oldest first; when the window is smaller than when they were written, the newest stay. */
static int decode_result(ow_zone *z, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  if (kl != RESULT_KEY_LEN) return OW_E_CORRUPT;
  ow_reader r;
  ow_reader_init(&r, v, vl);
  ring_ent e;
  e.frame = ow_be64_read(k + 1);
  e.seq = ow_be64_read(k + 17);
  ow_result_decode(&r, &e.res);
  if (r.err || r.left) return OW_E_CORRUPT;
  uint64_t *sv = ow_map_get(&z->sessions, ow_be64_read(k + 9));
  if (!sv) return 0; /* a session record that a later frame replaced: nothing to remember */
  session *s = (session *)(uintptr_t)*sv;
  uint32_t w = z->cfg.replay_window;
  s->ring[s->head] = e;
  s->head = (s->head + 1) % w;
  if (s->n < w) s->n++;
  return 0;
}

static void mark_session(ow_zone *z, session *s) {
  if (!s->dirty) {
    s->dirty = true;
    OW_VEC_PUSH(z->dirty_sessions, s);
  }
}

/* ---- commits ------------------------------------------------------------------------------------- */

static void commit_init(ow_zone_commit *c, ow_store *store) {
  memset(c, 0, sizeof *c);
  c->store = store;
  ow_batch_init(&c->batch);
  ow_buf_init(&c->scratch);
}

/* Empties a commit for reuse. A frame that grew far beyond the usual (a writer stall, a checkpoint
 * of a million entities) gives its memory back instead of holding it forever. */
static void commit_reset(ow_zone_commit *c) {
  if (c->batch.ops.cap > (4u << 20) && c->batch.ops.cap > 4 * c->batch.ops.len) {
    ow_buf_deinit(&c->batch.ops);
    ow_buf_init(&c->batch.ops);
  }
  if (c->actions.cap > 65536 && c->actions.cap > 4 * c->actions.len) OW_VEC_FREE(c->actions);
  if (c->changed.cap > 65536 && c->changed.cap > 4 * c->changed.len) OW_VEC_FREE(c->changed);
  for (size_t i = 0; i < c->args.len; i++) ow_free(c->args.v[i]);
  c->args.len = 0;
  ow_batch_reset(&c->batch);
  c->actions.len = 0;
  c->changed.len = 0;
}

static void commit_deinit(ow_zone_commit *c) {
  for (size_t i = 0; i < c->args.len; i++) ow_free(c->args.v[i]);
  OW_VEC_FREE(c->args);
  ow_batch_deinit(&c->batch);
  OW_VEC_FREE(c->actions);
  OW_VEC_FREE(c->changed);
  ow_buf_deinit(&c->scratch);
}

typedef struct seal_ctx {
  ow_zone *z;
  ow_zone_commit *c;
} seal_ctx;

static void sink_put(void *ud, const ow_entity *e, ow_cell cell, bool had_old, ow_cell old) {
  seal_ctx *x = ud;
  uint8_t k[OW_KEY_ENTITY_LEN];
  if (had_old) {
    ow_key_entity(k, old.x, old.z, e->id);
    ow_batch_del(&x->c->batch, k, sizeof k);
  }
  ow_key_entity(k, cell.x, cell.z, e->id);
  ow_batch_put_begin(&x->c->batch, k, sizeof k);
  ow_world_encode(x->z->world, e, &x->c->batch.ops);
  ow_batch_put_end(&x->c->batch);
  OW_VEC_PUSH(x->c->changed, e->id);
}

static void sink_del(void *ud, ow_id id, ow_cell old) {
  seal_ctx *x = ud;
  uint8_t k[OW_KEY_ENTITY_LEN];
  ow_key_entity(k, old.x, old.z, id);
  ow_batch_del(&x->c->batch, k, sizeof k);
  OW_VEC_PUSH(x->c->changed, id);
}

static void sink_none_put(void *ud, const ow_entity *e, ow_cell c, bool h, ow_cell o) {
  (void)ud, (void)e, (void)c, (void)h, (void)o;
}
static void sink_none_del(void *ud, ow_id id, ow_cell o) { (void)ud, (void)id, (void)o; }

bool ow_zone_commit_wanted(const ow_zone *z, bool checkpoint) {
  size_t sp = 0;
  size_t p = ow_world_pending(z->world, &sp);
  return z->gather->actions.len || z->gather->batch.n || p || z->dirty_sessions.len ||
         z->dirty_players.len || z->write_format || (checkpoint && sp);
}

int ow_zone_commit_begin(ow_zone *z, bool checkpoint, ow_zone_commit **out) {
  *out = NULL;
  if (z->inflight) return OW_E_BUSY;
  ow_zone_commit *c = z->gather;
  if (z->store_err) {
    /* Durability is suspended: nothing is written again in this process (a retry after a failed
     * fsync could succeed over pages the kernel already dropped, and would then confirm later
     * frames without the failed one). Keep memory bounded and report what gathered as failed:
     * the actions applied while the failing write was in flight, and puts (accounts) whose
     * replies wait for this frame. */
    ow_change_sink none = {sink_none_put, sink_none_del, NULL};
    ow_world_drain(z->world, checkpoint, &none);
    for (size_t i = 0; i < z->dirty_sessions.len; i++) z->dirty_sessions.v[i]->dirty = false;
    z->dirty_sessions.len = z->dirty_players.len = 0;
    if ((c->actions.len || c->batch.n) && z->on_durable) {
      ow_frame_info fi = {.frame = c->frame, .status = z->store_err, .actions = c->actions.v,
                          .nactions = c->actions.len};
      z->on_durable(z->ud, &fi);
    }
    commit_reset(c);
    return z->store_err;
  }
  if (!ow_zone_commit_wanted(z, checkpoint)) return 0;
  c->sealed_ns = ow_now_ns();
  c->retries = 0;
  seal_ctx x = {z, c};
  ow_change_sink sink = {sink_put, sink_del, &x};
  ow_world_drain(z->world, checkpoint, &sink);

  uint8_t k[OW_KEY_ID_LEN];
  for (size_t i = 0; i < z->dirty_sessions.len; i++) {
    session *s = z->dirty_sessions.v[i];
    ow_key_id(k, OW_KEY_SESSION, s->id);
    ow_batch_put_begin(&c->batch, k, sizeof k);
    encode_session(s, &c->batch.ops);
    ow_batch_put_end(&c->batch);
    s->dirty = false;
  }
  z->dirty_sessions.len = 0;
  /* Each action's result, in action order; a result pushed out of the window is deleted after the
   * put that pushed it, so a window smaller than one frame's actions still ends up right. */
  for (size_t i = 0; i < c->actions.len; i++) {
    const ow_applied *a = &c->actions.v[i];
    uint8_t rk[RESULT_KEY_LEN];
    result_key(rk, c->frame, a->session, a->seq);
    ow_batch_put_begin(&c->batch, rk, sizeof rk);
    ow_result_encode(&a->result, &c->batch.ops);
    ow_batch_put_end(&c->batch);
    if (a->evicted) {
      result_key(rk, a->evicted_frame, a->session, a->evicted);
      ow_batch_del(&c->batch, rk, sizeof rk);
    }
  }
  for (size_t i = 0; i < z->dirty_players.len; i++) {
    ow_key_id(k, OW_KEY_PLAYER, z->dirty_players.v[i]);
    ow_batch_put_begin(&c->batch, k, sizeof k);
    ow_buf_u64(&c->batch.ops, *ow_map_get(&z->players, z->dirty_players.v[i]));
    ow_batch_put_end(&c->batch);
  }
  z->dirty_players.len = 0;

  /* The frame record (version 2, docs/storage.md): the inputs with their results, and the ids of
   * the resulting delta. Each action is length-prefixed, so an action of any row fits. */
  ow_key_id(k, OW_KEY_FRAME, c->frame);
  ow_batch_put_begin(&c->batch, k, sizeof k);
  ow_buf *o = &c->batch.ops;
  ow_buf_u8(o, FRAME_RECORD_V2);
  ow_buf_u64(o, c->frame);
  ow_buf_u32(o, (uint32_t)c->actions.len);
  for (size_t i = 0; i < c->actions.len; i++) {
    const ow_applied *a = &c->actions.v[i];
    ow_buf_u64(o, a->session);
    ow_buf_u64(o, a->seq);
    ow_buf_u16(o, (uint16_t)ow_action_size(&a->action));
    ow_action_encode(&a->action, o);
    ow_result_encode(&a->result, o);
  }
  ow_buf_u32(o, (uint32_t)c->changed.len);
  for (size_t i = 0; i < c->changed.len; i++) ow_buf_u64(o, c->changed.v[i]);
  ow_batch_put_end(&c->batch);
  if (z->cfg.frame_log_keep && c->frame > z->cfg.frame_log_keep) {
    ow_key_id(k, OW_KEY_FRAME, c->frame - z->cfg.frame_log_keep);
    ow_batch_del(&c->batch, k, sizeof k);
  }
  put_meta_u64(c, "frame", c->frame);
  put_meta_u64(c, "next_id", ow_world_next_id(z->world) + ID_RESERVE);
  if (z->write_format) {
    put_meta_u64(c, "format", FORMAT_VERSION);
    put_meta_u64(c, "content", z->content->hash);
    z->write_format = false;
  }

  z->inflight = c;
  z->gather = (c == &z->commits[0]) ? &z->commits[1] : &z->commits[0];
  z->gather->frame = c->frame + 1;
  *out = c;
  return 0;
}

/* Writes of a retryable failure (a networked store's serialization conflict or dropped connection)
 * wrote nothing, so the same batch is written again after a pause that doubles from 1 ms; this runs
 * on a worker thread, so a pause delays only this frame's confirmation. After the last attempt the
 * error is reported like any other and becomes the zone's sticky error. */
enum { COMMIT_ATTEMPTS = 8 };

int ow_zone_commit_run(ow_zone_commit *c) {
  int rc = 0;
  for (int attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
    if (attempt) {
      struct timespec ts = {0, 1000000L << (attempt - 1)};
      nanosleep(&ts, NULL);
    }
    rc = ow_store_write(c->store, &c->batch);
    if (!ow_store_error_retryable(rc)) break;
    c->retries++;
  }
  return rc;
}

void ow_zone_commit_end(ow_zone *z, ow_zone_commit *c, int rc) {
  OW_ASSERT(c == z->inflight);
  if (rc) {
    /* The one error line of a disk fault: there is no second write, so no second line. */
    z->store_err = rc;
    OW_ERROR("durability_suspended", "frame=%llu durable_frame=%llu actions=%zu err=%s msg=\"%s\" "
             "hint=\"the frame and everything after it are not durable; actions are refused and "
             "nothing more is written until restart, which re-reads the store\"",
             (unsigned long long)c->frame, (unsigned long long)z->durable_frame, c->actions.len,
             ow_err_name(rc), ow_strerror(rc));
  } else {
    z->durable_frame = c->frame;
  }
  if (c->retries)
    OW_WARN("commit_retried", "frame=%llu retries=%u status=%s", (unsigned long long)c->frame,
            c->retries, ow_err_name(rc));
  if (z->on_durable) {
    ow_frame_info fi = {.frame = c->frame,
                        .status = rc,
                        .actions = c->actions.v,
                        .nactions = c->actions.len,
                        .changed = c->changed.v,
                        .nchanged = c->changed.len,
                        .commit_ns = ow_now_ns() - c->sealed_ns,
                        .batch = rc ? NULL : &c->batch};
    z->on_durable(z->ud, &fi);
  }
  commit_reset(c);
  z->inflight = NULL;
}

int ow_zone_commit_sync(ow_zone *z, bool checkpoint) {
  for (;;) {
    ow_zone_commit *c;
    int rc = ow_zone_commit_begin(z, checkpoint, &c);
    if (rc || !c) return rc;
    rc = ow_zone_commit_run(c);
    ow_zone_commit_end(z, c, rc);
    if (rc) return rc;
  }
}

uint64_t ow_zone_put(ow_zone *z, const void *k, size_t kl, const void *v, size_t vl) {
  ow_batch_put(&z->gather->batch, k, kl, v, vl);
  return z->gather->frame;
}

uint64_t ow_zone_del(ow_zone *z, const void *k, size_t kl) {
  ow_batch_del(&z->gather->batch, k, kl);
  return z->gather->frame;
}

uint64_t ow_zone_frame(const ow_zone *z) { return z->gather->frame; }
uint64_t ow_zone_durable_frame(const ow_zone *z) { return z->durable_frame; }
int ow_zone_store_error(const ow_zone *z) { return z->store_err; }
ow_world *ow_zone_world(ow_zone *z) { return z->world; }
const ow_zone_load_stats *ow_zone_load_info(const ow_zone *z) { return &z->stats; }

/* ---- sessions and actions --------------------------------------------------------------------- */

static session *find_session(const ow_zone *z, uint64_t id) {
  uint64_t *v = ow_map_get(&z->sessions, id);
  return v ? (session *)(uintptr_t)*v : NULL;
}

int ow_zone_login(ow_zone *z, ow_id account, uint64_t *session_id, ow_id *avatar) {
  if (!account) return OW_E_INVAL;
  if (z->store_err) return OW_E_STORE_FAILED; /* a session that could never be written */
  uint64_t *av = ow_map_get(&z->players, account);
  ow_id a = av ? *av : 0;
  /* A player record that names no avatar of this account (a damaged store) gets a new one. */
  const ow_entity *ae = a ? ow_world_get(z->world, a) : NULL;
  if (!ae || ae->owner != account || z->content->types[ae->type].kind != OW_KIND_AVATAR) {
    ow_transform xf;
    ow_transform_identity(&xf);
    memcpy(xf.pos, z->content->spawn, sizeof xf.pos);
    int rc = ow_world_spawn(z->world, z->content->avatar_type, account, 0, &xf, &a);
    if (rc) return rc;
    ow_transform_identity(&xf);
    rc = ow_world_spawn(z->world, z->content->inventory_type, account, a, &xf, NULL);
    if (rc) return rc;
    ow_map_set(&z->players, account, a);
    OW_VEC_PUSH(z->dirty_players, account);
  }
  uint64_t id = 0;
  while (!id || find_session(z, id)) {
    if (getrandom(&id, sizeof id, 0) != sizeof id) return -errno;
  }
  session *s = session_new(z, id);
  s->account = account;
  s->avatar = a;
  mark_session(z, s);
  *session_id = id;
  if (avatar) *avatar = a;
  return 0;
}

int ow_zone_session(ow_zone *z, uint64_t id, ow_id *account, ow_id *avatar, uint64_t *last_seq) {
  session *s = find_session(z, id);
  if (!s) return OW_E_NO_SESSION;
  if (account) *account = s->account;
  if (avatar) *avatar = s->avatar;
  if (last_seq) *last_seq = s->last_seq;
  return 0;
}

int ow_zone_act(ow_zone *z, uint64_t sid, uint64_t seq, const ow_action *a, ow_result *res,
                uint64_t *frame, bool *replayed) {
  session *s = find_session(z, sid);
  *replayed = false;
  if (!s) return OW_E_NO_SESSION;
  if (!seq) return OW_E_INVAL;
  uint32_t w = z->cfg.replay_window;
  if (seq <= s->last_seq) {
    for (uint32_t i = 0; i < s->n; i++) {
      const ring_ent *e = &s->ring[(s->head + w - 1 - i) % w];
      if (e->seq == seq) {
        *res = e->res;
        *frame = e->frame;
        *replayed = true;
        return 0;
      }
    }
    return OW_E_SEQ_TOO_OLD;
  }
  /* After a failed write no action can become durable in this process: refuse it unapplied (its
   * sequence number stays free) rather than change a world that can no longer be saved. */
  if (z->store_err) return OW_E_STORE_FAILED;
  ow_world_apply(z->world, s->account, s->avatar, a, res);
  ow_zone_commit *c = z->gather;
  uint64_t evicted = s->n == w ? s->ring[s->head].seq : 0;
  uint64_t evicted_frame = s->n == w ? s->ring[s->head].frame : 0;
  s->ring[s->head] = (ring_ent){.seq = seq, .frame = c->frame, .res = *res};
  s->head = (s->head + 1) % w;
  if (s->n < w) s->n++;
  s->last_seq = seq;
  mark_session(z, s);
  ow_applied ap = {.session = sid, .seq = seq, .action = *a, .result = *res, .evicted = evicted,
                    .evicted_frame = evicted_frame};
  /* The caller's argument bytes are gone once this returns; the frame keeps a copy. */
  ap.action.args = NULL;
  if (ow_action_builtin(a->type)) {
    ap.action.nargs = 0;
  } else if (a->nargs) {
    uint8_t *copy = ow_malloc(a->nargs);
    memcpy(copy, a->args, a->nargs);
    OW_VEC_PUSH(c->args, copy);
    ap.action.args = copy;
  }
  OW_VEC_PUSH(c->actions, ap);
  *frame = c->frame;
  return 0;
}

int ow_zone_stream(ow_zone *z, uint64_t sid, ow_id entity, const ow_transform *xf) {
  session *s = find_session(z, sid);
  if (!s) return OW_E_NO_SESSION;
  return ow_world_stream(z->world, s->account, s->avatar, entity, xf);
}

/* ---- open / recover ----------------------------------------------------------------------------- */

static int load_meta(ow_zone *z, const char *name, uint64_t *v) {
  ow_buf k, val;
  ow_buf_init(&k);
  ow_buf_init(&val);
  meta_key(&k, name);
  int rc = ow_store_get(z->store, k.data, k.len, &val);
  if (!rc) {
    ow_reader r;
    ow_reader_init(&r, val.data, val.len);
    *v = ow_rd_u64(&r);
    if (r.err || r.left) rc = OW_E_CORRUPT;
  }
  ow_buf_deinit(&k);
  ow_buf_deinit(&val);
  return rc;
}

static int scan_entity(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  ow_zone *z = ud;
  ow_cell c;
  uint64_t id;
  if (!ow_key_parse_entity(k, kl, &c.x, &c.z, &id)) return OW_E_CORRUPT;
  int rc = ow_world_load(z->world, id, c, v, vl);
  if (rc) OW_ERROR("load_entity_failed", "id=%llu err=%s", (unsigned long long)id, ow_err_name(rc));
  return rc;
}

static int scan_session(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  /* Session ids are never 0 (ow_zone_login): the map keeps key 0 aside, where ow_zone_close
   * would not free it. */
  if (kl != OW_KEY_ID_LEN || !ow_be64_read(k + 1)) return OW_E_CORRUPT;
  return decode_session(ud, ow_be64_read(k + 1), v, vl);
}

static int scan_result(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  return decode_result(ud, k, kl, v, vl);
}

static int scan_player(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  ow_zone *z = ud;
  ow_reader r;
  ow_reader_init(&r, v, vl);
  uint64_t avatar = ow_rd_u64(&r);
  if (kl != OW_KEY_ID_LEN || r.err || r.left || !ow_be64_read(k + 1)) return OW_E_CORRUPT;
  ow_map_set(&z->players, ow_be64_read(k + 1), avatar);
  return 0;
}

/* Says which kind of record stopped recovery: the operator's first question. */
static int recover_failed(const char *what, int rc) {
  OW_ERROR("recovery_record_failed", "records=%s err=%s", what, ow_err_name(rc));
  return rc;
}

static int recover(ow_zone *z) {
  uint64_t format = 0, frame = 0, next = 1;
  int rc = load_meta(z, "format", &format);
  if (rc == OW_E_NOT_FOUND) {
    /* The format value is written with the first frame, so a store without one is either empty
     * or damaged. Seeding over a damaged one would give its entities' ids to new ones. */
    uint64_t entries = 0;
    if ((rc = ow_store_stat(z->store, &entries, NULL))) return rc;
    if (entries) {
      OW_ERROR("recovery_no_format", "entries=%llu hint=\"the store holds data but no format "
               "value: it is damaged, and seeding a new world over it would mix the two\"",
               (unsigned long long)entries);
      return OW_E_CORRUPT;
    }
    /* An empty store: seed the content's default world (the first frame). */
    for (uint32_t i = 0; i < z->content->nseeds; i++) {
      const ow_seed *sd = &z->content->seeds[i];
      ow_id id;
      rc = ow_world_spawn(z->world, sd->type, 0, 0, &sd->xf, &id);
      for (uint16_t j = 0; !rc && j < sd->nitems; j++)
        rc = ow_world_give(z->world, id, sd->items[j].item, sd->items[j].count, NULL);
      if (rc) return rc;
    }
    z->write_format = true;
    z->stats.seeded = true;
    return ow_zone_commit_sync(z, true);
  }
  if (rc) return rc;
  if (format != FORMAT_VERSION) return OW_E_VERSION;
  if ((rc = load_meta(z, "frame", &frame)) || (rc = load_meta(z, "next_id", &next)))
    return recover_failed("meta", rc);
  if (!next || next > OW_ID_MAX) return recover_failed("meta next_id", OW_E_CORRUPT);
  uint8_t p = OW_KEY_REGION;
  if ((rc = ow_store_scan(z->store, &p, 1, scan_entity, z))) return recover_failed("entity", rc);
  if ((rc = ow_world_link(z->world))) return rc;
  p = OW_KEY_SESSION;
  if ((rc = ow_store_scan(z->store, &p, 1, scan_session, z))) return recover_failed("session", rc);
  p = OW_KEY_RESULT;
  if ((rc = ow_store_scan(z->store, &p, 1, scan_result, z))) return recover_failed("result", rc);
  p = OW_KEY_PLAYER;
  if ((rc = ow_store_scan(z->store, &p, 1, scan_player, z))) return recover_failed("player", rc);
  if (next > ow_world_next_id(z->world)) ow_world_set_next_id(z->world, next);
  z->durable_frame = frame;
  z->gather->frame = frame + 1;
  return 0;
}

int ow_zone_open(ow_zone **out, const ow_zone_config *cfg, ow_content *content, ow_store *store,
                 ow_durable_fn on_durable, void *ud) {
  *out = NULL;
  uint64_t t0 = ow_now_ns();
  size_t mem0 = ow_mem_used();
  ow_zone *z = ow_calloc(1, sizeof *z);
  z->cfg = *cfg;
  if (!z->cfg.replay_window) z->cfg.replay_window = 64;
  if (z->cfg.replay_window > 65535) z->cfg.replay_window = 65535;
  z->content = content;
  z->store = store;
  z->on_durable = on_durable;
  z->ud = ud;
  z->world = ow_world_create(&z->cfg.world, content);
  ow_map_init(&z->sessions);
  ow_map_init(&z->players);
  commit_init(&z->commits[0], store);
  commit_init(&z->commits[1], store);
  z->gather = &z->commits[0];
  z->gather->frame = 1;
  int rc = recover(z);
  if (rc) {
    OW_ERROR("recovery_failed", "err=%s msg=\"%s\"", ow_err_name(rc), ow_strerror(rc));
    ow_zone_close(z);
    return rc;
  }
  z->stats.entities = ow_world_count(z->world);
  z->stats.sessions = z->sessions.len;
  z->stats.seconds = (double)(ow_now_ns() - t0) / 1e9;
  z->stats.bytes_per_entity =
      z->stats.entities ? (double)(ow_mem_used() - mem0) / (double)z->stats.entities : 0;
  *out = z;
  return 0;
}

void ow_zone_close(ow_zone *z) {
  if (!z) return;
  for (size_t i = 0; i < z->sessions.cap; i++)
    if (z->sessions.keys[i]) ow_free((void *)(uintptr_t)z->sessions.vals[i]);
  ow_map_deinit(&z->sessions);
  ow_map_deinit(&z->players);
  OW_VEC_FREE(z->dirty_sessions);
  OW_VEC_FREE(z->dirty_players);
  commit_deinit(&z->commits[0]);
  commit_deinit(&z->commits[1]);
  ow_world_destroy(z->world);
  ow_free(z);
}

/* ---- frame log ---------------------------------------------------------------------------------- */

typedef struct log_ctx {
  ow_frame_visit_fn fn;
  void *ud;
} log_ctx;

/* A frame record of either version. Version 1 (written before actions had variable-length
 * arguments) is u64 frame, u32 n, n x (u64 session, u64 seq, 63-byte action, result), the changed
 * ids; its first eight bytes are the frame number of its key. Version 2 is u8 2, then the same
 * with each action preceded by its u16 length. A version 2 record never passes for version 1: its
 * first eight bytes read as 2 + 256 x frame, which is not the frame for any frame below 2^56. */
static int scan_frame(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  log_ctx *x = ud;
  if (kl != OW_KEY_ID_LEN) return OW_E_CORRUPT;
  uint64_t key_frame = ow_be64_read(k + 1);
  ow_reader r;
  ow_reader_init(&r, v, vl);
  ow_reader peek = r;
  bool v1 = ow_rd_u64(&peek) == key_frame && !peek.err;
  if (!v1 && ow_rd_u8(&r) != FRAME_RECORD_V2) return OW_E_CORRUPT;
  uint64_t frame = ow_rd_u64(&r);
  uint32_t n = ow_rd_u32(&r);
  if (r.err || frame != key_frame) return OW_E_CORRUPT;
  if (!n) return x->fn(x->ud, frame, NULL);
  for (uint32_t i = 0; i < n; i++) {
    ow_applied a = {0};
    a.session = ow_rd_u64(&r);
    a.seq = ow_rd_u64(&r);
    size_t len = v1 ? 1 + OW_ACTION_BUILTIN_ARGS : ow_rd_u16(&r);
    if (r.err || ow_action_decode(&r, len, &a.action) || ow_result_decode(&r, &a.result))
      return OW_E_CORRUPT;
    int rc = x->fn(x->ud, frame, &a);
    if (rc) return rc;
  }
  return 0;
}

int ow_zone_frame_log_each(ow_store *store, ow_frame_visit_fn fn, void *ud) {
  log_ctx x = {fn, ud};
  uint8_t p = OW_KEY_FRAME;
  return ow_store_scan(store, &p, 1, scan_frame, &x);
}
