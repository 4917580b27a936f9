/*
 * assets_gltf: the glTF validator (src/assets/gltf.h) on a small valid asset made here (a skinned
 * triangle with a texture) and on that asset broken one way at a time. Each refusal must carry its
 * code and name the JSON path of the problem; the valid asset's figures and rank are checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "assets/gltf.h"
#include "core/core.h"

/* The binary buffer: 3 positions (36 bytes), 3 ushort indices (6 + 2 padding), 3 JOINTS_0 as
 * ubyte VEC4 (12), 3 WEIGHTS_0 float VEC4 (48), 2 inverse bind matrices (128), a PNG's signature,
 * IHDR and IEND (45 + 3 padding; the validator reads no pixel data), 3 TEXCOORD_0 (24). */
enum { OFF_POS = 0, OFF_IND = 36, OFF_JNT = 44, OFF_WGT = 56, OFF_IBM = 104, OFF_PNG = 232, OFF_UV = 280, BIN_LEN = 304 };

static void put_f32(uint8_t *p, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  p[0] = (uint8_t)u, p[1] = (uint8_t)(u >> 8), p[2] = (uint8_t)(u >> 16), p[3] = (uint8_t)(u >> 24);
}
static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint8_t bin[BIN_LEN];

static void make_bin(uint32_t png_w, uint32_t png_h) {
  memset(bin, 0, sizeof bin);
  const float pos[9] = {0, 0, 0, 1, 0, 0, 0, 1, 0};
  for (int i = 0; i < 9; i++) put_f32(bin + OFF_POS + 4 * i, pos[i]);
  for (int i = 0; i < 3; i++) bin[OFF_IND + 2 * i] = (uint8_t)i;
  for (int v = 0; v < 3; v++) {
    bin[OFF_JNT + 4 * v] = (uint8_t)(v & 1); /* joint 0 or 1, weight 1 */
    put_f32(bin + OFF_WGT + 16 * v, 1.0f);
  }
  for (int m = 0; m < 2; m++)
    for (int k = 0; k < 4; k++) put_f32(bin + OFF_IBM + 64 * m + 20 * k, 1.0f); /* identity */
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  memcpy(bin + OFF_PNG, sig, 8);
  put_be32(bin + OFF_PNG + 8, 13);
  memcpy(bin + OFF_PNG + 12, "IHDR", 4);
  put_be32(bin + OFF_PNG + 16, png_w);
  put_be32(bin + OFF_PNG + 20, png_h);
  bin[OFF_PNG + 24] = 8, bin[OFF_PNG + 25] = 6;
  static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
  memcpy(bin + OFF_PNG + 33, iend, sizeof iend);
  const float uv[6] = {0, 0, 1, 0, 0, 1};
  for (int i = 0; i < 6; i++) put_f32(bin + OFF_UV + 4 * i, uv[i]);
}

static const char *base_json =
    "{\"asset\":{\"version\":\"2.0\"},\"scene\":0,\"scenes\":[{\"nodes\":[0]}],"
    "\"nodes\":[{\"children\":[1,2]},{\"mesh\":0,\"skin\":0},{\"children\":[3]},{}],"
    "\"skins\":[{\"joints\":[2,3],\"inverseBindMatrices\":4,\"skeleton\":2}],"
    "\"meshes\":[{\"primitives\":[{\"attributes\":{\"POSITION\":0,\"JOINTS_0\":2,\"WEIGHTS_0\":3,\"TEXCOORD_0\":5},"
    "\"indices\":1,\"material\":0}]}],"
    "\"materials\":[{\"pbrMetallicRoughness\":{\"baseColorTexture\":{\"index\":0}}}],"
    "\"textures\":[{\"source\":0,\"sampler\":0}],\"samplers\":[{\"magFilter\":9729}],"
    "\"images\":[{\"bufferView\":5,\"mimeType\":\"image/png\"}],"
    "\"accessors\":["
    "{\"bufferView\":0,\"componentType\":5126,\"count\":3,\"type\":\"VEC3\",\"min\":[0,0,0],\"max\":[1,1,0]},"
    "{\"bufferView\":1,\"componentType\":5123,\"count\":3,\"type\":\"SCALAR\"},"
    "{\"bufferView\":2,\"componentType\":5121,\"count\":3,\"type\":\"VEC4\"},"
    "{\"bufferView\":3,\"componentType\":5126,\"count\":3,\"type\":\"VEC4\"},"
    "{\"bufferView\":4,\"componentType\":5126,\"count\":2,\"type\":\"MAT4\"},"
    "{\"bufferView\":6,\"componentType\":5126,\"count\":3,\"type\":\"VEC2\"}],"
    "\"bufferViews\":["
    "{\"buffer\":0,\"byteOffset\":0,\"byteLength\":36},{\"buffer\":0,\"byteOffset\":36,\"byteLength\":6},"
    "{\"buffer\":0,\"byteOffset\":44,\"byteLength\":12},{\"buffer\":0,\"byteOffset\":56,\"byteLength\":48},"
    "{\"buffer\":0,\"byteOffset\":104,\"byteLength\":128},{\"buffer\":0,\"byteOffset\":232,\"byteLength\":45},"
    "{\"buffer\":0,\"byteOffset\":280,\"byteLength\":24}],\"buffers\":[{\"byteLength\":304}]}";

