/* model: the world rules of docs/world.md, implemented a second time. See model.h. */
#include "model.h"

#include <math.h>
#include <string.h>

#include "otherworld/protocol.h"

/* ---- state ----------------------------------------------------------------------------------- */

void model_init(model *m, const ow_content *content, const ow_world_config *cfg) {
  memset(m, 0, sizeof *m);
  m->content = content;
  m->cfg = *cfg;
  m->next_id = 1;
  m->ledger = ow_calloc(content->ntypes ? content->ntypes : 1, sizeof *m->ledger);
}

void model_deinit(model *m) {
  ow_free(m->ents);
  ow_free(m->saved);
  ow_free(m->ledger);
  memset(m, 0, sizeof *m);
}

const ow_type *model_type(const model *m, uint16_t type) {
  return type < m->content->ntypes ? &m->content->types[type] : NULL;
}

static uint8_t kind_of(const model *m, const mentity *e) { return model_type(m, e->type)->kind; }

mentity *model_get(const model *m, ow_id id) {
  for (size_t i = 0; i < m->n; i++)
    if (m->ents[i].id == id) return m->ents[i].alive ? &m->ents[i] : NULL;
  return NULL;
}

size_t model_count(const model *m) {
  size_t n = 0;
  for (size_t i = 0; i < m->n; i++) n += m->ents[i].alive;
  return n;
}

const mentity *model_root(const model *m, const mentity *e) {
  while (e->parent) e = model_get(m, e->parent);
  return e;
}

/* The reach rule: squared distance of the two roots, in double precision from the stored floats. */
static bool within_reach(const model *m, const float a[3], const float b[3]) {
  if (m->cfg.reach == 0) return true;
  double dx = (double)a[0] - (double)b[0];
  double dy = (double)a[1] - (double)b[1];
  double dz = (double)a[2] - (double)b[2];
  double r = (double)m->cfg.reach;
  return dx * dx + dy * dy + dz * dz <= r * r;
}

bool model_reaches(const model *m, const mentity *a, const mentity *e) {
  return within_reach(m, model_root(m, a)->xf.pos, model_root(m, e)->xf.pos);
}

bool model_reaches_pos(const model *m, const mentity *a, const float pos[3]) {
  return within_reach(m, model_root(m, a)->xf.pos, pos);
}

const mentity *model_inventory(const model *m, ow_id avatar) {
  for (size_t i = 0; i < m->n; i++) {
    const mentity *e = &m->ents[i];
    if (e->alive && e->parent == avatar && e->type == m->content->inventory_type) return e;
  }
  return NULL;
}

ow_cell model_cell(const model *m, const mentity *e) {
  const mentity *r = model_root(m, e);
  ow_cell c = {(int32_t)floor((double)r->xf.pos[0] / (double)m->cfg.region_size),
               (int32_t)floor((double)r->xf.pos[2] / (double)m->cfg.region_size)};
  return c;
}

uint64_t model_units(const model *m, ow_id container, uint16_t item) {
  uint64_t n = 0;
  for (size_t i = 0; i < m->n; i++) {
    const mentity *e = &m->ents[i];
    if (e->alive && e->parent == container && e->type == item) n += e->count;
  }
  return n;
}

/* Creates an entity with the next id, the type's hp and the type's "open" property if it has one.
 * Returns its id (pointers into the array may move). */
static ow_id create(model *m, uint16_t type, ow_id owner, ow_id parent, const ow_transform *xf) {
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 256;
    m->ents = ow_realloc(m->ents, m->cap * sizeof *m->ents);
  }
  const ow_type *t = model_type(m, type);
  mentity *e = &m->ents[m->n++];
  memset(e, 0, sizeof *e);
  e->id = m->next_id++;
  e->alive = true;
  e->type = type;
  e->owner = owner;
  e->parent = parent;
  e->xf = *xf;
  e->hp = t->hp;
  e->count = 1;
  for (uint16_t i = 0; i < t->nprops; i++) {
    if (t->props[i].key == m->content->key_open && t->props[i].type == OW_PROP_INT) {
      e->has_open = true;
      e->open = t->props[i].v.i;
    }
  }
  return e->id;
}

static void save(model *m) {
  if (m->saved_cap < m->n) {
    m->saved_cap = m->cap;
    m->saved = ow_realloc(m->saved, m->saved_cap * sizeof *m->saved);
  }
  if (m->n) memcpy(m->saved, m->ents, m->n * sizeof *m->ents);
  m->saved_n = m->n;
  m->saved_next_id = m->next_id;
}

/* Undoes everything since save(). Entities created since then are dropped and their ids given
 * back, which is right because a failed action must not consume ids either. */
