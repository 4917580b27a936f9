/* content: JSON content files (jansson) into validated, read-only type tables. See content.h. */
#include "content/content.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "otherworld/protocol.h"

typedef struct parser {
  ow_content *c;
  char *err;
  size_t errlen;
  int failed;
} parser;

static int fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *p, const char *fmt, ...) {
  if (!p->failed && p->err && p->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
  }
  p->failed = 1;
  return OW_E_CONTENT;
}

int ow_content_key(ow_content *c, const char *name, size_t len, bool create) {
  for (uint16_t i = 0; i < c->nkeys; i++)
    if (strlen(c->keys[i]) == len && !memcmp(c->keys[i], name, len)) return i;
  if (!create || c->nkeys == UINT16_MAX) return -1;
  if (c->nkeys == c->capkeys) {
    c->capkeys = c->capkeys ? (uint16_t)(c->capkeys * 2) : 16;
    c->keys = ow_realloc(c->keys, c->capkeys * sizeof *c->keys);
  }
  c->keys[c->nkeys] = ow_strndup(name, len);
  return c->nkeys++;
}

const ow_type *ow_content_type(const ow_content *c, uint16_t id) {
  return id < c->ntypes ? &c->types[id] : NULL;
}

int ow_content_type_id(const ow_content *c, const char *name, size_t len) {
  for (uint16_t i = 0; i < c->ntypes; i++)
    if (strlen(c->types[i].name) == len && !memcmp(c->types[i].name, name, len)) return i;
  return OW_E_UNKNOWN_TYPE;
}

int ow_content_recipe_id(const ow_content *c, const char *name) {
  for (uint16_t i = 0; i < c->nrecipes; i++)
    if (!strcmp(c->recipes[i].name, name)) return i;
  return OW_E_UNKNOWN_RECIPE;
}

static const struct {
  const char *name;
  ow_kind kind;
} kinds[] = {
    {"resource", OW_KIND_RESOURCE}, {"item", OW_KIND_ITEM},         {"structure", OW_KIND_STRUCTURE},
    {"container", OW_KIND_CONTAINER}, {"vehicle", OW_KIND_VEHICLE}, {"collider", OW_KIND_COLLIDER},
    {"capsule", OW_KIND_CAPSULE},   {"marker", OW_KIND_MARKER},     {"plane", OW_KIND_PLANE},
    {"avatar", OW_KIND_AVATAR},
};

/* Reads an integer field within [lo, hi]; absent fields take `def`. */
static int get_int(parser *p, json_t *obj, const char *where, const char *key, long long lo,
                   long long hi, long long def, long long *out) {
  json_t *v = json_object_get(obj, key);
  if (!v) {
    *out = def;
    return 0;
  }
  if (!json_is_integer(v)) return fail(p, "%s.%s: expected an integer", where, key);
  long long x = json_integer_value(v);
  if (x < lo || x > hi) return fail(p, "%s.%s: %lld is outside [%lld, %lld]", where, key, x, lo, hi);
  *out = x;
  return 0;
}

static int get_bool(parser *p, json_t *obj, const char *where, const char *key, bool *out) {
  json_t *v = json_object_get(obj, key);
  if (!v) {
    *out = false;
    return 0;
  }
  if (!json_is_boolean(v)) return fail(p, "%s.%s: expected true or false", where, key);
  *out = json_is_true(v);
  return 0;
}

static int item_ref(parser *p, const char *where, const char *name, uint16_t *out) {
  int id = ow_content_type_id(p->c, name, strlen(name));
  if (id < 0) return fail(p, "%s: unknown type '%s'", where, name);
  if (p->c->types[id].kind != OW_KIND_ITEM) return fail(p, "%s: '%s' is not an item type", where, name);
  *out = (uint16_t)id;
  return 0;
}

/* {"plank": 4, "stone": 1} -> item counts, in file order. */
/* The largest stack_max and seeded item count: a container's one stack can then hold a bank
 * account of SpacetimeDB's keynote-2 (10,000,000 coins, bench/keynote) and its gains, while a
 * stack plus a seed's count stays below 2^32 in the loader's and the world's sums. Costs and
 * recipe counts keep the 1,000,000 limit. */
#define STACK_LIMIT 1000000000