/* A GLB of the JSON text and the binary buffer, into a fresh allocation (*n bytes). */
static uint8_t *glb_of(const char *js, const uint8_t *b, size_t blen, size_t *n) {
  size_t jl = strlen(js), jp = (jl + 3) & ~(size_t)3, bp = (blen + 3) & ~(size_t)3;
  *n = 12 + 8 + jp + (blen ? 8 + bp : 0);
  uint8_t *p = ow_calloc(*n, 1);
  uint32_t w[5] = {0x46546C67, 2, (uint32_t)*n, (uint32_t)jp, 0x4E4F534A};
  for (int i = 0; i < 5; i++)
    for (int k = 0; k < 4; k++) p[4 * i + k] = (uint8_t)(w[i] >> (8 * k));
  memcpy(p + 20, js, jl);
  memset(p + 20 + jl, ' ', jp - jl);
  if (blen) {
    uint8_t *q = p + 20 + jp;
    uint32_t h[2] = {(uint32_t)bp, 0x004E4942};
    for (int i = 0; i < 2; i++)
      for (int k = 0; k < 4; k++) q[4 * i + k] = (uint8_t)(h[i] >> (8 * k));
    memcpy(q + 8, b, blen);
  }
  return p;
}

/* Follows a JSON pointer ("/accessors/0") to its value. */
static json_t *at(json_t *root, const char *ptr) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", ptr);
  json_t *v = root;
  for (char *tok = strtok(buf, "/"); tok && v; tok = strtok(NULL, "/"))
    v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
  return v;
}

/* The base asset with obj[key] = val (a JSON text; NULL deletes the key), validated. */
static const char *base_text;

static int run(const char *obj, const char *key, const char *val, char *err, ow_gltf_figures *f) {
  json_t *root = json_loads(base_text ? base_text : base_json, 0, NULL);
  assert_non_null(root);
  if (obj) {
    json_t *o = at(root, obj);
    assert_non_null(o);
    if (val) json_object_set_new(o, key, json_loads(val, JSON_DECODE_ANY, NULL));
    else json_object_del(o, key);
  }
  char *js = json_dumps(root, JSON_COMPACT);
  size_t n;
  uint8_t *glb = glb_of(js, bin, sizeof bin, &n);
  int rc = ow_gltf_validate(glb, n, NULL, NULL, NULL, f, err, 512);
  ow_free(glb);
  free(js);
  json_decref(root);
  return rc;
}

/* The refusal names code and path. */
static void refused(const char *obj, const char *key, const char *val, int code, const char *path) {
  char err[512];
  int rc = run(obj, key, val, err, NULL);
  if (rc != code || strncmp(err, path, strlen(path))) {
    fprintf(stderr, "%s.%s = %s: rc=%d err=%s (wanted %d %s)\n", obj, key, val ? val : "(deleted)", rc, err, code, path);
    fail();
  }
}

