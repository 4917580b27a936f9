/* content: the shipped file loads; every kind of mistake in a content file is refused with a
 * message that names the place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "support.h"

static void test_default_content(void **state) {
  (void)state;
  ow_content *c = ow_test_content();
  assert_true(c->ntypes >= 10);
  const ow_type *tree = ow_content_type(c, (uint16_t)ow_content_type_id(c, "tree", 4));
  assert_int_equal(tree->kind, OW_KIND_RESOURCE);
  assert_string_equal(c->types[tree->yield_item].name, "wood");
  int wall = ow_content_type_id(c, "wall", 4);
  assert_true(wall >= 0 && c->types[wall].ncost == 1);
  assert_int_equal(ow_content_type_id(c, "nope", 4), OW_E_UNKNOWN_TYPE);
  assert_true(ow_content_recipe_id(c, "planks") >= 0);
  assert_int_equal(ow_content_recipe_id(c, "nope"), OW_E_UNKNOWN_RECIPE);
  /* The seed's prototypes: a quad plane as ground and a Marker3D at (0, 0, 1). */
  bool plane = false, marker = false;
  for (uint32_t i = 0; i < c->nseeds; i++) {
    const ow_seed *s = &c->seeds[i];
    if (c->types[s->type].kind == OW_KIND_PLANE) plane = true;
    if (c->types[s->type].kind == OW_KIND_MARKER && s->xf.pos[0] == 0 && s->xf.pos[1] == 0 &&
        s->xf.pos[2] == 1)
      marker = true;
  }
  assert_true(plane && marker);
  ow_content_destroy(c);
}

#define BASE_TYPES                                                                         \
  "{\"name\":\"wood\",\"kind\":\"item\",\"stack_max\":10},"                                \
  "{\"name\":\"av\",\"kind\":\"avatar\"},{\"name\":\"inv\",\"kind\":\"container\",\"slots\":4}"
#define TAIL ",\"avatar\":\"av\",\"inventory\":\"inv\",\"world\":{\"spawn\":[0,0,0],\"entities\":[]}}"

static void expect_error(const char *json, const char *fragment) {
  ow_content *c = (ow_content *)1;
  char err[512] = "";
  int rc = ow_content_load_string(json, strlen(json), &c, err, sizeof err);
  if (rc != OW_E_CONTENT || !strstr(err, fragment))
    fail_msg("content %s\n  expected error containing '%s', got rc=%d err='%s'", json, fragment, rc, err);
  assert_null(c);
}

static void test_minimal_ok(void **state) {
  (void)state;
  const char *j = "{\"format\":1,\"types\":[" BASE_TYPES "]" TAIL;
  ow_content *c;
  char err[256];
  assert_int_equal(ow_content_load_string(j, strlen(j), &c, err, sizeof err), 0);
  assert_int_equal(c->ntypes, 3);
  ow_content_destroy(c);
}