static int itemcounts(parser *p, json_t *v, const char *where, long long max, ow_itemcount **out,
                      uint16_t *n) {
  if (!json_is_object(v) || json_object_size(v) == 0)
    return fail(p, "%s: expected a non-empty object of item names to counts", where);
  if (json_object_size(v) > 64) return fail(p, "%s: more than 64 entries", where);
  *out = ow_calloc(json_object_size(v), sizeof **out);
  *n = 0;
  const char *k;
  json_t *cnt;
  json_object_foreach(v, k, cnt) {
    char w[256];
    snprintf(w, sizeof w, "%s.%s", where, k);
    ow_itemcount *ic = &(*out)[(*n)++];
    if (item_ref(p, w, k, &ic->item)) return OW_E_CONTENT;
    if (!json_is_integer(cnt) || json_integer_value(cnt) < 1 || json_integer_value(cnt) > max)
      return fail(p, "%s: expected a count between 1 and %lld", w, max);
    ic->count = (uint32_t)json_integer_value(cnt);
  }
  return 0;
}

static int props(parser *p, json_t *v, const char *where, ow_prop **out, uint16_t *n) {
  if (!json_is_object(v)) return fail(p, "%s: expected an object", where);
  /* Every property of an entity reaches clients in its snapshot state, which carries at most
   * OW_PROPS_MAX: more would be dropped on the way, so such content is refused here. */
  if (json_object_size(v) > OW_PROPS_MAX)
    return fail(p, "%s: %zu properties, more than the %d an entity can carry (OW_PROPS_MAX)", where,
                json_object_size(v), OW_PROPS_MAX);
  *out = ow_calloc(json_object_size(v) ? json_object_size(v) : 1, sizeof **out);
  *n = 0;
  const char *k;
  json_t *x;
  json_object_foreach(v, k, x) {
    if (strlen(k) == 0 || strlen(k) > 64) return fail(p, "%s: property names are 1 to 64 bytes", where);
    ow_prop *pr = &(*out)[(*n)++];
    pr->key = (uint16_t)ow_content_key(p->c, k, strlen(k), true);
    if (json_is_integer(x)) {
      pr->type = OW_PROP_INT;
      pr->v.i = json_integer_value(x);
    } else if (json_is_real(x)) {
      pr->type = OW_PROP_FLOAT;
      pr->v.f = json_real_value(x);
    } else if (json_is_string(x)) {
      if (json_string_length(x) > 1024) return fail(p, "%s.%s: string longer than 1024 bytes", where, k);
      pr->type = OW_PROP_STRING;
      pr->v.s = ow_strdup(json_string_value(x));
    } else {
      return fail(p, "%s.%s: expected an integer, a number or a string", where, k);
    }
  }
  return 0;
}

static int check_keys(parser *p, json_t *obj, const char *where, const char *const *allowed) {
  const char *k;
  json_t *v;
  json_object_foreach(obj, k, v) {
    int ok = 0;
    for (const char *const *a = allowed; *a; a++)
      if (!strcmp(*a, k)) ok = 1;
    if (!ok) return fail(p, "%s: unknown field '%s'", where, k);
  }
  return 0;
}

static int parse_type_head(parser *p, json_t *t, uint16_t id) {
  char where[64];
  snprintf(where, sizeof where, "types[%u]", id);
  if (!json_is_object(t)) return fail(p, "%s: expected an object", where);
  static const char *const allowed[] = {"name", "kind", "hp", "stack_max", "slots", "seats",
                                        "movable", "door", "harvest", "cost", "props", NULL};
  if (check_keys(p, t, where, allowed)) return OW_E_CONTENT;
  json_t *name = json_object_get(t, "name");
  if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 64)
    return fail(p, "%s.name: expected a name of 1 to 64 bytes", where);
  if (ow_content_type_id(p->c, json_string_value(name), json_string_length(name)) >= 0)
    return fail(p, "%s.name: duplicate type '%s'", where, json_string_value(name));
  json_t *kind = json_object_get(t, "kind");
  if (!json_is_string(kind)) return fail(p, "%s.kind: expected a kind name", where);
  ow_type *ty = &p->c->types[id];
  ty->id = id;
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (!strcmp(kinds[i].name, json_string_value(kind))) ty->kind = (uint8_t)kinds[i].kind;
  if (!ty->kind) return fail(p, "%s.kind: unknown kind '%s'", where, json_string_value(kind));
  ty->name = ow_strdup(json_string_value(name));
  p->c->ntypes = (uint16_t)(id + 1);
  return 0;
}