static void test_valid(void **state) {
  (void)state;
  make_bin(256, 128);
  char err[512];
  ow_gltf_figures f;
  assert_int_equal(run(NULL, NULL, NULL, err, &f), 0);
  assert_int_equal(f.triangles, 1);
  assert_int_equal(f.vertices, 3);
  assert_int_equal(f.materials, 1);
  assert_int_equal(f.bones, 2);
  assert_int_equal(f.draw_calls, 1);
  assert_int_equal(f.images, 1);
  assert_int_equal(f.texture_mem, 256 * 128 * 4 * 4 / 3);
  assert_int_equal(f.rank, OW_RANK_EXCELLENT);
  assert_string_equal(ow_gltf_rank_name(f.rank), "Excellent");
}

static void test_indices(void **state) {
  (void)state;
  make_bin(256, 128);
  refused("/accessors/0", "bufferView", "9", OW_E_INVAL, "/accessors/0/bufferView: index 9 out of range");
  refused("/bufferViews/0", "buffer", "1", OW_E_INVAL, "/bufferViews/0/buffer:");
  refused("/meshes/0/primitives/0", "material", "3", OW_E_INVAL, "/meshes/0/primitives/0/material:");
  refused("/meshes/0/primitives/0/attributes", "POSITION", "7", OW_E_INVAL, "/meshes/0/primitives/0/attributes/POSITION:");
  refused("/nodes/1", "mesh", "1", OW_E_INVAL, "/nodes/1/mesh:");
  refused("/nodes/1", "skin", "4", OW_E_INVAL, "/nodes/1/skin:");
  refused("/nodes/0", "children", "[1,9]", OW_E_INVAL, "/nodes/0/children/1:");
  refused("/textures/0", "source", "1", OW_E_INVAL, "/textures/0/source:");
  refused("/textures/0", "sampler", "2", OW_E_INVAL, "/textures/0/sampler:");
  refused("/materials/0/pbrMetallicRoughness/baseColorTexture", "index", "1", OW_E_INVAL,
          "/materials/0/pbrMetallicRoughness/baseColorTexture/index:");
  refused("/images/0", "bufferView", "7", OW_E_INVAL, "/images/0/bufferView:");
  refused("/skins/0", "joints", "[2,5]", OW_E_INVAL, "/skins/0/joints/1:");
  refused("", "scene", "1", OW_E_INVAL, "/scene:");
  refused("/accessors/0", "count", "1.0", OW_E_INVAL, "/accessors/0/count: must be an integer");
}

static void test_bounds(void **state) {
  (void)state;
  make_bin(256, 128);
  refused("/accessors/0", "count", "4", OW_E_INVAL, "/accessors/0/count:");
  refused("/accessors/0", "byteOffset", "4", OW_E_INVAL, "/accessors/0/count:");
  refused("/accessors/1", "byteOffset", "1", OW_E_INVAL, "/accessors/1/byteOffset:");
  refused("/bufferViews/5", "byteLength", "80", OW_E_INVAL, "/bufferViews/5/byteLength:");
  refused("/buffers/0", "byteLength", "400", OW_E_INVAL, "/buffers/0/byteLength: declares 400 bytes");
  refused("/buffers/0", "byteLength", "1000000000000", OW_E_TOO_LARGE, "/buffers/0/byteLength:");
  refused("/bufferViews/0", "byteStride", "8", OW_E_INVAL, "/accessors/0:");
  refused("/accessors/0", "componentType", "5127", OW_E_INVAL, "/accessors/0/componentType:");
  refused("/accessors/0", "type", "\"VEC5\"", OW_E_INVAL, "/accessors/0/type:");
  /* Index values: one beyond the three vertices. */
  bin[OFF_IND + 4] = 3;
  refused(NULL, NULL, NULL, OW_E_INVAL, "/accessors/1: index 2 is 3");
  make_bin(256, 128);
}

