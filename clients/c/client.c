/* client: the otherworld client library over libwebsockets. See include/otherworld/client.h. */
#include "otherworld/client.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <libwebsockets.h>

#include "client_int.h"

#define RX_MAX_DEFAULT ((size_t)1 << 20)
#define TX_MAX_DEFAULT ((size_t)256 << 10)
/* Until WELCOME says otherwise, the documented default. */
#define MAX_MESSAGE_DEFAULT 4096u
/* A WELCOME announcing less than this is ignored: every pose (131 bytes at most) must fit. */
#define MAX_MESSAGE_MIN 256u
/* The server answers every action at once and confirms it within a frame or two, and it limits a
 * session to 40 actions in a burst: a thousand unconfirmed ones means the server has stopped
 * confirming, and holding more only grows the re-send burst. */
#define MAX_UNCONFIRMED 1024
#define SUBPROTOCOL "otherworld.v1"
/* lws reads at most this much per callback; the server's WebSocket messages are at most 60 KiB,
 * so most arrive in one piece. lws also sizes the socket's send buffer from it. */
#define LWS_RX_CHUNK 65536

enum conn_state { CS_CLOSED, CS_CONNECTING, CS_OPEN };

/* An action issued and not yet confirmed durable. */
typedef struct pending_action {
  uint64_t seq;
  uint32_t req;
  uint32_t gen;   /* connection it was last sent on (0: not sent yet) */
  uint32_t applied_gen; /* connection on which APPLIED arrived (0: none): frame is meaningful */
  uint64_t frame;       /* APPLIED's frame */
  bool durable;         /* listed by the DURABLE being handled */
  ow_action a;          /* a.args (a type that is not built-in): our own copy, freed with it */
} pending_action;

static void act_free(pending_action *pa) { ow_free((void *)pa->a.args); }

/* An entity of the local table: the decoded state plus owned copies of its string properties.
 * An entity that left the client's view stays here, absent, as long as a snapshot the server may
 * still use as a delta base lists it: such a delta does not send it again if it comes back. */
typedef struct table_entity {
  ow_wire_entity e;
  char *strings;
  bool present;
} table_entity;

/* The membership (sorted ids) of a snapshot the client applied: a possible delta base. The server
 * keeps its last 32 snapshots, so older ones can never be a base. */
#define HIST 32
typedef OW_VEC(uint64_t) idvec;
typedef struct snap_hist {
  uint32_t id;
  size_t n;
  uint64_t *ids;
} snap_hist;

struct ow_client_ctx {
  struct lws_context *lws;
  ow_client *head;
  bool deferred; /* some client has a close to report from the service loop */
  lws_sorted_usec_list_t wake;
};

struct ow_client {
  ow_client_ctx *ctx;
  ow_client *prev, *next;
  ow_client_callbacks cb;
  void *ud;

  /* transport */
  struct lws *wsi;
  int state;
  uint32_t gen;          /* connection number, from 1 */
  bool connecting_sync;  /* inside lws_client_connect_via_info() */
  bool report_close;     /* a close (with error) waits to be reported from the service loop */
  int close_code;
  char close_text[160];
  bool close_after_flush;
  int busy;   /* nesting depth of calls into this client from lws or the test */
  bool dead;  /* destroyed while busy: freed when busy returns to 0 */
  char *host, *path;
  int port;

  /* limits and buffers */
  size_t rx_max, tx_max;
  uint32_t max_message;
  ow_buf rx;
  bool rx_discard; /* rest of an oversized message */
  ow_buf tx;       /* whole protocol messages, from txoff on */
  size_t txoff;
  bool has_pose;
  ow_pose pose;
  ow_buf pbuf; /* the pose, encoded at write time */
  uint8_t *wbuf; /* LWS_PRE + max_message */
  size_t wcap;

  /* session */
  uint32_t next_req;
  bool have_session;
  ow_client_session session;
  uint64_t next_seq;
  bool joined; /* JOINED received on this connection and no LEAVE since */
  pending_action *acts; /* ascending seq */
  size_t nacts, capacts;

  /* replication */
  ow_map ents; /* id -> table_entity*, absent ones included */
  size_t npresent;
  bool snap_open; /* a chunked snapshot is in progress */
  uint32_t snap_id, snap_base;
  uint64_t snap_frame;
  idvec snap_listed, snap_removed; /* of the snapshot in progress */
  snap_hist hist[HIST]; /* applied snapshots, oldest first */
  size_t nhist;

  /* protocol version 2: the version WELCOME agreed (1 until then), and POSES slots -> avatar id
   * (bound by the server on this connection) */
  uint16_t proto;
  ow_map slots;

  /* world description */
  bool have_world;
  ow_client_world world;
  void *world_mem;

  ow_client_stats stats;

  /* scratch */
  uint64_t *seqs;
  size_t seqcap;
  ow_wire_entity *scratch;
  size_t scratchcap;
  char text[OW_TEXT_MAX + 1]; /* the decoder refuses longer texts; names are at most 255 */
};

/* A callback is skipped once its client is destroyed. */
#define EMIT(c, name, ...)                                                                 \
  do {                                                                                     \
    if (!(c)->dead && (c)->cb.name) (c)->cb.name((c), (c)->ud, __VA_ARGS__);               \
  } while (0)
#define EMIT0(c, name)                                                                     \
  do {                                                                                     \
    if (!(c)->dead && (c)->cb.name) (c)->cb.name((c), (c)->ud);                            \
  } while (0)

static void free_client(ow_client *c);

/* busy/unbusy bracket every entry from lws (and the test hooks) so that a callback may destroy
 * its own client: the memory goes only when the outermost entry returns. */