static void restore(model *m) {
  if (m->saved_n) memcpy(m->ents, m->saved, m->saved_n * sizeof *m->ents);
  m->n = m->saved_n;
  m->next_id = m->saved_next_id;
}

void model_restart(model *m, ow_id durable_next) {
  m->next_id = durable_next + MODEL_ID_RESTART_GAP;
}

void model_seed(model *m) {
  for (uint32_t i = 0; i < m->content->nseeds; i++)
    create(m, m->content->seeds[i].type, 0, 0, &m->content->seeds[i].xf);
}

ow_id model_login(model *m, ow_id account) {
  ow_transform xf;
  ow_transform_identity(&xf);
  memcpy(xf.pos, m->content->spawn, sizeof xf.pos);
  ow_id a = create(m, m->content->avatar_type, account, 0, &xf);
  ow_transform_identity(&xf);
  create(m, m->content->inventory_type, account, a, &xf);
  return a;
}

/* ---- shared checks --------------------------------------------------------------------------- */

static bool may_use(ow_id p, const mentity *e) { return e->owner == 0 || e->owner == p; }

static bool in_bound(float v, float bound) {
  return isfinite(v) && fabs((double)v) <= (double)bound;
}

/* Position and rotation within bounds (scale is only checked by build). */
static bool xf_in_bounds(const model *m, const ow_transform *xf) {
  for (int i = 0; i < 3; i++)
    if (!in_bound(xf->pos[i], m->cfg.bound)) return false;
  for (int i = 0; i < 4; i++)
    if (!in_bound(xf->rot[i], 2.0f)) return false;
  return true;
}

bool model_has_children(const model *m, ow_id id) {
  for (size_t i = 0; i < m->n; i++)
    if (m->ents[i].alive && m->ents[i].parent == id) return true;
  return false;
}

/* ---- stacking rules -------------------------------------------------------------------------- */

static bool is_stack_of(const model *m, const mentity *e, ow_id container) {
  return e->alive && e->parent == container && kind_of(m, e) == OW_KIND_ITEM;
}

/* Adds n units of `item` to `container`: existing stacks with room first (ascending id), then new
 * stacks; fails with OW_E_FULL when more non-empty stacks than slots would result. *first is the
 * first stack that received units. Changes the state even on failure: the caller restores. */
static int add_units(model *m, ow_id container, uint16_t item, uint32_t n, ow_id *first) {
  uint32_t max = model_type(m, item)->stack_max;
  *first = 0;
  for (size_t i = 0; i < m->n && n > 0; i++) {
    mentity *s = &m->ents[i];
    if (!is_stack_of(m, s, container) || s->type != item || s->count >= max) continue;
    uint32_t take = max - s->count < n ? max - s->count : n;
    s->count += take;
    n -= take;
    if (!*first) *first = s->id;
  }
  ow_id owner = model_get(m, container)->owner;
  while (n > 0) {
    /* The document gives a new stack no transform of its own. A child's transform is relative to
     * its parent, so the identity puts the stack at its container, whichever action made it
     * (harvest, craft or transfer: they all use this one stacking rule). */
    ow_transform xf;
    ow_transform_identity(&xf);
    ow_id id = create(m, item, owner, container, &xf);
    mentity *s = model_get(m, id);
    s->count = n < max ? n : max;
    n -= s->count;
    if (!*first) *first = id;
  }
  size_t stacks = 0;
  for (size_t i = 0; i < m->n; i++)
    if (is_stack_of(m, &m->ents[i], container) && m->ents[i].count > 0) stacks++;
  return stacks > model_type(m, model_get(m, container)->type)->slots ? OW_E_FULL : 0;
}

/* Removes n units of `item` from `container`, ascending id order, destroying emptied stacks. */
static int remove_units(model *m, ow_id container, uint16_t item, uint32_t n) {
  if (model_units(m, container, item) < n) return OW_E_NOT_ENOUGH;
  for (size_t i = 0; i < m->n && n > 0; i++) {
    mentity *s = &m->ents[i];
    if (!is_stack_of(m, s, container) || s->type != item) continue;
    uint32_t take = s->count < n ? s->count : n;
    s->count -= take;
    n -= take;
    if (!s->count) s->alive = false;
  }
  return 0;
}

/* ---- the actions ----------------------------------------------------------------------------- */

static ow_result fail(ow_result r, int code) {
  r.code = code;
  r.count = 0;
  return r;
}