static void test_tree_and_skins(void **state) {
  (void)state;
  make_bin(256, 128);
  /* A true cycle: nodes 2 and 3 are each other's only parent, so no node has two parents. */
  base_text = "{\"asset\":{\"version\":\"2.0\"},\"nodes\":[{\"children\":[1]},{},{\"children\":[3]},"
              "{\"children\":[2]}]}";
  refused(NULL, NULL, NULL, OW_E_INVAL, "/nodes/3/children: the node hierarchy has a cycle");
  base_text = NULL;
  refused("/nodes/3", "children", "[3]", OW_E_INVAL, "/nodes/3/children/0: node is its own child");
  refused("/nodes/2", "children", "[1]", OW_E_INVAL, "/nodes/2/children/0: node 1 already has parent 0");
  refused("/nodes/0", "children", "[1,1]", OW_E_INVAL, "/nodes/0/children/1: index 1 appears twice");
  refused("/scenes/0", "nodes", "[2]", OW_E_INVAL, "/scenes/0/nodes/0: node 2 is not a root");
  refused("/nodes/2", "children", NULL, OW_E_INVAL, "/skins/0/joints/1:");
  refused("/skins/0", "skeleton", "3", OW_E_INVAL, "/skins/0/skeleton:");
  refused("/accessors/4", "count", "1", OW_E_INVAL, "/skins/0/inverseBindMatrices:");
  refused("/skins/0", "inverseBindMatrices", "3", OW_E_INVAL, "/skins/0/inverseBindMatrices:");
  refused("/skins/0", "joints", "[2]", OW_E_INVAL, "/skins/0/inverseBindMatrices:");
  refused("/nodes/1", "mesh", NULL, OW_E_INVAL, "/nodes/1/skin:");
  refused("/nodes/3", "rotation", "[0,0,0,2]", OW_E_INVAL, "/nodes/3/rotation:");
  refused("/nodes/3", "matrix", "[1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1]", 0, "");
  put_f32(bin + OFF_WGT + 16, 0.5f);
  refused(NULL, NULL, NULL, OW_E_INVAL, "/meshes/0/primitives/0/attributes/WEIGHTS_0: weights of vertex 1");
  make_bin(256, 128);
  bin[OFF_JNT + 8] = 2; /* a joint the skin does not have */
  refused(NULL, NULL, NULL, OW_E_INVAL, "/nodes/1/skin:");
  make_bin(256, 128);
}