static int parse_type_body(parser *p, json_t *t, uint16_t id) {
  char where[128];
  snprintf(where, sizeof where, "types[%u] (%s)", id, p->c->types[id].name);
  ow_type *ty = &p->c->types[id];
  long long x;
  if (get_int(p, t, where, "hp", 0, 1000000000, 0, &x)) return OW_E_CONTENT;
  ty->hp = (int32_t)x;
  if (get_int(p, t, where, "stack_max", 1, STACK_LIMIT, 1, &x)) return OW_E_CONTENT;
  ty->stack_max = (uint32_t)x;
  if (get_int(p, t, where, "slots", 0, 4096, 0, &x)) return OW_E_CONTENT;
  ty->slots = (uint16_t)x;
  if (get_int(p, t, where, "seats", 0, 64, 0, &x)) return OW_E_CONTENT;
  ty->seats = (uint16_t)x;
  if (get_bool(p, t, where, "movable", &ty->movable) || get_bool(p, t, where, "door", &ty->door))
    return OW_E_CONTENT;
  if (ty->kind == OW_KIND_AVATAR) ty->movable = true;
  if (ty->kind != OW_KIND_ITEM && json_object_get(t, "stack_max"))
    return fail(p, "%s.stack_max: only item types stack", where);
  if ((ty->kind == OW_KIND_CONTAINER || ty->kind == OW_KIND_VEHICLE) ? 0 : ty->slots)
    return fail(p, "%s.slots: only containers and vehicles hold items", where);
  if (ty->kind == OW_KIND_CONTAINER && ty->slots == 0)
    return fail(p, "%s.slots: a container needs at least one slot", where);
  if (ty->kind != OW_KIND_VEHICLE && ty->seats) return fail(p, "%s.seats: only vehicles have seats", where);
  if (ty->kind == OW_KIND_VEHICLE && ty->seats == 0)
    return fail(p, "%s.seats: a vehicle needs at least one seat", where);
  if (ty->door && ty->kind != OW_KIND_STRUCTURE) return fail(p, "%s.door: only structures are doors", where);

  json_t *h = json_object_get(t, "harvest");
  if (ty->kind == OW_KIND_RESOURCE) {
    char w[160];
    snprintf(w, sizeof w, "%s.harvest", where);
    if (!json_is_object(h)) return fail(p, "%s: a resource needs {\"item\", \"count\", \"damage\"}", w);
    static const char *const allowed[] = {"item", "count", "damage", NULL};
    if (check_keys(p, h, w, allowed)) return OW_E_CONTENT;
    json_t *item = json_object_get(h, "item");
    if (!json_is_string(item)) return fail(p, "%s.item: expected an item type name", w);
    if (item_ref(p, w, json_string_value(item), &ty->yield_item)) return OW_E_CONTENT;
    if (get_int(p, h, w, "count", 1, 1000000, 1, &x)) return OW_E_CONTENT;
    ty->yield_count = (uint32_t)x;
    if (get_int(p, h, w, "damage", 1, 1000000000, 1, &x)) return OW_E_CONTENT;
    ty->harvest_damage = (int32_t)x;
    if (ty->hp < 1) return fail(p, "%s.hp: a resource needs hp of at least 1", where);
  } else if (h) {
    return fail(p, "%s.harvest: only resource nodes can be harvested", where);
  }

  json_t *cost = json_object_get(t, "cost");
  if (cost) {
    if (ty->kind != OW_KIND_STRUCTURE && ty->kind != OW_KIND_CONTAINER && ty->kind != OW_KIND_VEHICLE)
      return fail(p, "%s.cost: only structures, containers and vehicles are built", where);
    char w[160];
    snprintf(w, sizeof w, "%s.cost", where);
    if (itemcounts(p, cost, w, 1000000, &ty->cost, &ty->ncost)) return OW_E_CONTENT;
  }
  json_t *pr = json_object_get(t, "props");
  if (pr) {
    char w[160];
    snprintf(w, sizeof w, "%s.props", where);
    if (props(p, pr, w, &ty->props, &ty->nprops)) return OW_E_CONTENT;
    /* Interacting with a door adds its "open" property when the defaults lack it. */
    bool has_open = json_object_get(pr, "open") != NULL;
    if (ty->door && !has_open && ty->nprops >= OW_PROPS_MAX)
      return fail(p, "%s: a door needs room for its 'open' property: at most %d others, or give "
                  "'open' a default", w, OW_PROPS_MAX - 1);
  }
  return 0;
}