static ow_result act_move(model *m, ow_id p, ow_id avatar, const ow_action *a, ow_result r) {
  mentity *e = model_get(m, a->target);
  if (!e) return fail(r, OW_E_NOT_FOUND);
  if (!(model_type(m, e->type)->movable || kind_of(m, e) == OW_KIND_AVATAR) || e->parent)
    return fail(r, OW_E_NOT_MOVABLE);
  if (!may_use(p, e)) return fail(r, OW_E_FORBIDDEN);
  if (!xf_in_bounds(m, &a->xf)) return fail(r, OW_E_OUT_OF_BOUNDS);
  if (e->id != avatar && !model_reaches(m, model_get(m, avatar), e)) return fail(r, OW_E_TOO_FAR);
  memcpy(e->xf.pos, a->xf.pos, sizeof e->xf.pos);
  memcpy(e->xf.rot, a->xf.rot, sizeof e->xf.rot);
  return r;
}

static ow_result act_harvest(model *m, ow_id p, ow_id avatar, const ow_action *a, ow_result r) {
  mentity *e = model_get(m, a->target);
  if (!e) return fail(r, OW_E_NOT_FOUND);
  if (kind_of(m, e) != OW_KIND_RESOURCE) return fail(r, OW_E_NOT_HARVESTABLE);
  if (!may_use(p, e)) return fail(r, OW_E_FORBIDDEN);
  if (!model_reaches(m, model_get(m, avatar), e)) return fail(r, OW_E_TOO_FAR);
  const ow_type *t = model_type(m, e->type);
  const mentity *inv = model_inventory(m, avatar);
  save(m);
  ow_id first;
  int rc = add_units(m, inv->id, t->yield_item, t->yield_count, &first);
  if (rc) {
    restore(m);
    return fail(r, rc);
  }
  e = model_get(m, a->target); /* the array may have grown */
  int32_t dmg = t->harvest_damage < e->hp ? t->harvest_damage : e->hp;
  e->hp -= dmg;
  if (e->hp == 0) e->alive = false;
  m->ledger[t->yield_item] += t->yield_count;
  r.entity = first;
  r.count = t->yield_count;
  return r;
}

static ow_result act_build(model *m, ow_id p, ow_id avatar, const ow_action *a, ow_result r) {
  const ow_type *t = model_type(m, a->kind);
  if (!t) return fail(r, OW_E_UNKNOWN_TYPE);
  if (!t->ncost) return fail(r, OW_E_NOT_BUILDABLE);
  bool ok = xf_in_bounds(m, &a->xf);
  for (int i = 0; i < 3; i++) ok = ok && a->xf.scale[i] > 0 && a->xf.scale[i] <= 1000;
  if (!ok) return fail(r, OW_E_OUT_OF_BOUNDS);
  if (!model_reaches_pos(m, model_get(m, avatar), a->xf.pos)) return fail(r, OW_E_TOO_FAR);
  ow_id inv = model_inventory(m, avatar)->id;
  save(m);
  for (uint16_t i = 0; i < t->ncost; i++) {
    if (remove_units(m, inv, t->cost[i].item, t->cost[i].count)) {
      restore(m);
      return fail(r, OW_E_NOT_ENOUGH);
    }
  }
  for (uint16_t i = 0; i < t->ncost; i++) m->ledger[t->cost[i].item] -= t->cost[i].count;
  r.entity = create(m, a->kind, p, 0, &a->xf);
  r.count = 1;
  return r;
}

static ow_result act_craft(model *m, ow_id avatar, const ow_action *a, ow_result r) {
  if (a->kind >= m->content->nrecipes) return fail(r, OW_E_UNKNOWN_RECIPE);
  const ow_recipe *rc = &m->content->recipes[a->kind];
  ow_id inv = model_inventory(m, avatar)->id;
  save(m);
  for (uint16_t i = 0; i < rc->nin; i++) {
    if (remove_units(m, inv, rc->in[i].item, rc->in[i].count)) {
      restore(m);
      return fail(r, OW_E_NOT_ENOUGH);
    }
  }
  /* The removals are done (emptied stacks are gone) before any output is added, which is the
   * "removals are planned first" rule. */
  ow_id first_of_first = 0;
  for (uint16_t i = 0; i < rc->nout; i++) {
    ow_id first;
    if (add_units(m, inv, rc->out[i].item, rc->out[i].count, &first)) {
      restore(m);
      return fail(r, OW_E_FULL);
    }
    if (i == 0) first_of_first = first;
  }
  for (uint16_t i = 0; i < rc->nin; i++) m->ledger[rc->in[i].item] -= rc->in[i].count;
  for (uint16_t i = 0; i < rc->nout; i++) m->ledger[rc->out[i].item] += rc->out[i].count;
  r.entity = first_of_first;
  r.count = rc->nout ? rc->out[0].count : 0;
  return r;
}