static void test_errors_name_the_place(void **state) {
  (void)state;
  expect_error("{\"format\":1,", "line 1");
  expect_error("[]", "top level: expected an object");
  expect_error("{\"format\":2,\"types\":[" BASE_TYPES "]" TAIL, "format");
  expect_error("{\"format\":1,\"colour\":1,\"types\":[" BASE_TYPES "]" TAIL, "unknown field 'colour'");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES ",{\"name\":\"wood\",\"kind\":\"item\"}]" TAIL,
               "duplicate type 'wood'");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES ",{\"name\":\"x\",\"kind\":\"blob\"}]" TAIL,
               "types[3].kind: unknown kind 'blob'");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES
               ",{\"name\":\"wall\",\"kind\":\"structure\",\"cost\":{\"plank\":4}}]" TAIL,
               "types[3] (wall).cost.plank: unknown type 'plank'");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES
               ",{\"name\":\"wall\",\"kind\":\"structure\",\"cost\":{\"inv\":4}}]" TAIL,
               "'inv' is not an item type");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES
               ",{\"name\":\"wall\",\"kind\":\"structure\",\"cost\":{\"wood\":-1}}]" TAIL,
               "cost.wood: expected a count");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES ",{\"name\":\"tree\",\"kind\":\"resource\",\"hp\":5}]" TAIL,
               "harvest: a resource needs");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES ",{\"name\":\"box\",\"kind\":\"container\"}]" TAIL,
               "a container needs at least one slot");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES ",{\"name\":\"car\",\"kind\":\"vehicle\",\"slots\":2}]" TAIL,
               "a vehicle needs at least one seat");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES ",{\"name\":\"w\",\"kind\":\"structure\",\"hp\":1.5}]" TAIL,
               "hp: expected an integer");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES ",{\"name\":\"w\",\"kind\":\"structure\",\"hp\":-3}]" TAIL,
               "hp: -3 is outside");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES ",{\"name\":\"w\",\"kind\":\"structure\",\"props\":{\"a\":[1]}}]" TAIL,
               "props.a: expected an integer, a number or a string");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES "],\"recipes\":[{\"name\":\"r\",\"in\":{},\"out\":{\"wood\":1}}]" TAIL,
               "recipes[0].in: expected a non-empty object");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES "],\"avatar\":\"inv\",\"inventory\":\"inv\","
               "\"world\":{\"spawn\":[0,0,0],\"entities\":[]}}",
               "avatar: 'inv' is not a type of kind avatar");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES "],\"avatar\":\"av\",\"inventory\":\"inv\","
               "\"world\":{\"spawn\":[0,0],\"entities\":[]}}",
               "world.spawn: expected an array of 3 numbers");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES "],\"avatar\":\"av\",\"inventory\":\"inv\","
               "\"world\":{\"spawn\":[0,0,0],\"entities\":[{\"type\":\"ghost\",\"pos\":[0,0,0]}]}}",
               "world.entities[0].type: unknown type 'ghost'");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES "],\"avatar\":\"av\",\"inventory\":\"inv\","
               "\"world\":{\"spawn\":[0,0,0],\"entities\":[{\"type\":\"wood\",\"pos\":[0,0,0]}]}}",
               "items and avatars cannot be placed");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES "],\"avatar\":\"av\",\"inventory\":\"inv\","
               "\"world\":{\"spawn\":[0,0,0],\"entities\":[{\"type\":\"inv\",\"pos\":[0,0,0],\"scale\":[1,0,1]}]}}",
               "scale: components must be positive");
}

/* A seeded container may hold items: they must be item types and their stacks must fit. */
static void test_seed_items(void **state) {
  (void)state;
  const char *j = "{\"format\":1,\"types\":[" BASE_TYPES "],\"avatar\":\"av\",\"inventory\":\"inv\","
                  "\"world\":{\"spawn\":[0,0,0],\"entities\":[{\"type\":\"inv\",\"pos\":[5,0,5],"
                  "\"items\":{\"wood\":40}},{\"type\":\"inv\",\"pos\":[6,0,5]}]}}";
  ow_content *c;
  char err[256];
  assert_int_equal(ow_content_load_string(j, strlen(j), &c, err, sizeof err), 0);
  assert_int_equal(c->nseeds, 2);
  assert_int_equal(c->seeds[0].nitems, 1);
  assert_int_equal(c->seeds[0].items[0].item, ow_content_type_id(c, "wood", 4));
  assert_int_equal(c->seeds[0].items[0].count, 40);
  assert_int_equal(c->seeds[1].nitems, 0);
  ow_content_destroy(c);
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES ",{\"name\":\"wall\",\"kind\":\"structure\"}],"
               "\"avatar\":\"av\",\"inventory\":\"inv\",\"world\":{\"spawn\":[0,0,0],\"entities\":"
               "[{\"type\":\"wall\",\"pos\":[0,0,0],\"items\":{\"wood\":1}}]}}",
               "world.entities[0].items: only containers and vehicles hold items");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES "],\"avatar\":\"av\",\"inventory\":\"inv\","
               "\"world\":{\"spawn\":[0,0,0],\"entities\":[{\"type\":\"inv\",\"pos\":[0,0,0],"
               "\"items\":{\"wood\":41}}]}}",
               "world.entities[0].items: needs 5 stacks, 'inv' has 4 slots");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES "],\"avatar\":\"av\",\"inventory\":\"inv\","
               "\"world\":{\"spawn\":[0,0,0],\"entities\":[{\"type\":\"inv\",\"pos\":[0,0,0],"
               "\"items\":{\"inv\":1}}]}}",
               "'inv' is not an item type");
}

/* bench/keynote seeds 10,000,000 coins per account in one stack (keynote-2's balance): stack_max
 * and a seeded count go up to 1,000,000,000, one more is refused; costs and recipes keep their
 * 1,000,000 limit. */
