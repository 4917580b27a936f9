/* actions: the action table and the seven built-in actions, each a row, each validated completely
 * before it changes anything; the container plans that compute the stacking rule first. See
 * world.h and docs/world.md. */
#include <stdlib.h>

#include "otherworld/protocol.h"
#include "world/world_int.h"

static uint32_t inventory_of(const ow_world *w, const ow_entity *avatar) {
  for (uint32_t c = avatar->child; c != OW_NONE; c = at(w, c)->sibling)
    if (at(w, c)->type == w->content->inventory_type) return c;
  return OW_NONE;
}

static uint32_t riders(const ow_world *w, const ow_entity *v) {
  uint32_t n = 0;
  for (uint32_t c = v->child; c != OW_NONE; c = at(w, c)->sibling)
    if (type_of(w, at(w, c))->kind == OW_KIND_AVATAR) n++;
  return n;
}

/* ---- container plans: stacking rules computed before anything changes ------------------------ */

static int cmp_slot(const void *a, const void *b) {
  ow_id x = ((const pslot *)a)->id, y = ((const pslot *)b)->id;
  return x < y ? -1 : x > y;
}

static void plan_push(plan *p, ow_id id, uint16_t type, uint32_t count) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 32;
    p->s = ow_realloc(p->s, p->cap * sizeof *p->s);
  }
  p->s[p->n++] = (pslot){id, type, count, id ? count : 0};
}

/* Loads the item stacks of container c, in ascending id order. */
static plan *plan_load(ow_world *w, int which, ow_entity *c) {
  plan *p = &w->plans[which];
  p->c = c;
  p->n = 0;
  p->first_recv = SIZE_MAX;
  for (uint32_t s = c->child; s != OW_NONE; s = at(w, s)->sibling) {
    ow_entity *e = at(w, s);
    if (type_of(w, e)->kind == OW_KIND_ITEM) plan_push(p, e->id, e->type, e->count);
  }
  if (p->n > 1) qsort(p->s, p->n, sizeof *p->s, cmp_slot);
  return p;
}

/* Takes n units of `type` from the stacks in ascending id order. */
static int plan_remove(plan *p, uint16_t type, uint32_t n) {
  uint64_t have = 0;
  for (size_t i = 0; i < p->n; i++)
    if (p->s[i].type == type) have += p->s[i].count;
  if (have < n) return OW_E_NOT_ENOUGH;
  for (size_t i = 0; i < p->n && n; i++)
    if (p->s[i].type == type && p->s[i].id) {
      uint32_t take = p->s[i].count < n ? p->s[i].count : n;
      p->s[i].count -= take;
      n -= take;
    }
  return n ? OW_E_NOT_ENOUGH : 0;
}

/* Adds n units of `type`: existing stacks with room first (ascending id), then new stacks of at
 * most stack_max each. Fails with OW_E_FULL if the stacks would exceed the container's slots. */
static int plan_add(ow_world *w, plan *p, uint16_t type, uint32_t n) {
  uint32_t max = w->content->types[type].stack_max;
  for (size_t i = 0; i < p->n && n; i++)
    if (p->s[i].type == type && p->s[i].count > 0 && p->s[i].count < max) {
      uint32_t room = max - p->s[i].count, put = room < n ? room : n;
      p->s[i].count += put;
      n -= put;
      if (p->first_recv == SIZE_MAX) p->first_recv = i;
    }
  while (n) {
    uint32_t put = n < max ? n : max;
    if (p->first_recv == SIZE_MAX) p->first_recv = p->n;
    plan_push(p, 0, type, put);
    n -= put;
  }
  size_t used = 0;
  for (size_t i = 0; i < p->n; i++) used += p->s[i].count > 0;
  return used > type_of(w, p->c)->slots ? OW_E_FULL : 0;
}

/* Carries out a plan: changed stacks are updated, emptied ones destroyed, new ones created in
 * plan order. Returns the id of the stack that received first (0 if none). */