static ow_result act_transfer(model *m, ow_id p, ow_id avatar, const ow_action *a, ow_result r) {
  mentity *s = model_get(m, a->target);
  if (!s) return fail(r, OW_E_NOT_FOUND);
  if (kind_of(m, s) != OW_KIND_ITEM || !s->parent) return fail(r, OW_E_NOT_ITEM);
  const mentity *d = model_get(m, a->dest);
  if (!d) return fail(r, OW_E_NOT_FOUND);
  if (model_type(m, d->type)->slots == 0) return fail(r, OW_E_NOT_CONTAINER);
  if (d->id == s->parent) return fail(r, OW_E_SAME_CONTAINER);
  if (a->count < 1 || a->count > s->count) return fail(r, OW_E_BAD_COUNT);
  const mentity *src = model_get(m, s->parent);
  if (!may_use(p, src) || !may_use(p, d)) return fail(r, OW_E_FORBIDDEN);
  const mentity *av = model_get(m, avatar);
  if (!model_reaches(m, av, src) || !model_reaches(m, av, d)) return fail(r, OW_E_TOO_FAR);
  save(m);
  uint16_t item = s->type;
  s->count -= a->count;
  if (!s->count) s->alive = false;
  ow_id first;
  if (add_units(m, a->dest, item, a->count, &first)) {
    restore(m);
    return fail(r, OW_E_FULL);
  }
  r.entity = first;
  r.count = a->count;
  return r;
}

static ow_result act_interact(model *m, ow_id p, ow_id avatar, const ow_action *a, ow_result r) {
  mentity *e = model_get(m, a->target);
  if (!e) return fail(r, OW_E_NOT_FOUND);
  const ow_type *t = model_type(m, e->type);
  if (!t->door && t->kind != OW_KIND_VEHICLE) return fail(r, OW_E_NOT_INTERACTIVE);
  if (!may_use(p, e)) return fail(r, OW_E_FORBIDDEN);
  mentity *av = model_get(m, avatar);
  if (!model_reaches(m, av, e)) return fail(r, OW_E_TOO_FAR);
  if (t->door) {
    int64_t v = (!e->has_open || e->open == 0) ? 1 : 0;
    e->has_open = true;
    e->open = v;
    r.count = (uint32_t)v;
    return r;
  }
  if (av->parent == e->id) {
    av->parent = 0;
    memcpy(av->xf.pos, e->xf.pos, sizeof av->xf.pos);
    r.count = 0;
    return r;
  }
  if (av->parent) return fail(r, OW_E_NOT_INTERACTIVE);
  uint32_t riders = 0;
  for (size_t i = 0; i < m->n; i++) {
    const mentity *c = &m->ents[i];
    if (c->alive && c->parent == e->id && kind_of(m, c) == OW_KIND_AVATAR) riders++;
  }
  if (riders >= t->seats) return fail(r, OW_E_FULL);
  av->parent = e->id;
  r.count = 1;
  return r;
}

static ow_result act_destroy(model *m, ow_id p, ow_id avatar, const ow_action *a, ow_result r) {
  mentity *e = model_get(m, a->target);
  if (!e) return fail(r, OW_E_NOT_FOUND);
  uint8_t k = kind_of(m, e);
  if ((k != OW_KIND_STRUCTURE && k != OW_KIND_CONTAINER && k != OW_KIND_VEHICLE) || e->parent)
    return fail(r, OW_E_NOT_DESTROYABLE);
  if (!may_use(p, e)) return fail(r, OW_E_FORBIDDEN);
  if (!model_reaches(m, model_get(m, avatar), e)) return fail(r, OW_E_TOO_FAR);
  if (model_has_children(m, e->id)) return fail(r, OW_E_NOT_EMPTY);
  e->alive = false;
  return r;
}

ow_result model_apply(model *m, ow_id p, ow_id avatar, const ow_action *a) {
  ow_result r = {.code = 0, .entity = a->target, .count = 0};
  const mentity *av = model_get(m, avatar);
  if (!av || av->owner != p) return fail(r, OW_E_NO_AVATAR);
  switch (a->type) {
  case OW_ACT_MOVE: return act_move(m, p, avatar, a, r);
  case OW_ACT_HARVEST: return act_harvest(m, p, avatar, a, r);
  case OW_ACT_BUILD: return act_build(m, p, avatar, a, r);
  case OW_ACT_CRAFT: return act_craft(m, avatar, a, r);
  case OW_ACT_TRANSFER: return act_transfer(m, p, avatar, a, r);
  case OW_ACT_INTERACT: return act_interact(m, p, avatar, a, r);
  case OW_ACT_DESTROY: return act_destroy(m, p, avatar, a, r);
  default: return fail(r, OW_E_UNKNOWN_ACTION);
  }
}