static int parse_vec(parser *p, json_t *v, const char *where, int n, float *out) {
  if (!json_is_array(v) || (int)json_array_size(v) != n)
    return fail(p, "%s: expected an array of %d numbers", where, n);
  for (int i = 0; i < n; i++) {
    json_t *x = json_array_get(v, (size_t)i);
    if (!json_is_number(x) || !isfinite(json_number_value(x)) || fabs(json_number_value(x)) > 1e7)
      return fail(p, "%s[%d]: expected a finite number", where, i);
    out[i] = (float)json_number_value(x);
  }
  return 0;
}

static int parse_recipes(parser *p, json_t *arr) {
  if (!arr) return 0;
  if (!json_is_array(arr) || json_array_size(arr) > 4096)
    return fail(p, "recipes: expected an array of at most 4096 recipes");
  ow_content *c = p->c;
  c->recipes = ow_calloc(json_array_size(arr) + 1, sizeof *c->recipes);
  size_t i;
  json_t *r;
  json_array_foreach(arr, i, r) {
    char where[64];
    snprintf(where, sizeof where, "recipes[%zu]", i);
    if (!json_is_object(r)) return fail(p, "%s: expected an object", where);
    static const char *const allowed[] = {"name", "in", "out", NULL};
    if (check_keys(p, r, where, allowed)) return OW_E_CONTENT;
    json_t *name = json_object_get(r, "name");
    if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 64)
      return fail(p, "%s.name: expected a name of 1 to 64 bytes", where);
    if (ow_content_recipe_id(c, json_string_value(name)) >= 0)
      return fail(p, "%s.name: duplicate recipe '%s'", where, json_string_value(name));
    ow_recipe *rc = &c->recipes[i];
    rc->id = (uint16_t)i;
    rc->name = ow_strdup(json_string_value(name));
    c->nrecipes = (uint16_t)(i + 1);
    char w[96];
    snprintf(w, sizeof w, "%s.in", where);
    if (itemcounts(p, json_object_get(r, "in"), w, 1000000, &rc->in, &rc->nin)) return OW_E_CONTENT;
    snprintf(w, sizeof w, "%s.out", where);
    if (itemcounts(p, json_object_get(r, "out"), w, 1000000, &rc->out, &rc->nout)) return OW_E_CONTENT;
  }
  return 0;
}