static ow_id plan_apply(ow_world *w, plan *p) {
  uint32_t cs = slot_of(w, p->c);
  ow_id first = 0;
  for (size_t i = 0; i < p->n; i++) {
    pslot *x = &p->s[i];
    if (x->id) {
      uint32_t s = find(w, x->id);
      if (x->count == 0) {
        world_destroy(w, s);
      } else if (x->count != x->orig) {
        world_set_count(w, s, x->count);
        mark(w, at(w, s));
      }
    } else if (x->count) {
      /* A child's transform is relative to its parent: a new stack sits at its container's origin. */
      static const float origin[3] = {0, 0, 0};
      uint32_t s = world_spawn(w, x->type, at(w, cs)->owner, cs, origin);
      at(w, s)->count = x->count;
      x->id = at(w, s)->id;
    }
    if (i == p->first_recv) first = x->id;
  }
  return first;
}

int ow_world_give(ow_world *w, ow_id container, uint16_t item, uint32_t n, ow_id *first) {
  uint32_t cs = find(w, container);
  if (cs == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *c = at(w, cs);
  if (!type_of(w, c)->slots) return OW_E_NOT_CONTAINER;
  if (item >= w->content->ntypes || w->content->types[item].kind != OW_KIND_ITEM) return OW_E_NOT_ITEM;
  if (!n) return OW_E_BAD_COUNT;
  plan *p = plan_load(w, 0, c);
  int rc = plan_add(w, p, item, n);
  if (rc) return rc;
  ow_id f = plan_apply(w, p);
  if (first) *first = f;
  return 0;
}

/* ---- actions ----------------------------------------------------------------------------------- */

static int act_move(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *e = at(w, s);
  if (!type_of(w, e)->movable || e->parent) return OW_E_NOT_MOVABLE;
  if (!may_use(account, e)) return OW_E_FORBIDDEN;
  if (!finite_in_bounds(w, &a->xf)) return OW_E_OUT_OF_BOUNDS;
  if (e != av && !reaches(w, av, e)) return OW_E_TOO_FAR;
  ow_transform xf = e->xf;
  memcpy(xf.pos, a->xf.pos, sizeof xf.pos);
  memcpy(xf.rot, a->xf.rot, sizeof xf.rot);
  world_set_xf(w, s, &xf);
  world_set_region(w, s, world_region_get(w, ow_world_cell_of(w, e->xf.pos)));
  mark(w, e);
  r->entity = e->id;
  return 0;
}

static int act_harvest(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *node = at(w, s);
  const ow_type *t = type_of(w, node);
  if (t->kind != OW_KIND_RESOURCE) return OW_E_NOT_HARVESTABLE;
  if (!may_use(account, node)) return OW_E_FORBIDDEN;
  if (!reaches(w, av, node)) return OW_E_TOO_FAR;
  uint32_t inv = inventory_of(w, av);
  if (inv == OW_NONE) return OW_E_NO_AVATAR;
  plan *p = plan_load(w, 0, at(w, inv));
  int rc = plan_add(w, p, t->yield_item, t->yield_count);
  if (rc) return rc;
  r->entity = plan_apply(w, p);
  r->count = t->yield_count;
  world_set_hp(w, s, node->hp - (t->harvest_damage < node->hp ? t->harvest_damage : node->hp));
  if (node->hp <= 0)
    world_destroy(w, s);
  else
    mark(w, node);
  return 0;
}

static int act_build(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  if (a->kind >= w->content->ntypes) return OW_E_UNKNOWN_TYPE;
  const ow_type *t = &w->content->types[a->kind];
  if (!t->ncost) return OW_E_NOT_BUILDABLE;
  if (!finite_in_bounds(w, &a->xf)) return OW_E_OUT_OF_BOUNDS;
  for (int i = 0; i < 3; i++)
    if (!(a->xf.scale[i] > 0 && a->xf.scale[i] <= 1000)) return OW_E_OUT_OF_BOUNDS;
  if (!within(w, root_of(w, av)->xf.pos, a->xf.pos)) return OW_E_TOO_FAR;
  uint32_t inv = inventory_of(w, av);
  if (inv == OW_NONE) return OW_E_NO_AVATAR;
  plan *p = plan_load(w, 0, at(w, inv));
  for (uint16_t i = 0; i < t->ncost; i++) {
    int rc = plan_remove(p, t->cost[i].item, t->cost[i].count);
    if (rc) return rc;
  }
  plan_apply(w, p);
  uint32_t s = world_spawn(w, t->id, account, OW_NONE, a->xf.pos);
  at(w, s)->xf = a->xf;
  r->entity = at(w, s)->id;
  r->count = 1;
  return 0;
}

static int act_craft(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  (void)account; /* a recipe works on the avatar's own inventory */
  if (a->kind >= w->content->nrecipes) return OW_E_UNKNOWN_RECIPE;
  const ow_recipe *rc = &w->content->recipes[a->kind];
  uint32_t inv = inventory_of(w, av);
  if (inv == OW_NONE) return OW_E_NO_AVATAR;
  plan *p = plan_load(w, 0, at(w, inv));
  for (uint16_t i = 0; i < rc->nin; i++) {
    int e = plan_remove(p, rc->in[i].item, rc->in[i].count);
    if (e) return e;
  }
  for (uint16_t i = 0; i < rc->nout; i++) {
    int e = plan_add(w, p, rc->out[i].item, rc->out[i].count);
    if (e) return e;
  }
  r->entity = plan_apply(w, p);
  r->count = rc->out[0].count;
  return 0;
}

static int act_transfer(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *stack = at(w, s);
  if (type_of(w, stack)->kind != OW_KIND_ITEM || !stack->parent) return OW_E_NOT_ITEM;
  ow_entity *src = at(w, find(w, stack->parent));
  uint32_t ds = find(w, a->dest);
  if (ds == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *dst = at(w, ds);
  if (type_of(w, dst)->slots == 0) return OW_E_NOT_CONTAINER;
  if (dst == src) return OW_E_SAME_CONTAINER;
  if (a->count == 0 || a->count > stack->count) return OW_E_BAD_COUNT;
  if (!may_use(account, src) || !may_use(account, dst)) return OW_E_FORBIDDEN;
  if (!reaches(w, av, src) || !reaches(w, av, dst)) return OW_E_TOO_FAR;
  plan *pd = plan_load(w, 1, dst);
  int rc = plan_add(w, pd, stack->type, a->count);
  if (rc) return rc;
  if (a->count == stack->count) {
    world_destroy(w, s);
  } else {
    world_set_count(w, s, stack->count - a->count);
    mark(w, stack);
  }
  r->entity = plan_apply(w, pd);
  r->count = a->count;
  return 0;
}

static int act_interact(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *e = at(w, s);
  const ow_type *t = type_of(w, e);
  if (!t->door && t->kind != OW_KIND_VEHICLE) return OW_E_NOT_INTERACTIVE;
  if (!may_use(account, e)) return OW_E_FORBIDDEN;
  if (!reaches(w, av, e)) return OW_E_TOO_FAR;
  r->entity = e->id;
  if (t->door) {
    const ow_prop *open = ow_world_prop(e, w->content->key_open);
    int64_t now = (open && open->type == OW_PROP_INT && open->v.i) ? 0 : 1;
    world_prop_set_int(w, e, w->content->key_open, now);
    mark(w, e);
    r->count = (uint32_t)now;
    return 0;
  }
  uint32_t as = slot_of(w, av);
  if (av->parent == e->id) { /* leave the vehicle: stand where it is */
    world_reparent(w, as, OW_NONE);
    ow_transform xf = av->xf;
    memcpy(xf.pos, e->xf.pos, sizeof xf.pos);
    world_set_xf(w, as, &xf);
    world_set_region(w, as, world_region_get(w, ow_world_cell_of(w, av->xf.pos)));
    mark(w, av);
    r->count = 0;
    return 0;
  }
  if (av->parent) return OW_E_NOT_INTERACTIVE; /* seated elsewhere */
  if (riders(w, e) >= t->seats) return OW_E_FULL;
  world_reparent(w, as, s);
  world_set_region(w, as, e->region);
  mark(w, av);
  r->count = 1;
  return 0;
}

static int act_destroy(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *e = at(w, s);
  uint8_t k = type_of(w, e)->kind;
  if ((k != OW_KIND_STRUCTURE && k != OW_KIND_CONTAINER && k != OW_KIND_VEHICLE) || e->parent)
    return OW_E_NOT_DESTROYABLE;
  if (!may_use(account, e)) return OW_E_FORBIDDEN;
  if (!reaches(w, av, e)) return OW_E_TOO_FAR;
  if (e->child != OW_NONE) return OW_E_NOT_EMPTY;
  r->entity = e->id;
  world_destroy(w, s);
  return 0;
}

/* ---- the action table ---------------------------------------------------------------------------- */

/* The built-in rows. Their arguments are the fixed layout of the codec (src/proto/wire.h), already
 * decoded into the action's named fields. */
#define B OW_ACTION_BUILTIN_ARGS
static const ow_action_row builtin[] = {
    {OW_ACT_MOVE, "move", B, act_move, B},
    {OW_ACT_HARVEST, "harvest", B, act_harvest, B},
    {OW_ACT_BUILD, "build", B, act_build, B},
    {OW_ACT_CRAFT, "craft", B, act_craft, B},
    {OW_ACT_TRANSFER, "transfer", B, act_transfer, B},
    {OW_ACT_INTERACT, "interact", B, act_interact, B},
    {OW_ACT_DESTROY, "destroy", B, act_destroy, B},
};
#undef B

void world_actions_init(ow_world *w) {
  for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
    int rc = ow_world_action_register(w, &builtin[i]);
    OW_ASSERT(rc == 0);
    (void)rc;
  }
}

int ow_world_action_register(ow_world *w, const ow_action_row *row) {
  if (!row || row->type == 0 || !row->apply || !row->name || !row->name[0] ||
      row->arg_size > OW_ACTION_ARGS_MAX || row->arg_min > row->arg_size)
    return OW_E_INVAL;
  for (size_t t = 0; t < 256; t++)
    if (w->actions[t].apply && (t == row->type || !strcmp(w->actions[t].name, row->name)))
      return OW_E_INVAL;
  w->actions[row->type] = *row;
  return 0;
}

const ow_action_row *ow_world_action_row(const ow_world *w, uint8_t type) {
  return w->actions[type].apply ? &w->actions[type] : NULL;
}

int ow_world_apply(ow_world *w, ow_id account, ow_id avatar, const ow_action *a, ow_result *res) {
  res->code = 0;
  res->entity = a->target;
  res->count = 0;
  uint32_t as = find(w, avatar);
  const ow_action_row *row = &w->actions[a->type];
  int rc;
  if (as == OW_NONE || at(w, as)->owner != account)
    rc = OW_E_NO_AVATAR;
  else if (!row->apply)
    rc = OW_E_UNKNOWN_ACTION;
  else if (ow_action_size(a) - 1 < row->arg_min || ow_action_size(a) - 1 > row->arg_size)
    rc = OW_E_INVAL; /* checked here, so that no row reads past the arguments it was given */
  else {
    /* All or nothing is the engine's: whatever a failing row changed is rolled back. */
    world_savepoint sp;
    world_begin(w, &sp);
    rc = row->apply(w, account, at(w, as), a, res);
    if (rc)
      world_rollback(w, &sp);
    else
      world_commit(w, &sp);
  }
  if (rc) {
    res->entity = a->target;
    res->count = 0;
  }
  res->code = rc;
  return rc;
}