static void test_images_and_uris(void **state) {
  (void)state;
  make_bin(100000, 16);
  refused(NULL, NULL, NULL, OW_E_TOO_LARGE, "/images/0: PNG image of 100000x16");
  make_bin(0, 16);
  refused(NULL, NULL, NULL, OW_E_INVAL, "/images/0:");
  make_bin(256, 128);
  refused("/images/0", "mimeType", "\"image/jpeg\"", OW_E_INVAL, "/images/0/mimeType:");
  bin[OFF_PNG + 1] = 'X';
  refused(NULL, NULL, NULL, OW_E_INVAL, "/images/0: image is not PNG");
  make_bin(256, 128);
  const char *bad[] = {"\"../secret.bin\"", "\"/etc/passwd\"", "\"http://example.org/a.bin\"", "\"file:///a.bin\"",
                       "\"a/%2e%2e/%2E%2E/b.bin\"", "\"a\\\\..\\\\b.bin\"", "\"./a.bin\"", "\"a//b.bin\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    refused("/buffers/0", "uri", bad[i], OW_E_INVAL, "/buffers/0/uri:");
  /* Relative and well-formed, but no package to resolve it in. */
  refused("/buffers/0", "uri", "\"tex/a.bin\"", OW_E_INVAL, "/buffers/0/uri: \"tex/a.bin\" is not in the package");
  char out[64];
  assert_true(ow_gltf_uri_ok("tex/a%20b.png", out, sizeof out));
  assert_string_equal(out, "tex/a b.png");
  /* A data: URI carrying the same bytes is accepted. */
  char b64[512];
  sodium_bin2base64(b64, sizeof b64, bin, sizeof bin, sodium_base64_VARIANT_ORIGINAL);
  char uri[600];
  snprintf(uri, sizeof uri, "\"data:application/octet-stream;base64,%s\"", b64);
  refused("/buffers/0", "uri", uri, 0, "");
  refused("/buffers/0", "uri", "\"data:application/octet-stream;base64,!!!!\"", OW_E_INVAL, "/buffers/0/uri:");
}

static void test_container(void **state) {
  (void)state;
  make_bin(256, 128);
  size_t n;
  uint8_t *glb = glb_of(base_json, bin, sizeof bin, &n);
  char err[512];
  /* Every truncation is refused, and none reads past the end (ASan build). */
  for (size_t k = 0; k < n; k += (k < 40 ? 1 : 37)) {
    uint8_t *cut = ow_malloc(k ? k : 1);
    memcpy(cut, glb, k);
    assert_int_not_equal(ow_gltf_validate(cut, k, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    ow_free(cut);
  }
  /* Lying lengths: the header's total, the JSON chunk's, the BIN chunk's. */
  uint32_t saved;
  memcpy(&saved, glb + 8, 4);
  glb[8] += 4;
  assert_int_equal(ow_gltf_validate(glb, n, NULL, NULL, NULL, NULL, err, sizeof err), OW_E_INVAL);
  assert_non_null(strstr(err, "GLB header declares"));
  memcpy(glb + 8, &saved, 4);
  glb[12] += 4;
  assert_int_equal(ow_gltf_validate(glb, n, NULL, NULL, NULL, NULL, err, sizeof err), OW_E_INVAL);
  glb[12] -= 4;
  glb[12] += 1;
  assert_int_equal(ow_gltf_validate(glb, n, NULL, NULL, NULL, NULL, err, sizeof err), OW_E_INVAL);
  assert_non_null(strstr(err, "not a multiple of 4"));
  glb[12] -= 1;
  glb[4] = 1;
  assert_int_equal(ow_gltf_validate(glb, n, NULL, NULL, NULL, NULL, err, sizeof err), OW_E_INVAL);
  assert_non_null(strstr(err, "version 1"));
  glb[4] = 2;
  assert_int_equal(ow_gltf_validate(glb, n, NULL, NULL, NULL, NULL, err, sizeof err), 0);
  /* The file size limit. */
  ow_gltf_limits lim;
  ow_gltf_limits_default(&lim);
  lim.max_file = n - 1;
  assert_int_equal(ow_gltf_validate(glb, n, &lim, NULL, NULL, NULL, err, sizeof err), OW_E_TOO_LARGE);
  ow_free(glb);
  /* A nesting bomb, refused from its bytes before it is parsed. */
  size_t depth = 100000;
  char *bomb = ow_malloc(depth * 2 + 64);
  size_t k = (size_t)sprintf(bomb, "{\"asset\":{\"version\":\"2.0\"},\"extras\":");
  for (size_t i = 0; i < depth; i++) bomb[k++] = '[';
  for (size_t i = 0; i < depth; i++) bomb[k++] = ']';
  bomb[k++] = '}';
  assert_int_equal(ow_gltf_validate((uint8_t *)bomb, k, NULL, NULL, NULL, NULL, err, sizeof err), OW_E_TOO_LARGE);
  assert_non_null(strstr(err, "JSON nested deeper"));
  ow_free(bomb);
  /* Brackets inside strings do not count. */
  const char *s = "{\"asset\":{\"version\":\"2.0\",\"generator\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"}}";
  assert_int_equal(ow_gltf_validate((const uint8_t *)s, strlen(s), NULL, NULL, NULL, NULL, err, sizeof err), 0);
  /* Plain JSON that is not glTF. */
  const char *t[] = {"[]", "{}", "{\"asset\":{\"version\":\"1.0\"}}", "{\"asset\":{}}", "not json",
                     "{\"asset\":{\"version\":\"2.0\"},\"nodes\":[]}"};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    assert_int_equal(ow_gltf_validate((const uint8_t *)t[i], strlen(t[i]), NULL, NULL, NULL, NULL, err, sizeof err),
                     OW_E_INVAL);
}

/* Accessor data against the accessor: declared min and max are the data's own bounds (floats
 * compared at single precision, integers exactly, normalized ones as stored), floats are finite,
 * sparse indices increase and stay below count, and the bounds include the substitutions. */
static void test_accessor_data(void **state) {
  (void)state;
  make_bin(256, 128);
  refused("/accessors/0", "max", "[1.00000001,1,0]", 0, ""); /* the same float once rounded */
  refused("/accessors/0", "min", "[0,0,0.0000000001]", OW_E_INVAL, "/accessors/0/min/2:"); /* a float, not 0 */
  refused("/accessors/0", "max", "[1,1,0]", 0, "");
  refused("/accessors/0", "max", "[1,2,0]", OW_E_INVAL, "/accessors/0/max/1: declares 2, the data's max is 1");
  refused("/accessors/0", "min", "[0,-1,0]", OW_E_INVAL, "/accessors/0/min/1:");
  refused("/accessors/1", "max", "[2]", 0, "");
  refused("/accessors/1", "max", "[3]", OW_E_INVAL, "/accessors/1/max/0: declares 3");
  /* Integers (the joints, unsigned bytes) exactly. */
  refused("/accessors/2", "min", "[0,0,0,0]", 0, "");
  refused("/accessors/2", "max", "[1,0,0,0]", 0, "");
  refused("/accessors/2", "max", "[1,0,0,1]", OW_E_INVAL, "/accessors/2/max/3: declares 1, the data's max is 0");
  put_f32(bin + OFF_POS + 4, 1.0f / 0.0f);
  refused(NULL, NULL, NULL, OW_E_INVAL, "/accessors/0: element 0 component 1 is not finite");
  make_bin(256, 128);
  /* A sparse accessor without a bufferView: zeros, with element 1 replaced by (the first
   * position) and element 2 by (1, 0, 0). Indices are the index buffer's 1 and 2. */
  const char *sparse = "{\"componentType\":5126,\"count\":3,\"type\":\"VEC3\",\"min\":[0,0,0],\"max\":[1,0,0],"
                       "\"sparse\":{\"count\":2,\"indices\":{\"bufferView\":1,\"byteOffset\":2,\"componentType\":5123},"
                       "\"values\":{\"bufferView\":0}}}";
  json_t *root = json_loads(base_json, 0, NULL);
  json_array_append_new(json_object_get(root, "accessors"), json_loads(sparse, 0, NULL));
  char *js = json_dumps(root, JSON_COMPACT);
  base_text = js;
  refused(NULL, NULL, NULL, 0, "");
  refused("/accessors/6", "max", "[1,1,0]", OW_E_INVAL, "/accessors/6/max/1: declares 1, the data's max is 0");
  refused("/accessors/6/sparse", "count", "3", OW_E_INVAL, "/accessors/6/sparse/indices/byteOffset:");
  bin[OFF_IND + 4] = 1; /* indices 1, 1: not increasing */
  refused(NULL, NULL, NULL, OW_E_INVAL, "/accessors/6/sparse/indices: index 1 (1) is not greater");
  bin[OFF_IND + 4] = 2;
  bin[OFF_IND + 2] = 7; /* index 7 of 3 elements (and, as a triangle index, out of range too) */
  refused(NULL, NULL, NULL, OW_E_INVAL, "/accessors/6/sparse/indices: index 0 is 7, the accessor has 3");
  base_text = NULL;
  free(js);
  json_decref(root);
  make_bin(256, 128);
}

/* A chain of 60,000 nodes (one tree, every node a child of the one before) ending in the skinned
 * mesh's joints: the tree checks are linear (they were quadratic, seconds of CPU per upload). */
/* Checks added after comparing with the Khronos validator (tests/assets/oracle): skinning data per
 * vertex, affine inverse bind matrices, texture coordinates for textured materials, a complete
 * PNG chunk stream, and property types. */
static void test_khronos_rules(void **state) {
  (void)state;
  make_bin(256, 128);
  put_f32(bin + OFF_WGT + 16, 0.99997f); /* vertex 1's weight: 3e-5 short of 1 */
  refused(NULL, NULL, NULL, OW_E_INVAL, "/meshes/0/primitives/0/attributes/WEIGHTS_0: weights of vertex 1 sum to");
  make_bin(256, 128);
  put_f32(bin + OFF_WGT + 16, 0.5f);
  put_f32(bin + OFF_WGT + 20, 0.5f); /* vertex 1: joints (1, 0) with weights (0.5, 0.5): fine */
  refused(NULL, NULL, NULL, 0, "");
  bin[OFF_JNT + 5] = 1; /* joints (1, 1): the same joint twice */
  refused(NULL, NULL, NULL, OW_E_INVAL, "/meshes/0/primitives/0/attributes/JOINTS_0: vertex 1 uses joint 1 twice");
  make_bin(256, 128);
  bin[OFF_JNT + 3] = 1; /* vertex 0: joint 1 with a zero weight */
  refused(NULL, NULL, NULL, OW_E_INVAL, "/meshes/0/primitives/0/attributes/JOINTS_0: vertex 0 uses joint 1 with a zero");
  make_bin(256, 128);
  put_f32(bin + OFF_IBM + 64 + 4 * 3, 1e-40f); /* matrix 1, element 3: not exactly 0 */
  refused(NULL, NULL, NULL, OW_E_INVAL, "/skins/0/inverseBindMatrices: matrix 1 element 3");
  make_bin(256, 128);
  refused("/meshes/0/primitives/0/attributes", "TEXCOORD_0", NULL, OW_E_INVAL,
          "/meshes/0/primitives/0/material: material 0's textures need TEXCOORD_0");
  refused("/materials/0/pbrMetallicRoughness/baseColorTexture", "texCoord", "1", OW_E_INVAL,
          "/meshes/0/primitives/0/material: material 0's textures need TEXCOORD_1");
  refused("/nodes/0", "weights", "[0.5]", OW_E_INVAL, "/nodes/0/weights: a node with weights must have a mesh");
  refused("/materials/0", "doubleSided", "-1", OW_E_INVAL, "/materials/0/doubleSided:");
  refused("/asset", "generator", "5123", OW_E_INVAL, "/asset/generator:");
  refused("/nodes/2", "name", "[]", OW_E_INVAL, "/nodes/2/name:");
  memset(bin + OFF_PNG + 33, 0, 12); /* no IEND: the stream is cut short */
  refused(NULL, NULL, NULL, OW_E_INVAL, "/images/0: image is not PNG");
  make_bin(256, 128);
}

static void test_long_chain(void **state) {
  (void)state;
  make_bin(256, 128);
  json_t *root = json_loads(base_json, 0, NULL);
  json_t *nodes = json_object_get(root, "nodes");
  size_t first = json_array_size(nodes), len = 60000;
  json_object_set_new(json_array_get(nodes, 3), "children", json_pack("[I]", (json_int_t)first));
  for (size_t i = 0; i < len; i++) {
    json_t *nd = json_object();
    if (i + 1 < len) json_object_set_new(nd, "children", json_pack("[I]", (json_int_t)(first + i + 1)));
    json_array_append_new(nodes, nd);
  }
  /* The last node of the chain becomes a third joint (without inverse bind matrices, which are
   * optional): the skeleton (node 2) is its ancestor, 60,000 levels up. */
  json_t *skin = json_array_get(json_object_get(root, "skins"), 0);
  json_array_append_new(json_object_get(skin, "joints"), json_integer((json_int_t)(first + len - 1)));
  json_object_del(skin, "inverseBindMatrices");
  char *js = json_dumps(root, JSON_COMPACT);
  base_text = js;
  char err[512];
  ow_gltf_figures f;
  assert_int_equal(run(NULL, NULL, NULL, err, &f), 0);
  assert_int_equal(f.bones, 3);
  assert_int_equal(f.nodes, first + len);
  refused("/skins/0", "skeleton", "1", OW_E_INVAL, "/skins/0/skeleton: node 1 is not an ancestor of joint 2");
  free(js);
  /* And a cycle at its far end (the last node's child is the chain's first) is found. */
  json_object_set_new(json_array_get(nodes, first + len - 1), "children", json_pack("[I]", (json_int_t)first));
  json_object_del(json_array_get(nodes, 3), "children");
  js = json_dumps(root, JSON_COMPACT);
  base_text = js;
  refused(NULL, NULL, NULL, OW_E_INVAL, "/nodes/");
  run(NULL, NULL, NULL, err, NULL);
  assert_non_null(strstr(err, "cycle"));
  base_text = NULL;
  free(js);
  json_decref(root);
}

static void test_rank(void **state) {
  (void)state;
  ow_gltf_figures f = {0};
  assert_int_equal(ow_gltf_rank_of(&f), OW_RANK_EXCELLENT);
  f.triangles = 50000;
  assert_int_equal(ow_gltf_rank_of(&f), OW_RANK_GOOD);
  f.bones = 300;
  assert_int_equal(ow_gltf_rank_of(&f), OW_RANK_POOR);
  f.texture_mem = 200ull << 20;
  assert_int_equal(ow_gltf_rank_of(&f), OW_RANK_VERY_POOR);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid),           cmocka_unit_test(test_indices),
      cmocka_unit_test(test_bounds),          cmocka_unit_test(test_tree_and_skins),
      cmocka_unit_test(test_images_and_uris), cmocka_unit_test(test_container),
      cmocka_unit_test(test_accessor_data),   cmocka_unit_test(test_long_chain),
      cmocka_unit_test(test_khronos_rules),
      cmocka_unit_test(test_rank),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