static int parse_world(parser *p, json_t *w) {
  ow_content *c = p->c;
  if (!json_is_object(w)) return fail(p, "world: expected an object with spawn and entities");
  static const char *const allowed[] = {"spawn", "entities", NULL};
  if (check_keys(p, w, "world", allowed)) return OW_E_CONTENT;
  if (parse_vec(p, json_object_get(w, "spawn"), "world.spawn", 3, c->spawn)) return OW_E_CONTENT;
  json_t *ents = json_object_get(w, "entities");
  if (!json_is_array(ents) || json_array_size(ents) > 1000000)
    return fail(p, "world.entities: expected an array of at most 1000000 entities");
  c->seeds = ow_calloc(json_array_size(ents) + 1, sizeof *c->seeds);
  size_t i;
  json_t *e;
  json_array_foreach(ents, i, e) {
    char where[64];
    snprintf(where, sizeof where, "world.entities[%zu]", i);
    if (!json_is_object(e)) return fail(p, "%s: expected an object", where);
    static const char *const ek[] = {"type", "pos", "rot", "scale", "items", NULL};
    if (check_keys(p, e, where, ek)) return OW_E_CONTENT;
    json_t *ty = json_object_get(e, "type");
    if (!json_is_string(ty)) return fail(p, "%s.type: expected a type name", where);
    int id = ow_content_type_id(c, json_string_value(ty), json_string_length(ty));
    if (id < 0) return fail(p, "%s.type: unknown type '%s'", where, json_string_value(ty));
    uint8_t k = c->types[id].kind;
    if (k == OW_KIND_ITEM || k == OW_KIND_AVATAR)
      return fail(p, "%s.type: items and avatars cannot be placed in the world directly", where);
    ow_seed *s = &c->seeds[i];
    s->type = (uint16_t)id;
    ow_transform_identity(&s->xf);
    char w2[96];
    snprintf(w2, sizeof w2, "%s.pos", where);
    if (parse_vec(p, json_object_get(e, "pos"), w2, 3, s->xf.pos)) return OW_E_CONTENT;
    if (json_object_get(e, "rot")) {
      snprintf(w2, sizeof w2, "%s.rot", where);
      if (parse_vec(p, json_object_get(e, "rot"), w2, 4, s->xf.rot)) return OW_E_CONTENT;
    }
    if (json_object_get(e, "scale")) {
      snprintf(w2, sizeof w2, "%s.scale", where);
      if (parse_vec(p, json_object_get(e, "scale"), w2, 3, s->xf.scale)) return OW_E_CONTENT;
      for (int j = 0; j < 3; j++)
        if (!(s->xf.scale[j] > 0)) return fail(p, "%s.scale: components must be positive", where);
    }
    c->nseeds = (uint32_t)(i + 1);
    json_t *items = json_object_get(e, "items");
    if (items) {
      snprintf(w2, sizeof w2, "%s.items", where);
      const ow_type *ct = &c->types[id];
      if (!ct->slots) return fail(p, "%s: only containers and vehicles hold items", w2);
      if (itemcounts(p, items, w2, STACK_LIMIT, &s->items, &s->nitems)) return OW_E_CONTENT;
      /* The stacks they make must fit, so that seeding cannot fail. */
      uint64_t stacks = 0;
      for (uint16_t j = 0; j < s->nitems; j++) {
        uint32_t max = c->types[s->items[j].item].stack_max;
        stacks += (s->items[j].count + max - 1) / max;
      }
      if (stacks > ct->slots)
        return fail(p, "%s: needs %llu stacks, '%s' has %u slots", w2, (unsigned long long)stacks,
                    ct->name, ct->slots);
    }
  }
  return 0;
}

static int parse_root(parser *p, json_t *root) {
  ow_content *c = p->c;
  if (!json_is_object(root)) return fail(p, "top level: expected an object");
  static const char *const allowed[] = {"format", "types", "recipes", "avatar", "inventory", "world", NULL};
  if (check_keys(p, root, "top level", allowed)) return OW_E_CONTENT;
  json_t *fmt = json_object_get(root, "format");
  if (!json_is_integer(fmt) || json_integer_value(fmt) != 1)
    return fail(p, "format: expected 1 (the only content format this server reads)");
  json_t *types = json_object_get(root, "types");
  if (!json_is_array(types) || json_array_size(types) == 0 || json_array_size(types) > 4096)
    return fail(p, "types: expected an array of 1 to 4096 types");
  c->types = ow_calloc(json_array_size(types), sizeof *c->types);
  /* Names first, so that a type may refer to one declared after it. */
  size_t i;
  json_t *t;
  json_array_foreach(types, i, t) if (parse_type_head(p, t, (uint16_t)i)) return OW_E_CONTENT;
  json_array_foreach(types, i, t) if (parse_type_body(p, t, (uint16_t)i)) return OW_E_CONTENT;
  if (parse_recipes(p, json_object_get(root, "recipes"))) return OW_E_CONTENT;

  json_t *av = json_object_get(root, "avatar"), *inv = json_object_get(root, "inventory");
  if (!json_is_string(av)) return fail(p, "avatar: expected the name of the avatar type");
  if (!json_is_string(inv)) return fail(p, "inventory: expected the name of the inventory type");
  int a = ow_content_type_id(c, json_string_value(av), json_string_length(av));
  if (a < 0 || c->types[a].kind != OW_KIND_AVATAR)
    return fail(p, "avatar: '%s' is not a type of kind avatar", json_string_value(av));
  int n = ow_content_type_id(c, json_string_value(inv), json_string_length(inv));
  if (n < 0 || c->types[n].kind != OW_KIND_CONTAINER)
    return fail(p, "inventory: '%s' is not a type of kind container", json_string_value(inv));
  c->avatar_type = (uint16_t)a;
  c->inventory_type = (uint16_t)n;
  if (parse_world(p, json_object_get(root, "world"))) return OW_E_CONTENT;
  c->key_open = (uint16_t)ow_content_key(c, "open", 4, true);
  size_t desc = ow_content_description_size(c);
  if (desc > OW_CONTENT_DESCRIPTION_MAX)
    return fail(p, "types, recipes and property names take %zu bytes in the world description "
                "clients receive, more than %u: use fewer or shorter names", desc,
                OW_CONTENT_DESCRIPTION_MAX);
  return 0;
}