static void test_big_stacks(void **state) {
  (void)state;
  const char *j = "{\"format\":1,\"types\":[{\"name\":\"coin\",\"kind\":\"item\",\"stack_max\":"
                  "1000000000},{\"name\":\"av\",\"kind\":\"avatar\"},{\"name\":\"inv\",\"kind\":"
                  "\"container\",\"slots\":1}],\"avatar\":\"av\",\"inventory\":\"inv\",\"world\":{"
                  "\"spawn\":[0,0,0],\"entities\":[{\"type\":\"inv\",\"pos\":[5,0,5],\"items\":"
                  "{\"coin\":1000000000}}]}}";
  ow_content *c;
  char err[256];
  assert_int_equal(ow_content_load_string(j, strlen(j), &c, err, sizeof err), 0);
  assert_int_equal(c->types[ow_content_type_id(c, "coin", 4)].stack_max, 1000000000u);
  assert_int_equal(c->seeds[0].items[0].count, 1000000000u);
  ow_content_destroy(c);
  expect_error("{\"format\":1,\"types\":[{\"name\":\"coin\",\"kind\":\"item\",\"stack_max\":"
               "1000000001}" ",{\"name\":\"av\",\"kind\":\"avatar\"},{\"name\":\"inv\",\"kind\":"
               "\"container\",\"slots\":4}]" TAIL,
               "stack_max");
  expect_error("{\"format\":1,\"types\":[" BASE_TYPES "],\"avatar\":\"av\",\"inventory\":\"inv\","
               "\"world\":{\"spawn\":[0,0,0],\"entities\":[{\"type\":\"inv\",\"pos\":[0,0,0],"
               "\"items\":{\"wood\":1000000001}}]}}",
               "world.entities[0].items.wood: expected a count between 1 and 1000000000");
}

/* Builds content with one structure type "w" carrying n properties named `first`, p1, p2, ...;
 * `extra` is appended to the type's fields (e.g. ",\"door\":true"). */
static char *props_content(int n, const char *extra, const char *first) {
  static char j[4096];
  int o = snprintf(j, sizeof j, "{\"format\":1,\"types\":[" BASE_TYPES
                   ",{\"name\":\"w\",\"kind\":\"structure\"%s,\"props\":{", extra);
  for (int i = 0; i < n; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%d", i);
    o += snprintf(j + o, sizeof j - (size_t)o, "%s\"%s\":%d", i ? "," : "", i ? name : first, i);
  }
  snprintf(j + o, sizeof j - (size_t)o, "}}]" TAIL);
  return j;
}

/* Regression: content allowed 32 properties per type while snapshots carry 16, and the replica
 * dropped the rest without a word. Now the one limit, OW_PROPS_MAX, is checked at load. */
static void test_props_limit(void **state) {
  (void)state;
  ow_content *c;
  char err[512];
  const char *j = props_content(OW_PROPS_MAX, "", "p0");
  assert_int_equal(ow_content_load_string(j, strlen(j), &c, err, sizeof err), 0);
  assert_int_equal(c->types[3].nprops, OW_PROPS_MAX);
  ow_content_destroy(c);
  expect_error(props_content(OW_PROPS_MAX + 1, "", "p0"),
               "types[3] (w).props: 17 properties, more than the 16");
  /* A door gains "open" when first used, so it needs a free place for it... */
  expect_error(props_content(OW_PROPS_MAX, ",\"door\":true", "p0"),
               "types[3] (w).props: a door needs room");
  j = props_content(OW_PROPS_MAX - 1, ",\"door\":true", "p0");
  assert_int_equal(ow_content_load_string(j, strlen(j), &c, err, sizeof err), 0);
  ow_content_destroy(c);
  /* ...or a default for it among its properties. */
  j = props_content(OW_PROPS_MAX, ",\"door\":true", "open");
  assert_int_equal(ow_content_load_string(j, strlen(j), &c, err, sizeof err), 0);
  ow_content_destroy(c);
}

static void test_missing_file(void **state) {
  (void)state;
  ow_content *c;
  char err[256];
  assert_int_equal(ow_content_load_file("/nonexistent/x.json", &c, err, sizeof err), OW_E_CONTENT);
  assert_non_null(strstr(err, "No such file"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_content),
      cmocka_unit_test(test_minimal_ok),
      cmocka_unit_test(test_errors_name_the_place),
      cmocka_unit_test(test_seed_items),
      cmocka_unit_test(test_big_stacks),
      cmocka_unit_test(test_props_limit),
      cmocka_unit_test(test_missing_file),
  };
  return cmocka_run_group_tests_name("content", tests, NULL, NULL);
}