static void busy(ow_client *c) { c->busy++; }
static void unbusy(ow_client *c) {
  if (--c->busy == 0 && c->dead) free_client(c);
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* A NUL-terminated copy of a wire string, in the client's scratch (valid until the next one). */
static const char *cstr(ow_client *c, ow_str s) {
  OW_ASSERT(s.n < sizeof c->text);
  if (s.n) memcpy(c->text, s.p, s.n);
  c->text[s.n] = 0;
  return c->text;
}

static void error_local(ow_client *c, uint32_t req, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_local(ow_client *c, uint32_t req, int code, const char *fmt, ...) {
  char text[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  EMIT(c, on_error, req, code, text);
}

static uint32_t new_req(ow_client *c) {
  /* Ids stay within 1..INT32_MAX so that functions can return them as a positive int. */
  if (c->next_req == 0 || c->next_req > INT32_MAX) c->next_req = 1;
  return c->next_req++;
}

static size_t tx_pending(const ow_client *c) { return c->tx.len - c->txoff; }

/* ---- entity table ---------------------------------------------------------------------------- */

static table_entity *ent_get(const ow_client *c, uint64_t id) {
  uint64_t *v = ow_map_get(&c->ents, id);
  return v ? (table_entity *)(uintptr_t)*v : NULL;
}

static void ent_free(table_entity *t) {
  ow_free(t->strings);
  ow_free(t);
}

/* Stores a decoded entity as present, copying its string properties out of the message. */
static table_entity *ent_put(ow_client *c, const ow_wire_entity *e) {
  table_entity *t = ent_get(c, e->id);
  if (!t) {
    t = ow_calloc(1, sizeof *t);
    ow_map_set(&c->ents, e->id, (uint64_t)(uintptr_t)t);
  }
  if (!t->present) c->npresent++;
  t->present = true;
  ow_free(t->strings);
  t->strings = NULL;
  t->e = *e;
  size_t need = 0;
  for (uint8_t i = 0; i < e->nprops; i++)
    if (e->props[i].type == OW_PROP_STRING) need += e->props[i].v.s.n + 1;
  if (need) {
    t->strings = ow_malloc(need);
    char *p = t->strings;
    for (uint8_t i = 0; i < e->nprops; i++) {
      if (e->props[i].type != OW_PROP_STRING) continue;
      size_t n = e->props[i].v.s.n;
      memcpy(p, e->props[i].v.s.p, n);
      p[n] = 0;
      t->e.props[i].v.s.p = p;
      p += n + 1;
    }
  }
  return t;
}

/* Marks an entity absent (it stays stored while a possible base lists it) and tells the caller. */
static void ent_hide(ow_client *c, table_entity *t) {
  if (!t->present) return;
  t->present = false;
  c->npresent--;
  EMIT(c, on_removed, t->e.id);
}

static void ents_clear(ow_client *c) {
  for (size_t i = 0; i < c->ents.cap; i++)
    if (c->ents.keys[i]) ent_free((table_entity *)(uintptr_t)c->ents.vals[i]);
  if (c->ents.has_zero) ent_free((table_entity *)(uintptr_t)c->ents.zero_val);
  ow_map_deinit(&c->ents);
  ow_map_init(&c->ents);
  c->npresent = 0;
}

/* Calls fn for every stored entity, absent ones included. */
static void ents_each_all(const ow_client *c, void (*fn)(void *ud, table_entity *t), void *ud) {
  for (size_t i = 0; i < c->ents.cap; i++)
    if (c->ents.keys[i]) fn(ud, (table_entity *)(uintptr_t)c->ents.vals[i]);
  if (c->ents.has_zero) fn(ud, (table_entity *)(uintptr_t)c->ents.zero_val);
}

const ow_wire_entity *ow_client_entity(const ow_client *c, uint64_t id) {
  table_entity *t = ent_get(c, id);
  return t && t->present ? &t->e : NULL;
}

size_t ow_client_entity_count(const ow_client *c) { return c->npresent; }

typedef struct each_ctx {
  void (*fn)(void *ud, const ow_wire_entity *e);
  void *ud;
} each_ctx;

static void each_present(void *ud, table_entity *t) {
  each_ctx *x = ud;
  if (t->present) x->fn(x->ud, &t->e);
}

void ow_client_entity_each(const ow_client *c, void (*fn)(void *ud, const ow_wire_entity *e),
                           void *ud) {
  each_ctx x = {fn, ud};
  ents_each_all(c, each_present, &x);
}

/* ---- snapshot history ------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static bool sorted_has(const uint64_t *v, size_t n, uint64_t id) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (v[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && v[lo] == id;
}

static snap_hist *hist_find(ow_client *c, uint32_t id) {
  for (size_t i = 0; i < c->nhist; i++)
    if (c->hist[i].id == id) return &c->hist[i];
  return NULL;
}

/* Drops the oldest `k` entries. */
static void hist_drop(ow_client *c, size_t k) {
  for (size_t i = 0; i < k; i++) ow_free(c->hist[i].ids);
  memmove(c->hist, c->hist + k, (c->nhist - k) * sizeof *c->hist);
  c->nhist -= k;
}

static void hist_clear(ow_client *c) { hist_drop(c, c->nhist); }

typedef struct purge_ctx {
  ow_client *c;
  idvec ids;
} purge_ctx;

static void purge_one(void *ud, table_entity *t) {
  purge_ctx *x = ud;
  if (t->present) return;
  for (size_t i = 0; i < x->c->nhist; i++)
    if (sorted_has(x->c->hist[i].ids, x->c->hist[i].n, t->e.id)) return;
  OW_VEC_PUSH(x->ids, t->e.id);
}

/* Frees absent entities that no possible base lists any more. */
static void purge_absent(ow_client *c) {
  if (c->npresent == c->ents.len) return;
  purge_ctx x = {c, {0}};
  ents_each_all(c, purge_one, &x);
  for (size_t i = 0; i < x.ids.len; i++) {
    table_entity *t = ent_get(c, x.ids.v[i]);
    ow_map_del(&c->ents, x.ids.v[i]);
    ent_free(t);
  }
  OW_VEC_FREE(x.ids);
}

typedef struct member_ctx {
  ow_client *c;
  const uint64_t *m;
  size_t n;
  idvec hide, show;
} member_ctx;

static void member_one(void *ud, table_entity *t) {
  member_ctx *x = ud;
  bool in = sorted_has(x->m, x->n, t->e.id);
  if (t->present && !in) OW_VEC_PUSH(x->hide, t->e.id);
  if (!t->present && in) OW_VEC_PUSH(x->show, t->e.id);
}

/* Makes exactly the entities of the sorted set m present. Entities that come back unchanged were
 * kept while absent, so their stored state is current. */
static void set_membership(ow_client *c, const uint64_t *m, size_t n) {
  member_ctx x = {c, m, n, {0}, {0}};
  ents_each_all(c, member_one, &x);
  for (size_t i = 0; i < x.hide.len && !c->dead; i++) ent_hide(c, ent_get(c, x.hide.v[i]));
  for (size_t i = 0; i < x.show.len && !c->dead; i++) {
    table_entity *t = ent_get(c, x.show.v[i]);
    t->present = true;
    c->npresent++;
    EMIT(c, on_entity, &t->e);
  }
  OW_VEC_FREE(x.hide);
  OW_VEC_FREE(x.show);
}

/* ---- world description ----------------------------------------------------------------------- */

static void world_free(ow_client *c) {
  ow_free(c->world_mem);
  c->world_mem = NULL;
  c->have_world = false;
  memset(&c->world, 0, sizeof c->world);
}

/* A str8 name of the world description. Measuring (*s NULL): adds its size to *names. Filling:
 * copies it NUL-terminated to *s, advances *s and returns the copy. */
static const char *rd_name(ow_reader *r, char **s, size_t *names) {
  uint8_t len = ow_rd_u8(r);
  const uint8_t *name = ow_rd_bytes(r, len);
  if (r->err) return NULL;
  if (!*s) {
    *names += (size_t)len + 1;
    return NULL;
  }
  char *out = *s;
  memcpy(out, name, len);
  out[len] = 0;
  *s += len + 1;
  return out;
}

/* JOINED after the req: the layout of docs/protocol.md "The world description". Decoded into one
 * allocation: the three arrays, then the NUL-terminated names. Pass 0 validates and measures,
 * pass 1 fills. */
static int parse_world(ow_client *c, const uint8_t *p, size_t n) {
  size_t names = 0;
  uint16_t nt = 0, nr = 0, nk = 0;
  for (int pass = 0; pass < 2; pass++) {
    ow_reader r;
    ow_reader_init(&r, p, n);
    float region = ow_rd_f32(&r), radius = ow_rd_f32(&r);
    ow_client_type *types = NULL;
    ow_client_recipe *recipes = NULL;
    const char **keys = NULL;
    char *s = NULL;
    if (pass == 1) {
      size_t at_r = ((size_t)nt * sizeof *types + 7) & ~(size_t)7;
      size_t at_k = (at_r + (size_t)nr * sizeof *recipes + 7) & ~(size_t)7;
      size_t at_s = at_k + (size_t)nk * sizeof *keys;
      world_free(c);
      c->world_mem = ow_malloc(at_s + names + 1);
      uint8_t *m = c->world_mem;
      types = (ow_client_type *)(void *)m;
      recipes = (ow_client_recipe *)(void *)(m + at_r);
      keys = (const char **)(void *)(m + at_k);
      s = (char *)m + at_s;
      c->world = (ow_client_world){.region_size = region, .interest_radius = radius,
                                   .ntypes = nt, .nrecipes = nr, .nkeys = nk,
                                   .types = types, .recipes = recipes, .keys = keys};
    }
    nt = ow_rd_u16(&r);
    for (uint16_t i = 0; i < nt && !r.err; i++) {
      uint16_t id = ow_rd_u16(&r);
      uint8_t kind = ow_rd_u8(&r);
      const char *name = rd_name(&r, &s, &names);
      if (types) types[i] = (ow_client_type){id, kind, name};
    }
    nr = ow_rd_u16(&r);
    for (uint16_t i = 0; i < nr && !r.err; i++) {
      uint16_t id = ow_rd_u16(&r);
      const char *name = rd_name(&r, &s, &names);
      if (recipes) recipes[i] = (ow_client_recipe){id, name};
    }
    nk = ow_rd_u16(&r);
    for (uint16_t i = 0; i < nk && !r.err; i++) {
      const char *name = rd_name(&r, &s, &names);
      if (keys) keys[i] = name;
    }
    if (pass == 0 && (r.err || r.left)) return OW_E_PROTO;
  }
  c->have_world = true;
  return 0;
}

int ow_client_world_type(const ow_client_world *w, const char *name) {
  for (uint16_t i = 0; w && i < w->ntypes; i++)
    if (!strcmp(w->types[i].name, name)) return w->types[i].id;
  return -1;
}

int ow_client_world_recipe(const ow_client_world *w, const char *name) {
  for (uint16_t i = 0; w && i < w->nrecipes; i++)
    if (!strcmp(w->recipes[i].name, name)) return w->recipes[i].id;
  return -1;
}

uint8_t ow_client_world_kind(const ow_client_world *w, uint16_t id) {
  for (uint16_t i = 0; w && i < w->ntypes; i++)
    if (w->types[i].id == id) return w->types[i].kind;
  return 0;
}

const ow_client_world *ow_client_world_get(const ow_client *c) {
  return c->have_world ? &c->world : NULL;
}

/* ---- sending --------------------------------------------------------------------------------- */

static void want_write(ow_client *c) {
  if (c->wsi && c->state == CS_OPEN) lws_callback_on_writable(c->wsi);
}

/* Moves a message just encoded at tx[at..] out again if it breaks the queue's or the WebSocket's
 * size limit. */
static int commit_msg(ow_client *c, size_t at) {
  size_t n = c->tx.len - at;
  if (n > c->max_message) {
    c->tx.len = at;
    return OW_E_TOO_LARGE;
  }
  if (tx_pending(c) > c->tx_max) {
    c->tx.len = at;
    return -ENOBUFS;
  }
  c->stats.msgs_up++;
  want_write(c);
  return 0;
}

/* Encodes a fixed-layout message into the queue. Messages carrying strings are decoded back with
 * the same codec first: the server closes the connection on a malformed message, so an invalid
 * string (bad UTF-8, NUL) is refused here instead. */
static int send_msg(ow_client *c, ow_msg *m, bool check) {
  if (c->state == CS_CLOSED) return -ENOTCONN;
  if (c->txoff && c->txoff == c->tx.len) c->tx.len = c->txoff = 0;
  size_t at = c->tx.len;
  ow_proto_encode(&c->tx, m);
  if (check) {
    ow_msg back;
    size_t used;
    if (ow_proto_decode(c->tx.data + at, c->tx.len - at, &used, &back, NULL, 0)) {
      c->tx.len = at;
      return OW_E_INVAL;
    }
  }
  return commit_msg(c, at);
}

static int send_req(ow_client *c, ow_msg *m, bool check) {
  m->req = new_req(c);
  int rc = send_msg(c, m, check);
  return rc ? rc : (int)m->req;
}

/* Packs the pending pose and as many whole queued messages as fit into one WebSocket message of
 * at most max_message bytes, behind LWS_PRE bytes of headroom for lws's frame header. */
static size_t pack(ow_client *c) {
  size_t need = LWS_PRE + c->max_message;
  if (c->wcap < need) {
    c->wbuf = ow_realloc(c->wbuf, need);
    c->wcap = need;
  }
  uint8_t *out = c->wbuf + LWS_PRE;
  size_t len = 0;
  if (c->has_pose) {
    /* At most 131 bytes, and max_message is never below MAX_MESSAGE_MIN. */
    c->pbuf.len = 0;
    size_t at = ow_proto_begin(&c->pbuf, OW_MSG_POSE);
    ow_proto_put_pose(&c->pbuf, &c->pose);
    ow_proto_end(&c->pbuf, at);
    memcpy(out, c->pbuf.data, c->pbuf.len);
    len = c->pbuf.len;
    c->has_pose = false;
    c->stats.msgs_up++;
  }
  while (tx_pending(c) >= OW_MSG_HEADER) {
    const uint8_t *p = c->tx.data + c->txoff;
    size_t n = OW_MSG_HEADER + ((size_t)p[1] | ((size_t)p[2] << 8));
    if (n > c->max_message) {
      /* Queued before WELCOME announced a smaller limit: the server would refuse it and close
       * the connection, so it is dropped here and reported. */
      c->txoff += n;
      error_local(c, 0, OW_E_TOO_LARGE, "%s of %zu bytes dropped: the server accepts at most %u",
                  ow_msg_name(p[0]), n, c->max_message);
      continue;
    }
    if (len + n > c->max_message) break;
    memcpy(out + len, p, n);
    len += n;
    c->txoff += n;
  }
  if (c->txoff == c->tx.len) {
    c->tx.len = c->txoff = 0;
  } else if (c->txoff >= 4096 && c->txoff * 2 >= c->tx.len) {
    /* The queue never ran dry: move the rest down so the buffer does not creep. */
    memmove(c->tx.data, c->tx.data + c->txoff, c->tx.len - c->txoff);
    c->tx.len -= c->txoff;
    c->txoff = 0;
  }
  return len;
}

static int on_writeable(ow_client *c) {
  if (!c->has_pose && !tx_pending(c)) {
    if (c->close_after_flush) {
      lws_close_reason(c->wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
      return -1;
    }
    return 0;
  }
  size_t len = pack(c);
  if (len) {
    int n = lws_write(c->wsi, c->wbuf + LWS_PRE, len, LWS_WRITE_BINARY);
    if (n < (int)len) return -1;
    c->stats.bytes_up += len;
    c->stats.ws_up++;
  }
  if (c->has_pose || tx_pending(c) || c->close_after_flush) lws_callback_on_writable(c->wsi);
  return 0;
}

/* ---- actions --------------------------------------------------------------------------------- */

static pending_action *act_find(ow_client *c, uint64_t seq) {
  size_t lo = 0, hi = c->nacts;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c->acts[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo < c->nacts && c->acts[lo].seq == seq ? &c->acts[lo] : NULL;
}

static void act_remove(ow_client *c, pending_action *a) {
  size_t i = (size_t)(a - c->acts);
  act_free(a);
  memmove(&c->acts[i], &c->acts[i + 1], (c->nacts - i - 1) * sizeof *a);
  c->nacts--;
}

static int act_send(ow_client *c, pending_action *pa) {
  ow_msg m = {.type = OW_MSG_ACTION, .req = pa->req};
  m.u.action.seq = pa->seq;
  m.u.action.action = pa->a;
  int rc = send_msg(c, &m, false);
  if (!rc) pa->gen = c->gen;
  return rc;
}

/* Sends every unconfirmed action not yet sent on this connection, in sequence order. Called at
 * JOINED: the server accepts actions only in the world, and after a RESUME it answers those it
 * already applied with their original result (replayed). */
static void act_resend(ow_client *c) {
  for (size_t i = 0; i < c->nacts; i++) {
    if (c->acts[i].gen == c->gen) continue;
    int rc = act_send(c, &c->acts[i]);
    if (rc) {
      /* The queue is full: the rest goes at the next JOINED; report it so it is not silent. */
      error_local(c, c->acts[i].req, rc, "could not re-send action seq %llu: %s",
                  (unsigned long long)c->acts[i].seq, ow_strerror(rc));
      break;
    }
  }
}

int ow_client_action(ow_client *c, const ow_action *a, uint64_t *seq) {
  if (!a || (!ow_action_builtin(a->type) && (a->nargs > OW_ACTION_ARGS_MAX || (a->nargs && !a->args))))
    return OW_E_INVAL;
  if (!c->have_session) return OW_E_STATE;
  if (c->nacts >= MAX_UNCONFIRMED) return -ENOBUFS;
  if (c->nacts == c->capacts) {
    c->capacts = c->capacts ? c->capacts * 2 : 64;
    c->acts = ow_realloc(c->acts, c->capacts * sizeof *c->acts);
  }
  pending_action *pa = &c->acts[c->nacts];
  *pa = (pending_action){.seq = c->next_seq, .req = new_req(c), .a = *a};
  /* The caller's argument bytes may be gone before the action is confirmed: keep a copy. */
  pa->a.args = NULL;
  if (ow_action_builtin(a->type)) {
    pa->a.nargs = 0;
  } else if (a->nargs) {
    uint8_t *copy = ow_malloc(a->nargs);
    memcpy(copy, a->args, a->nargs);
    pa->a.args = copy;
  }
  if (c->joined && c->state != CS_CLOSED) {
    int rc = act_send(c, pa);
    if (rc) { /* not kept: the caller learns at once and may retry */
      act_free(pa);
      return rc;
    }
  }
  c->nacts++;
  c->next_seq++;
  if (seq) *seq = pa->seq;
  return (int)pa->req;
}

size_t ow_client_unconfirmed(const ow_client *c) { return c->nacts; }

int ow_client__action_at(ow_client *c, uint64_t seq, const ow_action *a) {
  if (!a || !seq || (!ow_action_builtin(a->type) && a->nargs > OW_ACTION_ARGS_MAX)) return OW_E_INVAL;
  if (!c->joined) return OW_E_STATE;
  ow_msg m = {.type = OW_MSG_ACTION};
  m.u.action.seq = seq;
  m.u.action.action = *a;
  return send_req(c, &m, false);
}

/* ---- receiving ------------------------------------------------------------------------------- */

static int fail(ow_client *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A fatal problem with what the server sent: report it and drop the connection. */
static int fail(ow_client *c, int code, const char *fmt, ...) {
  char text[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  EMIT(c, on_error, 0, code, text);
  return code;
}

static void on_session_msg(ow_client *c, const ow_msg *m) {
  ow_client_session s = {.account = m->u.session.account, .avatar = m->u.session.avatar,
                         .last_seq = m->u.session.last_seq, .role = m->u.session.role,
                         .expires_in_s = m->u.session.expires_in_s,
                         .resumed = m->u.session.resumed != 0};
  memcpy(s.token, m->u.session.token, OW_TOKEN_LEN);
  /* Only a resume of the session our actions belong to (same token) continues their numbering. */
  bool continues = s.resumed && c->have_session && s.account == c->session.account &&
                   !memcmp(s.token, c->session.token, OW_TOKEN_LEN);
  if (!continues && c->nacts) {
    /* A fresh session has its own sequence numbers and replay window: the old session's
     * unconfirmed actions can no longer be retried safely (they may or may not have been
     * applied), so they are dropped and each is reported. */
    size_t n = c->nacts;
    pending_action *lost = ow_malloc(n * sizeof *lost);
    memcpy(lost, c->acts, n * sizeof *lost);
    c->nacts = 0;
    for (size_t i = 0; i < n; i++) {
      error_local(c, lost[i].req, OW_E_NO_SESSION,
                  "action seq %llu was not confirmed durable before the session was replaced",
                  (unsigned long long)lost[i].seq);
      act_free(&lost[i]);
    }
    ow_free(lost);
  }
  if (continues) {
    /* Keep counting where we were: our unconfirmed actions keep their numbers. */
    if (c->next_seq < s.last_seq + 1) c->next_seq = s.last_seq + 1;
  } else {
    c->next_seq = s.last_seq + 1;
  }
  c->session = s;
  c->have_session = true;
  EMIT(c, on_session, m->req, &s);
}

static void on_applied_msg(ow_client *c, const ow_msg *m) {
  pending_action *pa = act_find(c, m->u.applied.seq);
  if (pa) {
    pa->applied_gen = c->gen;
    pa->frame = m->u.applied.frame;
  }
  EMIT(c, on_applied, m->req, m->u.applied.seq, &m->u.applied.result, m->u.applied.frame,
       m->u.applied.replayed != 0);
}

static void on_durable_msg(ow_client *c, const ow_msg *m) {
  uint16_t n = m->u.durable.n;
  if (c->seqcap < n) {
    c->seqcap = n;
    c->seqs = ow_realloc(c->seqs, n * sizeof *c->seqs);
  }
  for (uint16_t i = 0; i < n; i++) c->seqs[i] = ow_proto_durable_seq(m, i);
  if (m->u.durable.status == 0) {
    /* The listed actions are marked and removed with the others below in one pass: removing
     * them one by one moved the whole window for each. */
    for (uint16_t i = 0; i < n; i++) {
      pending_action *pa = act_find(c, c->seqs[i]);
      if (pa) pa->durable = true;
    }
    /* Frames are committed in order, so every action applied in this frame or an earlier one is
     * durable too, listed or not (the document does not say whether refused actions are listed).
     * Only frames learnt on this connection count: a server that failed a frame and restarted may
     * number its frames again from the last one it wrote. */
    size_t w = 0;
    for (size_t i = 0; i < c->nacts; i++)
      if (!c->acts[i].durable &&
          !(c->acts[i].applied_gen == c->gen && c->acts[i].frame <= m->u.durable.frame))
        c->acts[w++] = c->acts[i];
      else
        act_free(&c->acts[i]);
    c->nacts = w;
  } else {
    /* The frame was not written: no frame number seen so far proves anything any more. */
    for (size_t i = 0; i < c->nacts; i++) c->acts[i].applied_gen = 0;
  }
  EMIT(c, on_durable, m->u.durable.frame, m->u.durable.status, c->seqs, n);
}

static void on_error_msg(ow_client *c, const ow_msg *m) {
  /* An ERROR answering an action means it was not applied (rate limit, state, replay window) and
   * never will be: stop holding it. */
  for (size_t i = 0; m->req && i < c->nacts; i++)
    if (c->acts[i].req == m->req && c->acts[i].gen == c->gen) {
      act_remove(c, &c->acts[i]);
      break;
    }
  EMIT(c, on_error, m->req, m->u.error.code, cstr(c, m->u.error.text));
}

static void present_id(void *ud, table_entity *t) {
  idvec *v = ud;
  if (t->present) OW_VEC_PUSH(*v, t->e.id);
}

/* Completes a snapshot: its membership is the base's (Quake III: a delta is against the base
 * snapshot, not against whatever the client applied since), minus the removals, plus the listed
 * entities. A full state is exactly its listed entities. */
static void snapshot_done(ow_client *c) {
  idvec m = {0};
  snap_hist *base = c->snap_base ? hist_find(c, c->snap_base) : NULL;
  if (c->snap_base && base) {
    if (c->snap_removed.len > 1) qsort(c->snap_removed.v, c->snap_removed.len, sizeof(uint64_t), cmp_u64);
    for (size_t i = 0; i < base->n; i++)
      if (!sorted_has(c->snap_removed.v, c->snap_removed.len, base->ids[i])) OW_VEC_PUSH(m, base->ids[i]);
  } else if (c->snap_base) {
    /* A base we never applied or no longer keep: the server should not do this; the best we can
     * do is the current view. */
    c->stats.base_missing++;
    ents_each_all(c, present_id, &m);
  }
  for (size_t i = 0; i < c->snap_listed.len; i++) OW_VEC_PUSH(m, c->snap_listed.v[i]);
  if (m.len > 1) qsort(m.v, m.len, sizeof *m.v, cmp_u64);
  size_t w = 0;
  for (size_t i = 0; i < m.len; i++)
    if (!w || m.v[w - 1] != m.v[i]) m.v[w++] = m.v[i];
  m.len = w;
  set_membership(c, m.v, m.len);

  /* The server's base only moves forward: nothing older than this one will be used again. */
  if (!c->snap_base) hist_clear(c);
  else if (base) hist_drop(c, (size_t)(base - c->hist));
  if (c->nhist == HIST) hist_drop(c, 1);
  c->hist[c->nhist++] = (snap_hist){c->snap_id, m.len, m.v}; /* takes m's memory */
  purge_absent(c);
}

/* SNAPSHOT: see docs/protocol.md "Replication". Each chunk is decoded completely before anything
 * is applied, so a malformed chunk changes nothing; it is then applied at once. */
static int on_snapshot_msg(ow_client *c, const ow_msg *m) {
  ow_reader r;
  ow_reader_init(&r, m->u.body.p, m->u.body.n);
  uint32_t id = ow_rd_u32(&r), base = ow_rd_u32(&r);
  uint64_t frame = ow_rd_u64(&r);
  uint8_t flags = ow_rd_u8(&r);
  uint16_t n = ow_rd_u16(&r);
  /* Each entity takes at least 63 bytes: a count the message cannot hold is refused before the
   * scratch grows to it (65535 entities would be 30 MB for a 20-byte message). */
  if ((size_t)n * 63 > r.left) return fail(c, OW_E_PROTO, "SNAPSHOT %u: %u entities do not fit", id, n);
  if (c->scratchcap < n) {
    c->scratchcap = n;
    c->scratch = ow_realloc(c->scratch, n * sizeof *c->scratch);
  }
  for (uint16_t i = 0; i < n; i++)
    if (ow_proto_read_entity(&r, &c->scratch[i])) return fail(c, OW_E_PROTO, "SNAPSHOT %u: entity %u malformed", id, i);
  uint16_t nremoved = ow_rd_u16(&r);
  const uint8_t *removed = ow_rd_bytes(&r, 8u * nremoved);
  if (r.err || r.left) return fail(c, OW_E_PROTO, "SNAPSHOT %u: bad removal list or trailing bytes", id);

  if (!c->snap_open || c->snap_id != id) {
    /* A new snapshot. An unfinished previous one is abandoned: never acknowledged, never a base;
     * the next completed snapshot sets the membership right again. */
    c->snap_open = true;
    c->snap_id = id;
    c->snap_base = base;
    c->snap_frame = frame;
    c->snap_listed.len = c->snap_removed.len = 0;
  }
  for (uint16_t i = 0; i < n; i++) {
    table_entity *t = ent_put(c, &c->scratch[i]);
    OW_VEC_PUSH(c->snap_listed, t->e.id);
    EMIT(c, on_entity, &t->e);
    if (c->dead) return 0;
  }
  ow_reader rr;
  ow_reader_init(&rr, removed, 8u * nremoved);
  for (uint16_t i = 0; i < nremoved && !c->dead; i++) {
    uint64_t rid = ow_rd_u64(&rr);
    OW_VEC_PUSH(c->snap_removed, rid);
    table_entity *t = ent_get(c, rid);
    if (t) ent_hide(c, t);
  }
  if (c->dead || (flags & 1)) return 0; /* more chunks follow */
  c->snap_open = false;
  c->stats.snapshots++;
  snapshot_done(c);
  if (c->dead) return 0;
  if (c->state != CS_CLOSED) {
    ow_msg ack = {.type = OW_MSG_ACK};
    ack.u.ack.snapshot = id;
    /* Losing an ACK to a full queue only costs a full state later. */
    (void)send_msg(c, &ack, false);
  }
  EMIT(c, on_snapshot, id, c->snap_base, c->snap_frame);
  return 0;
}

static int on_poses_msg(ow_client *c, const ow_msg *m) {
  ow_pose p;
  bool v2 = c->proto >= 2;
  if (v2 && !c->have_world) return fail(c, OW_E_PROTO, "POSES before JOINED");
  float rs = v2 ? c->world.region_size : 0;
  /* Validate the whole message first: a malformed one delivers nothing. The first pass binds the
   * slots it names (a malformed message ends the connection, and its slots with it). */
  for (int pass = 0; pass < 2; pass++) {
    ow_reader r;
    ow_reader_init(&r, m->u.body.p, m->u.body.n);
    uint32_t tick = ow_rd_u32(&r);
    int32_t base_x = v2 ? ow_rd_i32(&r) : 0, base_z = v2 ? ow_rd_i32(&r) : 0;
    uint16_t n = ow_rd_u16(&r);
    for (uint16_t i = 0; i < n; i++) {
      uint64_t avatar;
      if (v2) {
        uint16_t slot = ow_rd_u16(&r);
        if (slot & 0x8000u) {
          avatar = ow_rd_u64(&r);
          if (pass == 0) ow_map_set(&c->slots, slot & 0x7fffu, avatar);
        } else {
          uint64_t *a = ow_map_get(&c->slots, slot);
          if (!a && !r.err) return fail(c, OW_E_PROTO, "POSES: slot %u was never bound", slot);
          avatar = a ? *a : 0;
        }
        if (ow_pose2_read(&r, rs, base_x, base_z, &p))
          return fail(c, OW_E_PROTO, "POSES: pose %u malformed", i);
      } else {
        avatar = ow_rd_u64(&r);
        if (ow_proto_read_pose(&r, &p)) return fail(c, OW_E_PROTO, "POSES: pose %u malformed", i);
      }
      if (pass == 1) {
        EMIT(c, on_poses, tick, avatar, &p);
        if (c->dead) return 0;
      }
    }
    if (r.err || r.left) return fail(c, OW_E_PROTO, "POSES: truncated or trailing bytes");
  }
  return 0;
}

/* Dispatches one decoded server message. Returns 0 or a fatal code. */
static int dispatch(ow_client *c, const ow_msg *m) {
  c->stats.msgs_down++;
  switch (m->type) {
  case OW_MSG_WELCOME: {
    if (m->u.welcome.max_message >= MAX_MESSAGE_MIN) c->max_message = m->u.welcome.max_message;
    if (m->u.welcome.version < OW_PROTO_VERSION_MIN || m->u.welcome.version > OW_PROTO_VERSION)
      return fail(c, OW_E_VERSION, "WELCOME: protocol version %u", m->u.welcome.version);
    c->proto = m->u.welcome.version;
    ow_client_welcome w = {.version = m->u.welcome.version, .tick_hz = m->u.welcome.tick_hz,
                           .pose_hz = m->u.welcome.pose_hz,
                           .server_time_us = m->u.welcome.server_time_us,
                           .max_message = m->u.welcome.max_message,
                           .server_name = cstr(c, m->u.welcome.server_name)};
    EMIT(c, on_welcome, m->req, &w);
    return 0;
  }
  case OW_MSG_OK: EMIT(c, on_ok, m->req); return 0;
  case OW_MSG_SESSION: on_session_msg(c, m); return 0;
  case OW_MSG_ERROR: on_error_msg(c, m); return 0;
  case OW_MSG_JOINED:
    if (parse_world(c, m->u.body.p, m->u.body.n)) return fail(c, OW_E_PROTO, "JOINED: malformed world description");
    c->joined = true;
    act_resend(c);
    EMIT(c, on_joined, m->req, &c->world);
    return 0;
  case OW_MSG_APPLIED: on_applied_msg(c, m); return 0;
  case OW_MSG_DURABLE: on_durable_msg(c, m); return 0;
  case OW_MSG_SNAPSHOT: return on_snapshot_msg(c, m);
  case OW_MSG_POSES: return on_poses_msg(c, m);
  case OW_MSG_EVENT: {
    const char *t = cstr(c, m->u.event.text);
    EMIT(c, on_event, m->u.event.kind, m->u.event.from, t, m->u.event.text.n);
    return 0;
  }
  case OW_MSG_PONG: EMIT(c, on_pong, m->req, m->u.pong.client_time, m->u.pong.server_time_us); return 0;
  case OW_MSG_SERVER_BYE: EMIT(c, on_bye, m->u.bye.reason, cstr(c, m->u.bye.text)); return 0;
  default: return fail(c, OW_E_PROTO, "unexpected %s (0x%02x) from the server", ow_msg_name(m->type), m->type);
  }
}

/* Decodes and dispatches every protocol message of one complete WebSocket message. */
static int handle_message(ow_client *c, const uint8_t *p, size_t n) {
  c->stats.ws_down++;
  size_t off = 0;
  while (off < n && !c->dead) {
    ow_msg m;
    size_t used;
    char err[160];
    int rc = ow_proto_decode(p + off, n - off, &used, &m, err, sizeof err);
    if (rc) return fail(c, rc, "malformed message from the server: %s", err);
    rc = dispatch(c, &m);
    if (rc) return rc;
    off += used;
  }
  return 0;
}

static int rx_fragment(ow_client *c, const void *p, size_t n, bool first, bool final, bool binary) {
  c->stats.bytes_down += n;
  if (first) {
    c->rx.len = 0;
    c->rx_discard = false;
  }
  if (!binary) return fail(c, OW_E_PROTO, "text WebSocket message from the server");
  if (c->rx_discard) return OW_E_TOO_LARGE;
  if (c->rx.len + n > c->rx_max) {
    c->rx_discard = true;
    c->rx.len = 0;
    return fail(c, OW_E_TOO_LARGE, "WebSocket message from the server exceeds %zu bytes", c->rx_max);
  }
  if (first && final) return handle_message(c, p, n); /* the common case: no copy */
  ow_buf_put(&c->rx, p, n);
  if (!final) return 0;
  int rc = handle_message(c, c->rx.data, c->rx.len);
  c->rx.len = 0;
  /* Do not let one large message pin its buffer for the connection's lifetime. */
  if (c->rx.cap > 4 * LWS_RX_CHUNK) {
    ow_buf_deinit(&c->rx);
    ow_buf_init(&c->rx);
  }
  return rc;
}

/* ---- connection lifecycle -------------------------------------------------------------------- */

static void reset_connection(ow_client *c) {
  c->tx.len = c->txoff = 0;
  c->rx.len = 0;
  c->rx_discard = false;
  c->has_pose = false;
  c->joined = false;
  c->snap_open = false;
  hist_clear(c); /* snapshot ids are per connection */
  c->close_after_flush = false;
  c->max_message = MAX_MESSAGE_DEFAULT;
  c->proto = 1; /* until this connection's WELCOME; POSES slots are per connection too */
  ow_map_deinit(&c->slots);
  ow_map_init(&c->slots);
}

static void report_close(ow_client *c) {
  if (c->close_code) EMIT(c, on_error, 0, c->close_code, c->close_text);
  c->close_code = 0;
  EMIT0(c, on_close);
}

/* The transport is gone (closed, failed to connect, or destroyed). code != 0 adds an error. */
static void conn_closed(ow_client *c, struct lws *wsi, int code, const char *why) {
  if (wsi) lws_set_opaque_user_data(wsi, NULL); /* later callbacks of this wsi are not ours */
  if (c->state == CS_CLOSED) return;
  c->state = CS_CLOSED;
  c->wsi = NULL;
  reset_connection(c);
  c->close_code = code;
  snprintf(c->close_text, sizeof c->close_text, "%s", why ? why : "");
  if (c->connecting_sync) {
    /* Inside ow_client_connect(): report from the service loop, as documented. */
    c->report_close = true;
    c->ctx->deferred = true;
    return;
  }
  report_close(c);
}

static int lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len) {
  (void)user;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
  case LWS_CALLBACK_CLIENT_RECEIVE:
  case LWS_CALLBACK_CLIENT_WRITEABLE:
  case LWS_CALLBACK_CLIENT_CLOSED:
  case LWS_CALLBACK_WSI_DESTROY:
    break;
  default: return 0;
  }
  ow_client *c = lws_get_opaque_user_data(wsi);
  if (!c) return 0;
  if (c->connecting_sync && !c->wsi) c->wsi = wsi;
  if (wsi != c->wsi) {
    /* A connection this client has already given up. */
    lws_set_opaque_user_data(wsi, NULL);
    return reason == LWS_CALLBACK_WSI_DESTROY ? 0 : -1;
  }
  int ret = 0;
  busy(c);
  switch (reason) {
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
    /* lws passes a reason string; its length may be given or 0 (NUL-terminated). */
    char why[160];
    int n = !in ? 0 : len ? (int)(len < 100 ? len : 100) : (int)strnlen(in, 100);
    snprintf(why, sizeof why, "connect to %s:%d%s failed: %.*s", c->host, c->port, c->path, n,
             in ? (const char *)in : "");
    conn_closed(c, wsi, -ECONNREFUSED, why);
    break;
  }
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    c->state = CS_OPEN;
    EMIT0(c, on_open);
    if (!c->dead && (c->has_pose || tx_pending(c))) lws_callback_on_writable(wsi);
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE: {
    bool first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
    bool binary = lws_frame_is_binary(wsi);
    if (rx_fragment(c, in, len, first, final && !lws_remaining_packet_payload(wsi), binary) &&
        !c->dead) {
      lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, NULL, 0);
      ret = -1;
    }
    break;
  }
  case LWS_CALLBACK_CLIENT_WRITEABLE: ret = on_writeable(c); break;
  case LWS_CALLBACK_CLIENT_CLOSED: conn_closed(c, wsi, 0, NULL); break;
  case LWS_CALLBACK_WSI_DESTROY: conn_closed(c, wsi, 0, NULL); break;
  default: break;
  }
  if (c->dead) ret = -1;
  unbusy(c);
  return ret;
}

static const struct lws_protocols protocols[] = {
    {SUBPROTOCOL, lws_cb, 0, LWS_RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int ow_client_connect(ow_client *c, const char *host, int port, const char *path) {
  if (!host || port <= 0 || port > 65535) return OW_E_INVAL;
  if (c->state != CS_CLOSED || c->report_close) return OW_E_STATE;
  ow_free(c->host);
  ow_free(c->path);
  c->host = ow_strdup(host);
  c->path = ow_strdup(path ? path : "/ws");
  c->port = port;
  reset_connection(c);
  c->gen++;
  c->state = CS_CONNECTING;
  c->wsi = NULL;

  struct lws_client_connect_info i;
  memset(&i, 0, sizeof i);
  i.context = c->ctx->lws;
  i.address = c->host;
  i.port = port;
  i.path = c->path;
  i.host = c->host;
  i.origin = c->host;
  i.protocol = SUBPROTOCOL;
  i.local_protocol_name = SUBPROTOCOL;
  i.opaque_user_data = c;
  c->connecting_sync = true;
  struct lws *wsi = lws_client_connect_via_info(&i);
  c->connecting_sync = false;
  if (c->state == CS_CLOSED) return 0; /* failed inside; reported from the service loop */
  if (!wsi) {
    c->connecting_sync = true; /* defer the report like the failures above */
    conn_closed(c, NULL, -ECONNREFUSED, "connect failed: libwebsockets could not start it");
    c->connecting_sync = false;
    return 0;
  }
  c->wsi = wsi;
  return 0;
}

int ow_client_close(ow_client *c) {
  if (c->state == CS_CLOSED) return -ENOTCONN;
  ow_msg m = {.type = OW_MSG_BYE};
  m.u.bye.reason = OW_BYE_NORMAL;
  m.u.bye.text = (ow_str){"client quit", 11};
  (void)send_msg(c, &m, false);
  c->close_after_flush = true;
  c->joined = false;
  want_write(c);
  return 0;
}

bool ow_client_connected(const ow_client *c) { return c->state != CS_CLOSED; }

/* ---- context --------------------------------------------------------------------------------- */

static void wake_cb(lws_sorted_usec_list_t *sul) { (void)sul; }

int ow_client_ctx_create(const ow_client_ctx_opts *opts, ow_client_ctx **out) {
  ow_client_ctx_opts o = opts ? *opts : (ow_client_ctx_opts){0};
  lws_set_log_level(o.lws_log_level ? o.lws_log_level : LLL_ERR, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.fd_limit_per_thread = (o.max_connections ? o.max_connections : 1024) + 32;
  info.timeout_secs = 10;
  info.connect_timeout_secs = 10;
  ow_client_ctx *ctx = ow_calloc(1, sizeof *ctx);
  ctx->lws = lws_create_context(&info);
  if (!ctx->lws) {
    ow_free(ctx);
    return OW_E_INVAL;
  }
  *out = ctx;
  return 0;
}

void ow_client_ctx_destroy(ow_client_ctx *ctx) {
  if (!ctx) return;
  while (ctx->head) {
    ow_client *c = ctx->head;
    c->busy = 0;
    ow_client_destroy(c);
  }
  lws_context_destroy(ctx->lws);
  ow_free(ctx);
}

int ow_client_ctx_service(ow_client_ctx *ctx, int timeout_ms) {
  if (ctx->deferred) {
    ctx->deferred = false;
    /* Restart from the head after each report: a callback may destroy any client. */
  again:
    for (ow_client *c = ctx->head; c; c = c->next) {
      if (!c->report_close) continue;
      c->report_close = false;
      busy(c);
      report_close(c);
      unbusy(c);
      goto again;
    }
    timeout_ms = 0;
  }
  /* lws_service() ignores a non-negative timeout and sleeps until the next event or scheduled
   * callback, so a scheduled no-op callback bounds the wait. A negative timeout polls without
   * waiting; a callback due at once would not do, as lws runs it before it computes the wait. */
  int rc;
  if (timeout_ms > 0) {
    lws_sul_schedule(ctx->lws, 0, &ctx->wake, wake_cb, (lws_usec_t)timeout_ms * 1000);
    rc = lws_service(ctx->lws, 0);
    lws_sul_cancel(&ctx->wake);
  } else {
    rc = lws_service(ctx->lws, -1);
  }
  return rc < 0 ? OW_E_INVAL : 0;
}

/* ---- clients --------------------------------------------------------------------------------- */

ow_client *ow_client_create(ow_client_ctx *ctx, const ow_client_callbacks *cb, void *ud) {
  ow_client *c = ow_calloc(1, sizeof *c);
  c->ctx = ctx;
  if (cb) c->cb = *cb;
  c->ud = ud;
  c->rx_max = RX_MAX_DEFAULT;
  c->tx_max = TX_MAX_DEFAULT;
  c->max_message = MAX_MESSAGE_DEFAULT;
  c->next_req = 1;
  ow_buf_init(&c->rx);
  ow_buf_init(&c->tx);
  ow_buf_init(&c->pbuf);
  ow_map_init(&c->ents);
  ow_map_init(&c->slots);
  c->proto = 1;
  c->next = ctx->head;
  if (ctx->head) ctx->head->prev = c;
  ctx->head = c;
  return c;
}

static void free_client(ow_client *c) {
  ow_buf_deinit(&c->rx);
  ow_buf_deinit(&c->tx);
  ow_buf_deinit(&c->pbuf);
  ents_clear(c);
  ow_map_deinit(&c->ents);
  ow_map_deinit(&c->slots);
  hist_clear(c);
  OW_VEC_FREE(c->snap_listed);
  OW_VEC_FREE(c->snap_removed);
  world_free(c);
  for (size_t i = 0; i < c->nacts; i++) act_free(&c->acts[i]);
  ow_free(c->acts);
  ow_free(c->wbuf);
  ow_free(c->seqs);
  ow_free(c->scratch);
  ow_free(c->host);
  ow_free(c->path);
  ow_free(c);
}

void ow_client_destroy(ow_client *c) {
  if (!c || c->dead) return;
  if (c->wsi) {
    /* The socket closes at the next service; its callbacks no longer find this client. */
    lws_set_opaque_user_data(c->wsi, NULL);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    c->wsi = NULL;
  }
  if (c->prev) c->prev->next = c->next;
  else c->ctx->head = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  c->dead = true;
  if (!c->busy) free_client(c);
}

void ow_client_set_limits(ow_client *c, size_t rx_max, size_t tx_max) {
  if (rx_max) c->rx_max = rx_max;
  if (tx_max) c->tx_max = tx_max;
}

void *ow_client_userdata(const ow_client *c) { return c->ud; }

bool ow_client_session_get(const ow_client *c, ow_client_session *session) {
  if (!c->have_session) return false;
  if (session) *session = c->session;
  return true;
}

void ow_client_stats_get(const ow_client *c, ow_client_stats *out) { *out = c->stats; }

/* ---- requests -------------------------------------------------------------------------------- */

static ow_str S(const char *s) { return (ow_str){s, strlen(s)}; }

int ow_client_hello(ow_client *c, const char *client_name) {
  return ow_client_hello_version(c, client_name, OW_PROTO_VERSION);
}

int ow_client_hello_version(ow_client *c, const char *client_name, uint16_t version) {
  if (!client_name || strlen(client_name) > 64) return OW_E_INVAL;
  if (version < OW_PROTO_VERSION_MIN || version > OW_PROTO_VERSION) return OW_E_INVAL;
  ow_msg m = {.type = OW_MSG_HELLO};
  m.u.hello.version = version;
  m.u.hello.client = S(client_name);
  return send_req(c, &m, true);
}

static int creds(ow_client *c, uint8_t type, const char *name, const char *password) {
  if (!name || !password) return OW_E_INVAL;
  size_t nl = strlen(name), pl = strlen(password);
  if (nl < OW_NAME_MIN_LEN || nl > OW_NAME_MAX_LEN || pl < OW_PASSWORD_MIN || pl > OW_PASSWORD_MAX)
    return OW_E_BAD_NAME;
  ow_msg m = {.type = type};
  m.u.creds.name = S(name);
  m.u.creds.password = S(password);
  return send_req(c, &m, true);
}

int ow_client_register(ow_client *c, const char *name, const char *password) {
  return creds(c, OW_MSG_REGISTER, name, password);
}

int ow_client_login(ow_client *c, const char *name, const char *password) {
  return creds(c, OW_MSG_LOGIN, name, password);
}

int ow_client_resume(ow_client *c, const uint8_t token[OW_TOKEN_LEN]) {
  if (!token) return OW_E_INVAL;
  ow_msg m = {.type = OW_MSG_RESUME};
  memcpy(m.u.resume.token, token, OW_TOKEN_LEN);
  return send_req(c, &m, false);
}

static int simple(ow_client *c, uint8_t type) {
  ow_msg m = {.type = type};
  return send_req(c, &m, false);
}

int ow_client_join(ow_client *c) { return simple(c, OW_MSG_JOIN); }

int ow_client_leave(ow_client *c) {
  int rc = simple(c, OW_MSG_LEAVE);
  if (rc > 0) c->joined = false;
  return rc;
}

int ow_client_logout(ow_client *c) {
  int rc = simple(c, OW_MSG_LOGOUT);
  if (rc > 0) c->joined = false;
  return rc;
}

int ow_client_chat(ow_client *c, const char *text) {
  if (!text) return OW_E_INVAL;
  if (strlen(text) > OW_TEXT_MAX) return OW_E_TEXT_TOO_LONG;
  ow_msg m = {.type = OW_MSG_CHAT};
  m.u.chat.text = S(text);
  return send_req(c, &m, true);
}

int ow_client_admin(ow_client *c, uint8_t op, uint64_t account, uint8_t role, const char *text) {
  if (!text) text = "";
  if (strlen(text) > OW_TEXT_MAX) return OW_E_TEXT_TOO_LONG;
  ow_msg m = {.type = OW_MSG_ADMIN};
  m.u.admin.op = op;
  m.u.admin.account = account;
  m.u.admin.role = role;
  m.u.admin.text = S(text);
  return send_req(c, &m, true);
}

int ow_client_ping(ow_client *c, uint64_t client_time) {
  ow_msg m = {.type = OW_MSG_PING};
  m.u.ping.client_time = client_time;
  return send_req(c, &m, false);
}

int ow_client_pose(ow_client *c, const ow_pose *p) {
  if (!p || p->mask >> OW_BONE_FIXED_ || p->ntrackers > OW_POSE_MAX_TRACKERS) return OW_E_INVAL;
  if (c->state == CS_CLOSED) return -ENOTCONN;
  if (c->has_pose) c->stats.poses_coalesced++;
  c->pose = *p;
  c->has_pose = true;
  want_write(c);
  return 0;
}

/* ---- poses ----------------------------------------------------------------------------------- */

static int quat_norm(const float in[4], float out[4]) {
  double s = 0;
  for (int i = 0; i < 4; i++) {
    if (!isfinite(in[i])) return OW_E_INVAL;
    s += (double)in[i] * in[i];
  }
  if (s < 1e-12) return OW_E_INVAL;
  double k = 1.0 / sqrt(s);
  for (int i = 0; i < 4; i++) out[i] = (float)(in[i] * k);
  return 0;
}

int ow_client_pose_build(ow_pose *out, const float root_pos[3], const float root_rot[4],
                         uint8_t mask, uint8_t ntrackers, const ow_client_bone *bones) {
  if (!out || !root_pos || !root_rot || mask >> OW_BONE_FIXED_ || ntrackers > OW_POSE_MAX_TRACKERS)
    return OW_E_INVAL;
  uint8_t nb = ntrackers;
  for (int i = 0; i < OW_BONE_FIXED_; i++) nb += (mask >> i) & 1;
  if (nb && !bones) return OW_E_INVAL;
  ow_pose p;
  memset(&p, 0, sizeof p);
  p.mask = mask;
  p.ntrackers = ntrackers;
  p.nbones = nb;
  float q[4];
  for (int i = 0; i < 3; i++) {
    if (!isfinite(root_pos[i])) return OW_E_OUT_OF_BOUNDS;
    p.root[i] = ow_quant_mm(root_pos[i]);
  }
  if (quat_norm(root_rot, q)) return OW_E_INVAL;
  p.root_rot = ow_quat_pack(q);
  for (uint8_t b = 0; b < nb; b++) {
    for (int i = 0; i < 3; i++) {
      float v = bones[b].pos[i];
      if (!isfinite(v) || fabsf(v) > 32.767f) return OW_E_OUT_OF_BOUNDS;
      int32_t mm = ow_quant_mm(v);
      if (mm > INT16_MAX || mm < -INT16_MAX) return OW_E_OUT_OF_BOUNDS;
      p.bone[b].pos[i] = (int16_t)mm;
    }
    if (quat_norm(bones[b].rot, q)) return OW_E_INVAL;
    p.bone[b].rot = ow_quat_pack(q);
  }
  *out = p;
  return 0;
}

/* ---- test hooks ------------------------------------------------------------------------------ */

void ow_client__test_open(ow_client *c) {
  reset_connection(c);
  c->gen++;
  c->state = CS_OPEN;
  busy(c);
  EMIT0(c, on_open);
  unbusy(c);
}

int ow_client__rx(ow_client *c, const void *p, size_t n, bool first, bool final, bool binary) {
  busy(c);
  int rc = rx_fragment(c, p, n, first, final, binary);
  /* Without a socket there is nobody to close it: do what the transport would. */
  if (rc && !c->wsi && !c->dead) conn_closed(c, NULL, 0, NULL);
  unbusy(c);
  return rc;
}

void ow_client__test_close(ow_client *c) {
  busy(c);
  conn_closed(c, NULL, 0, NULL);
  unbusy(c);
}

ow_buf *ow_client__txq(ow_client *c) {
  if (c->txoff) {
    memmove(c->tx.data, c->tx.data + c->txoff, c->tx.len - c->txoff);
    c->tx.len -= c->txoff;
    c->txoff = 0;
  }
  return &c->tx;
}

size_t ow_client__stored(const ow_client *c) { return c->ents.len; }

bool ow_client__take_pose(ow_client *c, ow_buf *out) {
  if (!c->has_pose) return false;
  size_t at = ow_proto_begin(out, OW_MSG_POSE);
  ow_proto_put_pose(out, &c->pose);
  ow_proto_end(out, at);
  c->has_pose = false;
  return true;
}