size_t ow_content_description_size(const ow_content *c) {
  size_t n = 4 + 4 + 2 + 2 + 2; /* region_size, interest_radius and the three counts */
  for (uint16_t i = 0; i < c->ntypes; i++) n += 2 + 1 + 1 + strlen(c->types[i].name);
  for (uint16_t i = 0; i < c->nrecipes; i++) n += 2 + 1 + strlen(c->recipes[i].name);
  for (uint16_t i = 0; i < c->nkeys; i++) n += 1 + strlen(c->keys[i]);
  return n;
}

int ow_content_load_string(const char *json, size_t len, ow_content **out, char *err, size_t errlen) {
  *out = NULL;
  parser p = {.c = ow_calloc(1, sizeof(ow_content)), .err = err, .errlen = errlen};
  json_error_t je;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  int rc;
  if (!root) {
    rc = fail(&p, "line %d column %d: %s", je.line, je.column, je.text);
  } else {
    rc = parse_root(&p, root);
    json_decref(root);
  }
  if (rc) {
    ow_content_destroy(p.c);
    return rc;
  }
  /* FNV-1a of the file, so that the log says which content a server ran with. */
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)json[i]) * 1099511628211ULL;
  p.c->hash = h;
  *out = p.c;
  return 0;
}

int ow_content_load_file(const char *path, ow_content **out, char *err, size_t errlen) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return OW_E_CONTENT;
  }
  ow_buf b;
  ow_buf_init(&b);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.len + n > 64u << 20) {
      fclose(f);
      ow_buf_deinit(&b);
      snprintf(err, errlen, "%s: larger than 64 MiB", path);
      return OW_E_CONTENT;
    }
    ow_buf_put(&b, chunk, n);
  }
  int rerr = ferror(f);
  fclose(f);
  if (rerr) {
    ow_buf_deinit(&b);
    snprintf(err, errlen, "%s: read error", path);
    return OW_E_CONTENT;
  }
  char inner[400] = "";
  int rc = ow_content_load_string((const char *)b.data, b.len, out, inner, sizeof inner);
  ow_buf_deinit(&b);
  if (rc) snprintf(err, errlen, "%s: %s", path, inner);
  return rc;
}

static void free_props(ow_prop *p, uint16_t n) {
  for (uint16_t i = 0; i < n; i++)
    if (p[i].type == OW_PROP_STRING) ow_free(p[i].v.s);
  ow_free(p);
}

void ow_content_destroy(ow_content *c) {
  if (!c) return;
  for (uint16_t i = 0; i < c->ntypes; i++) {
    ow_free(c->types[i].name);
    ow_free(c->types[i].cost);
    free_props(c->types[i].props, c->types[i].nprops);
  }
  /* A failed parse may have allocated a type's fields one past ntypes. */
  ow_free(c->types);
  for (uint16_t i = 0; i < c->nrecipes; i++) {
    ow_free(c->recipes[i].name);
    ow_free(c->recipes[i].in);
    ow_free(c->recipes[i].out);
  }
  ow_free(c->recipes);
  for (uint32_t i = 0; c->seeds && i < c->nseeds; i++) ow_free(c->seeds[i].items);
  ow_free(c->seeds);
  for (uint16_t i = 0; i < c->nkeys; i++) ow_free(c->keys[i]);
  ow_free(c->keys);
  ow_free(c);
}
