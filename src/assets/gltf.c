/*
 * The glTF 2.0 validator (gltf.h), written from the Khronos specification (glTF 2.0, sections 3
 * "Concepts", 4 "GLB File Format Specification" and 5 "Properties Reference"). The checks run in
 * an order where each one may rely on the ones before: the container, the JSON's size and depth
 * (before jansson allocates a tree), the top-level arrays and their counts, buffers (declared
 * sizes against the limits, then their bytes), buffer views, accessors (bounds and alignment),
 * then everything that points at those: meshes, nodes, skins, scenes, materials, textures, images,
 * samplers, animations. The first problem found ends the validation with its JSON pointer.
 */
#include "assets/gltf.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

void ow_gltf_limits_default(ow_gltf_limits *l) {
  l->max_file = 64ull << 20;
  l->max_json = 8ull << 20;
  l->max_depth = 32;
  l->max_items = 65536;
  l->max_buffer = 64ull << 20;
  l->max_triangles = 2000000;
  l->max_vertices = 2000000;
  l->max_image_px = 8192;
  l->max_texture_mem = 512ull << 20;
}

/* ---- context and errors ---------------------------------------------------------------------- */

enum { GLB_MAGIC = 0x46546C67, CHUNK_JSON = 0x4E4F534A, CHUNK_BIN = 0x004E4942 };

typedef struct bufdata {
  const uint8_t *p; /* NULL: not loaded (never happens after check_buffers succeeds) */
  size_t n;
  uint8_t *owned; /* decoded data: URI */
} bufdata;

/* What check_accessors learns about each accessor, for the checks that use accessors. */
typedef struct accinfo {
  int comp;       /* componentType */
  int ncomp;      /* components per element: 1 (SCALAR) .. 16 (MAT4) */
  const char *type;
  bool normalized, sparse;
  uint64_t count;
  int64_t view;   /* -1: none (all zeros, or only sparse values) */
  uint64_t offset; /* byteOffset within the buffer, view's offset included */
  uint64_t stride;
  uint64_t elem;  /* bytes of one element, column padding included */
  json_t *min, *max; /* the declared bounds (NULL when absent), checked against the data */
  /* sparse: scount (index, value) pairs; the indices' bufferView, byte offset in the buffer and
   * componentType, and the values' bufferView and byte offset (tightly packed elements) */
  uint64_t scount, sidx_off, sval_off;
  int64_t sidx_view, sval_view;
  int sidx_comp;
} accinfo;

typedef struct ctx {
  const ow_gltf_limits *lim;
  ow_gltf_resolve_fn resolve;
  void *ud;
  char *err;
  size_t errlen;
  int rc;
  json_t *root;
  const uint8_t *bin;
  size_t binlen;
  bool glb, has_bin;
  /* The top-level arrays (NULL when absent) and their sizes. */
  json_t *a_buffers, *a_views, *a_accessors, *a_meshes, *a_nodes, *a_skins, *a_materials, *a_textures,
      *a_images, *a_samplers, *a_scenes, *a_animations, *a_cameras;
  size_t n_buffers, n_views, n_accessors, n_meshes, n_nodes, n_skins, n_materials, n_textures,
      n_images, n_samplers, n_scenes, n_animations, n_cameras;
  bufdata *bufs;
  uint64_t *view_off, *view_len, *view_stride, *view_buf;
  accinfo *acc;
  int64_t *parent; /* per node: its parent, -1 for a root */
  uint64_t *tin, *tout; /* per node: entry and exit numbers of the walk from the roots */
  size_t *tree;         /* per node: the root of its tree */
  uint8_t *seen;        /* get_index_list's scratch, all zero between lists */
  size_t seen_cap;
  ow_gltf_figures fig;
} ctx;

static int fail(ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, int code, const char *fmt, ...) {
  if (c->rc) return c->rc; /* the first problem is the one reported */
  c->rc = code;
  if (c->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}
#define BAD(c, ...) fail((c), OW_E_INVAL, __VA_ARGS__)
#define BIG(c, ...) fail((c), OW_E_TOO_LARGE, __VA_ARGS__)

/* Figures add counts that an accessor without data may declare up to 2^63, once per primitive and
 * per node: the sums saturate rather than wrap back under a limit. */
static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
static uint32_t sat_add32(uint32_t a, uint32_t b) { return a > UINT32_MAX - b ? UINT32_MAX : a + b; }

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- JSON helpers ------------------------------------------------------------------------------ */

/* A property that must be an object when present (required: must be present). */
static int get_obj(ctx *c, json_t *o, const char *key, bool required, const char *path, json_t **out) {
  json_t *v = json_object_get(o, key);
  *out = NULL;
  if (!v) return required ? BAD(c, "%s/%s: required property missing", path, key) : 0;
  if (!json_is_object(v)) return BAD(c, "%s/%s: must be an object", path, key);
  *out = v;
  return 0;
}

/* A non-negative integer property; *present says whether it was there. glTF integers are JSON
 * integers: 1.0 is a number, not an integer, for the Khronos validator too. */
static int get_uint(ctx *c, json_t *o, const char *key, bool required, uint64_t min, const char *path,
                    uint64_t *out, bool *present) {
  json_t *v = json_object_get(o, key);
  if (present) *present = v != NULL;
  if (!v) return required ? BAD(c, "%s/%s: required property missing", path, key) : 0;
  if (!json_is_integer(v)) return BAD(c, "%s/%s: must be an integer", path, key);
  json_int_t i = json_integer_value(v);
  if (i < 0 || (uint64_t)i < min)
    return BAD(c, "%s/%s: %lld is below the minimum %llu", path, key, (long long)i, (unsigned long long)min);
  *out = (uint64_t)i;
  return 0;
}

/* An index property into an array of n elements (named what). *idx = -1 when absent. */
static int get_index(ctx *c, json_t *o, const char *key, bool required, size_t n, const char *what,
                     const char *path, int64_t *idx) {
  uint64_t v = 0;
  bool present;
  *idx = -1;
  if (get_uint(c, o, key, required, 0, path, &v, &present)) return c->rc;
  if (!present) return 0;
  if (v >= n) return BAD(c, "%s/%s: index %llu out of range (%zu %s)", path, key, (unsigned long long)v, n, what);
  *idx = (int64_t)v;
  return 0;
}

static int get_num(ctx *c, json_t *v, const char *path, double *out) {
  if (!json_is_number(v)) return BAD(c, "%s: must be a number", path);
  *out = json_number_value(v);
  return 0;
}

/* An array of exactly n numbers (n 0: any non-empty length), into out (room for n). */
static int get_nums(ctx *c, json_t *o, const char *key, size_t n, const char *path, double *out, bool *present) {
  json_t *v = json_object_get(o, key);
  if (present) *present = v != NULL;
  if (!v) return 0;
  if (!json_is_array(v) || (n && json_array_size(v) != n) || !json_array_size(v)) {
    if (!n) return BAD(c, "%s/%s: must be a non-empty array of numbers", path, key);
    return BAD(c, "%s/%s: must be an array of %zu numbers", path, key, n);
  }
  for (size_t i = 0; i < json_array_size(v); i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s/%zu", path, key, i);
    double d = 0;
    if (get_num(c, json_array_get(v, i), p, &d)) return c->rc;
    if (out) out[i] = d;
  }
  return 0;
}

/* A top-level array: absent, or a non-empty array of objects no longer than max_items. */
static int top_array(ctx *c, const char *key, json_t **out, size_t *n) {
  json_t *v = json_object_get(c->root, key);
  *out = NULL;
  *n = 0;
  if (!v) return 0;
  if (!json_is_array(v)) return BAD(c, "/%s: must be an array", key);
  if (!json_array_size(v)) return BAD(c, "/%s: must not be empty", key);
  if (json_array_size(v) > c->lim->max_items)
    return BIG(c, "/%s: %zu elements, more than the limit %llu", key, json_array_size(v),
               (unsigned long long)c->lim->max_items);
  for (size_t i = 0; i < json_array_size(v); i++) {
    json_t *e = json_array_get(v, i), *name;
    if (!json_is_object(e)) return BAD(c, "/%s/%zu: must be an object", key, i);
    if ((name = json_object_get(e, "name")) && !json_is_string(name))
      return BAD(c, "/%s/%zu/name: must be a string", key, i);
  }
  *out = v;
  *n = json_array_size(v);
  return 0;
}

/* An array of unique indices into n elements (at least one when required). */
static int get_index_list(ctx *c, json_t *o, const char *key, bool required, size_t n, const char *what,
                          const char *path, json_t **out) {
  json_t *v = json_object_get(o, key);
  *out = NULL;
  if (!v) return required ? BAD(c, "%s/%s: required property missing", path, key) : 0;
  if (!json_is_array(v) || !json_array_size(v)) return BAD(c, "%s/%s: must be a non-empty array", path, key);
  /* One zeroed scratch array for every list (node children, scene nodes, joints): a fresh one
   * per list made 65536 nodes with a child each cost 4 GB of memset. The entries a list sets are
   * cleared after it. */
  if (c->seen_cap < n) {
    ow_free(c->seen);
    c->seen = ow_calloc(n, 1);
    c->seen_cap = n;
  }
  uint8_t *seen = c->seen;
  size_t i = 0;
  for (; i < json_array_size(v) && !c->rc; i++) {
    json_t *e = json_array_get(v, i);
    if (!json_is_integer(e) || json_integer_value(e) < 0)
      BAD(c, "%s/%s/%zu: must be a non-negative integer", path, key, i);
    else if ((uint64_t)json_integer_value(e) >= n)
      BAD(c, "%s/%s/%zu: index %lld out of range (%zu %s)", path, key, i, (long long)json_integer_value(e), n, what);
    else if (seen[json_integer_value(e)]++)
      BAD(c, "%s/%s/%zu: index %lld appears twice", path, key, i, (long long)json_integer_value(e));
  }
  /* Elements before i passed the checks (each is a valid index) or is the one that failed. */
  for (size_t k = 0; k < i; k++) {
    json_t *e = json_array_get(v, k);
    if (json_is_integer(e) && json_integer_value(e) >= 0 && (uint64_t)json_integer_value(e) < n)
      seen[json_integer_value(e)] = 0;
  }
  *out = v;
  return c->rc;
}

static bool str_is(json_t *v, const char *s) { return json_is_string(v) && !strcmp(json_string_value(v), s); }

/* ---- the container ----------------------------------------------------------------------------- */

/* Nesting depth of arrays and objects, counted on the bytes before jansson builds a tree, so a
 * nesting bomb is refused without allocating for it. Strings are skipped with their escapes. */
static int check_depth(ctx *c, const uint8_t *p, size_t n) {
  unsigned depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = p[i];
    if (in_str) {
      if (b == '\\') i++;
      else if (b == '"') in_str = false;
    } else if (b == '"') {
      in_str = true;
    } else if (b == '[' || b == '{') {
      if (++depth > c->lim->max_depth)
        return BIG(c, ": JSON nested deeper than the limit %u (at byte %zu)", c->lim->max_depth, i);
    } else if ((b == ']' || b == '}') && depth) {
      depth--;
    }
  }
  return 0;
}

static int parse_glb(ctx *c, const uint8_t *p, size_t n, const uint8_t **json, size_t *jlen) {
  if (n < 12) return BAD(c, ": GLB header truncated (%zu of 12 bytes)", n);
  uint32_t version = rd32(p + 4), length = rd32(p + 8);
  if (version != 2) return BAD(c, ": GLB version %u, only 2 is supported", version);
  if (length != n) return BAD(c, ": GLB header declares %u bytes, the file has %zu", length, n);
  if (n % 4) return BAD(c, ": GLB length %zu is not a multiple of 4", n);
  size_t pos = 12;
  unsigned chunk = 0;
  *json = NULL;
  while (pos < n) {
    if (n - pos < 8) return BAD(c, ": GLB chunk %u header truncated at byte %zu", chunk, pos);
    uint32_t clen = rd32(p + pos), ctype = rd32(p + pos + 4);
    if (clen % 4) return BAD(c, ": GLB chunk %u length %u is not a multiple of 4", chunk, clen);
    if (clen > n - pos - 8)
      return BAD(c, ": GLB chunk %u declares %u bytes, only %zu remain", chunk, clen, n - pos - 8);
    const uint8_t *data = p + pos + 8;
    if (chunk == 0) {
      if (ctype != CHUNK_JSON) return BAD(c, ": GLB first chunk is not JSON (type 0x%08x)", ctype);
      if (!clen) return BAD(c, ": GLB JSON chunk is empty");
      *json = data;
      *jlen = clen;
    } else if (ctype == CHUNK_JSON) {
      return BAD(c, ": GLB has a second JSON chunk (chunk %u)", chunk);
    } else if (ctype == CHUNK_BIN) {
      if (chunk != 1) return BAD(c, ": GLB BIN chunk must be the second chunk (it is chunk %u)", chunk);
      c->bin = data;
      c->binlen = clen;
      c->has_bin = true;
    } /* Chunks of other types are skipped, as the specification says. */
    pos += 8 + (size_t)clen;
    chunk++;
  }
  if (!*json) return BAD(c, ": GLB has no JSON chunk");
  return 0;
}

/* ---- URIs --------------------------------------------------------------------------------------- */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

bool ow_gltf_uri_ok(const char *uri, char *out, size_t outlen) {
  /* A scheme is letters, digits, '+', '-', '.' before the first ':'; any scheme is remote or local
   * outside the package (file:) as far as we are concerned. */
  size_t k = strcspn(uri, ":/?#");
  if (uri[k] == ':') return false;
  if (!uri[0] || uri[0] == '/' || strchr(uri, '\\') || strchr(uri, '?') || strchr(uri, '#')) return false;
  /* Percent-decode first, so that %2e%2e cannot stand for "..". */
  size_t o = 0;
  for (size_t i = 0; uri[i]; i++) {
    int ch = (unsigned char)uri[i];
    if (ch == '%') {
      int hi = hexval(uri[i + 1]), lo = hi < 0 ? -1 : hexval(uri[i + 2]);
      if (hi < 0 || lo < 0) return false;
      ch = hi << 4 | lo;
      i += 2;
    }
    if (ch < 0x20 || ch == 0x7f || ch == '\\' || o + 1 >= outlen) return false;
    out[o++] = (char)ch;
  }
  out[o] = 0;
  if (out[0] == '/') return false;
  for (const char *s = out; *s;) {
    size_t len = strcspn(s, "/");
    if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return false;
    s += len;
    if (*s == '/') s++;
  }
  return true;
}

/* Loads the bytes a URI names: a base64 data: URI (decoded into *owned) or a file of the package. */
static int load_uri(ctx *c, const char *uri, const char *path, const uint8_t **p, size_t *n, uint8_t **owned) {
  *owned = NULL;
  if (!strncmp(uri, "data:", 5)) {
    const char *comma = strchr(uri, ',');
    if (!comma) return BAD(c, "%s/uri: data URI without ','", path);
    size_t hlen = (size_t)(comma - uri);
    if (hlen < 12 || strncmp(comma - 7, ";base64", 7))
      return BAD(c, "%s/uri: data URI is not base64", path);
    const char *b64 = comma + 1;
    size_t blen = strlen(b64);
    size_t cap = blen / 4 * 3 + 3;
    uint8_t *buf = ow_malloc(cap ? cap : 1);
    size_t got = 0;
    if (sodium_base642bin(buf, cap, b64, blen, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL)) {
      ow_free(buf);
      return BAD(c, "%s/uri: data URI is not valid base64", path);
    }
    *owned = buf;
    *p = buf;
    *n = got;
    return 0;
  }
  char rel[4096];
  if (!ow_gltf_uri_ok(uri, rel, sizeof rel))
    return BAD(c, "%s/uri: \"%.200s\" is not a relative path inside the package (no scheme, no \"..\", "
               "not absolute)", path, uri);
  const uint8_t *d = c->resolve ? c->resolve(c->ud, rel, n) : NULL;
  if (!d) return BAD(c, "%s/uri: \"%.200s\" is not in the package", path, rel);
  *p = d;
  return 0;
}

/* ---- buffers, views, accessors ---------------------------------------------------------------- */

static int check_buffers(ctx *c) {
  c->bufs = ow_calloc(c->n_buffers ? c->n_buffers : 1, sizeof *c->bufs);
  /* Declared sizes first: nothing is loaded for a buffer whose declaration breaks a limit. */
  for (size_t i = 0; i < c->n_buffers; i++) {
    json_t *b = json_array_get(c->a_buffers, i);
    char path[64];
    snprintf(path, sizeof path, "/buffers/%zu", i);
    uint64_t len;
    if (get_uint(c, b, "byteLength", true, 1, path, &len, NULL)) return c->rc;
    if (len > c->lim->max_buffer)
      return BIG(c, "%s/byteLength: %llu bytes, more than the limit %llu", path, (unsigned long long)len,
                 (unsigned long long)c->lim->max_buffer);
  }
  for (size_t i = 0; i < c->n_buffers; i++) {
    json_t *b = json_array_get(c->a_buffers, i);
    char path[64];
    snprintf(path, sizeof path, "/buffers/%zu", i);
    uint64_t len = (uint64_t)json_integer_value(json_object_get(b, "byteLength"));
    json_t *uri = json_object_get(b, "uri");
    bufdata *d = &c->bufs[i];
    if (!uri) {
      if (i != 0 || !c->glb) return BAD(c, "%s: buffer without uri is only allowed as the first buffer of a GLB", path);
      if (!c->has_bin) return BAD(c, "%s: GLB has no BIN chunk for the buffer without uri", path);
      d->p = c->bin;
      d->n = c->binlen;
    } else {
      if (!json_is_string(uri)) return BAD(c, "%s/uri: must be a string", path);
      if (load_uri(c, json_string_value(uri), path, &d->p, &d->n, &d->owned)) return c->rc;
    }
    if (d->n < len)
      return BAD(c, "%s/byteLength: declares %llu bytes, the data has %zu", path, (unsigned long long)len, d->n);
    d->n = (size_t)len; /* only the declared bytes belong to the buffer */
  }
  return 0;
}

static int check_views(ctx *c) {
  size_t n = c->n_views ? c->n_views : 1;
  c->view_off = ow_calloc(n, sizeof *c->view_off);
  c->view_len = ow_calloc(n, sizeof *c->view_len);
  c->view_stride = ow_calloc(n, sizeof *c->view_stride);
  c->view_buf = ow_calloc(n, sizeof *c->view_buf);
  for (size_t i = 0; i < c->n_views; i++) {
    json_t *v = json_array_get(c->a_views, i);
    char path[64];
    snprintf(path, sizeof path, "/bufferViews/%zu", i);
    int64_t buf;
    uint64_t off = 0, len = 0, stride = 0, target = 0;
    bool has_stride, has_target;
    if (get_index(c, v, "buffer", true, c->n_buffers, "buffers", path, &buf) ||
        get_uint(c, v, "byteOffset", false, 0, path, &off, NULL) ||
        get_uint(c, v, "byteLength", true, 1, path, &len, NULL) ||
        get_uint(c, v, "byteStride", false, 4, path, &stride, &has_stride) ||
        get_uint(c, v, "target", false, 0, path, &target, &has_target))
      return c->rc;
    if (has_stride && (stride > 252 || stride % 4))
      return BAD(c, "%s/byteStride: %llu, must be a multiple of 4 from 4 to 252", path, (unsigned long long)stride);
    if (has_target && target != 34962 && target != 34963)
      return BAD(c, "%s/target: %llu, must be 34962 (ARRAY_BUFFER) or 34963 (ELEMENT_ARRAY_BUFFER)", path,
                 (unsigned long long)target);
    uint64_t blen = c->bufs[buf].n;
    if (off > blen || len > blen - off)
      return BAD(c, "%s/byteLength: view [%llu, +%llu) overruns buffer %lld (%llu bytes)", path,
                 (unsigned long long)off, (unsigned long long)len, (long long)buf, (unsigned long long)blen);
    c->view_off[i] = off;
    c->view_len[i] = len;
    c->view_stride[i] = stride;
    c->view_buf[i] = (uint64_t)buf;
  }
  return 0;
}

static int comp_size(int comp) {
  switch (comp) {
  case 5120: case 5121: return 1;
  case 5122: case 5123: return 2;
  case 5125: case 5126: return 4;
  default: return 0;
  }
}

static int type_comps(const char *t) {
  static const struct { const char *name; int n; } types[] = {
      {"SCALAR", 1}, {"VEC2", 2}, {"VEC3", 3}, {"VEC4", 4}, {"MAT2", 4}, {"MAT3", 9}, {"MAT4", 16}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (!strcmp(t, types[i].name)) return types[i].n;
  return 0;
}

/* Bytes of one element: matrix columns start on 4-byte boundaries (specification 3.6.2.4), which
 * pads MAT2 of 1-byte components and MAT3 of 1- and 2-byte ones. */
static uint64_t elem_size(int ncomp, int csize) {
  if (ncomp == 4 && csize == 1) return 8; /* MAT2 is 4 comps too: VEC4 is handled by the caller */
  if (ncomp == 9 && csize == 1) return 12;
  if (ncomp == 9 && csize == 2) return 24;
  return (uint64_t)ncomp * (uint64_t)csize;
}

/* Whether [off, off + bytes) fits in a view of len bytes, given 0 < count. */
static bool fits(uint64_t off, uint64_t stride, uint64_t count, uint64_t elem, uint64_t len) {
  if (off > len) return false;
  uint64_t room = len - off;
  if (elem > room) return false;
  return (count - 1) <= (room - elem) / stride;
}

static int check_accessors(ctx *c) {
  c->acc = ow_calloc(c->n_accessors ? c->n_accessors : 1, sizeof *c->acc);
  for (size_t i = 0; i < c->n_accessors; i++) {
    json_t *a = json_array_get(c->a_accessors, i);
    accinfo *ai = &c->acc[i];
    char path[64];
    snprintf(path, sizeof path, "/accessors/%zu", i);
    int64_t view;
    uint64_t off = 0, comp, count;
    bool has_off;
    if (get_index(c, a, "bufferView", false, c->n_views, "bufferViews", path, &view) ||
        get_uint(c, a, "byteOffset", false, 0, path, &off, &has_off) ||
        get_uint(c, a, "componentType", true, 0, path, &comp, NULL) ||
        get_uint(c, a, "count", true, 1, path, &count, NULL))
      return c->rc;
    int csize = comp_size((int)comp);
    if (!csize) return BAD(c, "%s/componentType: %llu is not a glTF component type", path, (unsigned long long)comp);
    json_t *type = json_object_get(a, "type");
    if (!type) return BAD(c, "%s/type: required property missing", path);
    if (!json_is_string(type) || !type_comps(json_string_value(type)))
      return BAD(c, "%s/type: must be SCALAR, VEC2, VEC3, VEC4, MAT2, MAT3 or MAT4", path);
    json_t *norm = json_object_get(a, "normalized");
    if (norm && !json_is_boolean(norm)) return BAD(c, "%s/normalized: must be a boolean", path);
    if (json_is_true(norm) && (comp == 5125 || comp == 5126))
      return BAD(c, "%s/normalized: only 8- and 16-bit integer components can be normalized", path);
    if (has_off && view < 0) return BAD(c, "%s/byteOffset: requires a bufferView", path);
    ai->comp = (int)comp;
    ai->type = json_string_value(type);
    ai->ncomp = type_comps(ai->type);
    ai->normalized = json_is_true(norm);
    ai->count = count;
    ai->view = view;
    bool is_mat = ai->type[0] == 'M';
    ai->elem = is_mat ? elem_size(ai->ncomp, csize) : (uint64_t)ai->ncomp * (uint64_t)csize;
    if (off % (uint64_t)csize)
      return BAD(c, "%s/byteOffset: %llu is not a multiple of the component size %d", path,
                 (unsigned long long)off, csize);
    double mm[16];
    bool has_min, has_max;
    if (get_nums(c, a, "min", (size_t)ai->ncomp, path, mm, &has_min) ||
        get_nums(c, a, "max", (size_t)ai->ncomp, path, mm, &has_max))
      return c->rc;
    ai->min = has_min ? json_object_get(a, "min") : NULL;
    ai->max = has_max ? json_object_get(a, "max") : NULL;
    if (view >= 0) {
      uint64_t stride = c->view_stride[view] ? c->view_stride[view] : ai->elem;
      if (c->view_stride[view] && c->view_stride[view] < ai->elem)
        return BAD(c, "%s: bufferView %lld's byteStride %llu is smaller than the element (%llu bytes)", path,
                   (long long)view, (unsigned long long)c->view_stride[view], (unsigned long long)ai->elem);
      if ((c->view_off[view] + off) % (uint64_t)csize)
        return BAD(c, "%s/byteOffset: offset in the buffer %llu is not a multiple of the component size %d", path,
                   (unsigned long long)(c->view_off[view] + off), csize);
      if (!fits(off, stride, count, ai->elem, c->view_len[view]))
        return BAD(c, "%s/count: %llu elements of %llu bytes (stride %llu) from byteOffset %llu overrun "
                   "bufferView %lld (%llu bytes)", path, (unsigned long long)count, (unsigned long long)ai->elem,
                   (unsigned long long)stride, (unsigned long long)off, (long long)view,
                   (unsigned long long)c->view_len[view]);
      ai->offset = c->view_off[view] + off;
      ai->stride = stride;
    }
    json_t *sparse = json_object_get(a, "sparse");
    if (sparse) {
      char sp[96];
      snprintf(sp, sizeof sp, "%s/sparse", path);
      if (!json_is_object(sparse)) return BAD(c, "%s: must be an object", sp);
      uint64_t scount;
      if (get_uint(c, sparse, "count", true, 1, sp, &scount, NULL)) return c->rc;
      if (scount > count)
        return BAD(c, "%s/count: %llu sparse elements, the accessor has %llu", sp, (unsigned long long)scount,
                   (unsigned long long)count);
      json_t *ind, *val;
      if (get_obj(c, sparse, "indices", true, sp, &ind) || get_obj(c, sparse, "values", true, sp, &val))
        return c->rc;
      char ip[128], vp[128];
      snprintf(ip, sizeof ip, "%s/indices", sp);
      snprintf(vp, sizeof vp, "%s/values", sp);
      int64_t iv, vv;
      uint64_t ioff = 0, voff = 0, icomp;
      if (get_index(c, ind, "bufferView", true, c->n_views, "bufferViews", ip, &iv) ||
          get_uint(c, ind, "byteOffset", false, 0, ip, &ioff, NULL) ||
          get_uint(c, ind, "componentType", true, 0, ip, &icomp, NULL) ||
          get_index(c, val, "bufferView", true, c->n_views, "bufferViews", vp, &vv) ||
          get_uint(c, val, "byteOffset", false, 0, vp, &voff, NULL))
        return c->rc;
      if (icomp != 5121 && icomp != 5123 && icomp != 5125)
        return BAD(c, "%s/componentType: sparse indices must be unsigned byte, short or int", ip);
      if (!fits(ioff, (uint64_t)comp_size((int)icomp), scount, (uint64_t)comp_size((int)icomp), c->view_len[iv]))
        return BAD(c, "%s/byteOffset: sparse indices overrun bufferView %lld", ip, (long long)iv);
      if (!fits(voff, ai->elem, scount, ai->elem, c->view_len[vv]))
        return BAD(c, "%s/byteOffset: sparse values overrun bufferView %lld", vp, (long long)vv);
      ai->sparse = true;
      ai->scount = scount;
      ai->sidx_view = iv;
      ai->sidx_off = c->view_off[iv] + ioff;
      ai->sidx_comp = (int)icomp;
      ai->sval_view = vv;
      ai->sval_off = c->view_off[vv] + voff;
    }
  }
  return 0;
}

/* Element i, component k of a dense accessor as a number (normalized values mapped to [0,1] or
 * [-1,1]). Only called for accessors with a bufferView, after check_accessors. */
static double acc_get(const ctx *c, const accinfo *a, uint64_t i, int k) {
  const uint8_t *base = c->bufs[c->view_buf[a->view]].p + a->offset + i * a->stride;
  int cs = comp_size(a->comp);
  int cols = a->ncomp == 4 && a->type[0] == 'M' ? 2 : a->ncomp == 9 ? 3 : a->ncomp == 16 ? 4 : 1;
  int rows = cols > 1 ? cols : 0;
  size_t off;
  if (rows) {
    size_t colbytes = ((size_t)rows * (size_t)cs + 3) & ~(size_t)3;
    off = (size_t)(k / rows) * colbytes + (size_t)(k % rows) * (size_t)cs;
  } else {
    off = (size_t)k * (size_t)cs;
  }
  const uint8_t *p = base + off;
  switch (a->comp) {
  case 5120: return a->normalized ? fmax((int8_t)p[0] / 127.0, -1.0) : (int8_t)p[0];
  case 5121: return a->normalized ? p[0] / 255.0 : p[0];
  case 5122: {
    int16_t v = (int16_t)(p[0] | p[1] << 8);
    return a->normalized ? fmax(v / 32767.0, -1.0) : v;
  }
  case 5123: {
    uint16_t v = (uint16_t)(p[0] | p[1] << 8);
    return a->normalized ? v / 65535.0 : v;
  }
  case 5125: return rd32(p);
  default: {
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
  }
  }
}

/* The data behind every accessor, read once: float components must be finite, and declared min
 * and max must be the data's own bounds (specification 3.6.2.5: the stored values, whatever
 * `normalized` says, after sparse substitution; a float bound is compared once rounded to single
 * precision). Sparse indices must be strictly increasing and below count. An accessor without a
 * bufferView starts as zeros, which count for its bounds unless every element is substituted;
 * that is why a huge count without data costs nothing here. */
static int check_accessor_data(ctx *c) {
  for (size_t i = 0; i < c->n_accessors; i++) {
    accinfo raw = c->acc[i]; /* the stored values: bounds ignore `normalized` */
    raw.normalized = false;
    const accinfo *a = &raw;
    double lo[16], hi[16];
    for (int k = 0; k < a->ncomp; k++) lo[k] = INFINITY, hi[k] = -INFINITY;
    /* The substituted elements, in index order. */
    accinfo ind = {.comp = a->sidx_comp, .ncomp = 1, .type = "SCALAR", .view = a->sidx_view,
                   .offset = a->sidx_off, .stride = (uint64_t)comp_size(a->sidx_comp)};
    accinfo val = *a;
    val.view = a->sval_view;
    val.offset = a->sval_off;
    val.stride = a->elem;
    uint64_t prev = 0;
    for (uint64_t s = 0; a->sparse && s < a->scount; s++) {
      uint64_t x = (uint64_t)acc_get(c, &ind, s, 0);
      if (x >= a->count)
        return BAD(c, "/accessors/%zu/sparse/indices: index %llu is %llu, the accessor has %llu elements", i,
                   (unsigned long long)s, (unsigned long long)x, (unsigned long long)a->count);
      if (s && x <= prev)
        return BAD(c, "/accessors/%zu/sparse/indices: index %llu (%llu) is not greater than the one before (%llu)", i,
                   (unsigned long long)s, (unsigned long long)x, (unsigned long long)prev);
      prev = x;
      for (int k = 0; k < a->ncomp; k++) {
        double v = acc_get(c, &val, s, k);
        if (!isfinite(v))
          return BAD(c, "/accessors/%zu/sparse/values: element %llu component %d is not finite", i,
                     (unsigned long long)s, k);
        lo[k] = fmin(lo[k], v), hi[k] = fmax(hi[k], v);
      }
    }
    if (a->view < 0) {
      if (a->scount < a->count)
        for (int k = 0; k < a->ncomp; k++) lo[k] = fmin(lo[k], 0), hi[k] = fmax(hi[k], 0);
    } else {
      uint64_t s = 0; /* the next substituted element */
      for (uint64_t e = 0; e < a->count; e++) {
        if (s < a->scount && (uint64_t)acc_get(c, &ind, s, 0) == e) {
          s++;
          continue;
        }
        for (int k = 0; k < a->ncomp; k++) {
          double v = acc_get(c, a, e, k);
          if (!isfinite(v))
            return BAD(c, "/accessors/%zu: element %llu component %d is not finite", i, (unsigned long long)e, k);
          lo[k] = fmin(lo[k], v), hi[k] = fmax(hi[k], v);
        }
      }
    }
    const struct { json_t *arr; const double *have; const char *name; } b[2] = {
        {a->min, lo, "min"}, {a->max, hi, "max"}};
    for (int m = 0; m < 2; m++)
      for (int k = 0; b[m].arr && k < a->ncomp; k++) {
        double d = json_number_value(json_array_get(b[m].arr, (size_t)k));
        bool same = a->comp == 5126 ? (float)d == (float)b[m].have[k] : d == b[m].have[k];
        if (!same)
          return BAD(c, "/accessors/%zu/%s/%d: declares %.9g, the data's %s is %.9g", i, b[m].name, k, d,
                     b[m].name, b[m].have[k]);
      }
  }
  return 0;
}

/* ---- meshes ---------------------------------------------------------------------------------------- */

typedef struct meshinfo {
  uint64_t triangles, vertices;
  uint32_t prims, materials;
  bool skinned; /* has JOINTS_0 and WEIGHTS_0 */
  uint32_t max_joint; /* largest JOINTS_n value + 1, for the skin's joint count */
} meshinfo;

static bool comp_is(int comp, const int *ok) {
  for (; *ok; ok++)
    if (*ok == comp) return true;
  return false;
}

/* The attribute semantics of the specification (3.7.2.1) and the formats each allows. */
static int check_attribute(ctx *c, const char *name, int64_t acc, const char *path) {
  const accinfo *a = &c->acc[acc];
  static const int f[] = {5126, 0}, uv[] = {5126, 5121, 5123, 0}, jt[] = {5121, 5123, 0};
  const char *want = NULL;
  bool ok = true;
  if (!strcmp(name, "POSITION") || !strcmp(name, "NORMAL")) {
    want = "VEC3 float";
    ok = a->ncomp == 3 && a->type[0] == 'V' && comp_is(a->comp, f);
  } else if (!strcmp(name, "TANGENT")) {
    want = "VEC4 float";
    ok = !strcmp(a->type, "VEC4") && comp_is(a->comp, f);
  } else if (!strncmp(name, "TEXCOORD_", 9)) {
    want = "VEC2 float, normalized unsigned byte or normalized unsigned short";
    ok = !strcmp(a->type, "VEC2") && comp_is(a->comp, uv) && (a->comp == 5126 || a->normalized);
  } else if (!strncmp(name, "COLOR_", 6)) {
    want = "VEC3 or VEC4 float, normalized unsigned byte or normalized unsigned short";
    ok = (!strcmp(a->type, "VEC3") || !strcmp(a->type, "VEC4")) && comp_is(a->comp, uv) &&
         (a->comp == 5126 || a->normalized);
  } else if (!strncmp(name, "JOINTS_", 7)) {
    want = "VEC4 unsigned byte or unsigned short";
    ok = !strcmp(a->type, "VEC4") && comp_is(a->comp, jt) && !a->normalized;
  } else if (!strncmp(name, "WEIGHTS_", 8)) {
    want = "VEC4 float, normalized unsigned byte or normalized unsigned short";
    ok = !strcmp(a->type, "VEC4") && comp_is(a->comp, uv) && (a->comp == 5126 || a->normalized);
  }
  if (!ok) return BAD(c, "%s/%s: accessor %lld must be %s", path, name, (long long)acc, want);
  if (a->type[0] == 'M') return BAD(c, "%s/%s: accessor %lld is a matrix", path, name, (long long)acc);
  return 0;
}

/* Skinning data per vertex (3.7.3.2), as the Khronos validator reads it: weights are non-negative
 * and sum to 1 within 2e-7 per non-zero weight, the sum taken in single precision (so 8-bit
 * weights must add up to 255 exactly); a joint with a non-zero weight appears once; a joint
 * with a zero weight is 0. Sparse or data-less accessors are not read. */
static int check_skinning(ctx *c, int64_t jacc, int64_t wacc, const char *path) {
  const accinfo *a = &c->acc[wacc], *j = &c->acc[jacc];
  if (a->view < 0 || a->sparse || j->view < 0 || j->sparse) return 0;
  for (uint64_t i = 0; i < a->count; i++) {
    float sum = 0;
    double tol = 0;
    double used[4];
    int nused = 0;
    for (int k = 0; k < 4; k++) {
      double w = acc_get(c, a, i, k), jt = acc_get(c, j, i, k);
      if (w < 0 || !isfinite(w))
        return BAD(c, "%s/WEIGHTS_0: vertex %llu has a negative or non-finite weight", path, (unsigned long long)i);
      if (w == 0) {
        if (jt != 0)
          return BAD(c, "%s/JOINTS_0: vertex %llu uses joint %g with a zero weight (it must be 0)", path,
                     (unsigned long long)i, jt);
        continue;
      }
      for (int u = 0; u < nused; u++)
        if (used[u] == jt)
          return BAD(c, "%s/JOINTS_0: vertex %llu uses joint %g twice", path, (unsigned long long)i, jt);
      used[nused++] = jt;
      sum += (float)w;
      tol += 2e-7;
    }
    if (fabs((double)sum - 1.0) > tol)
      return BAD(c, "%s/WEIGHTS_0: weights of vertex %llu sum to %.9g, not 1", path, (unsigned long long)i, (double)sum);
  }
  return 0;
}

static int check_meshes(ctx *c, meshinfo *mi) {
  for (size_t m = 0; m < c->n_meshes; m++) {
    json_t *mesh = json_array_get(c->a_meshes, m);
    char path[64];
    snprintf(path, sizeof path, "/meshes/%zu", m);
    json_t *prims = json_object_get(mesh, "primitives");
    if (!prims) return BAD(c, "%s/primitives: required property missing", path);
    if (!json_is_array(prims) || !json_array_size(prims))
      return BAD(c, "%s/primitives: must be a non-empty array", path);
    if (json_array_size(prims) > c->lim->max_items)
      return BIG(c, "%s/primitives: more than %llu primitives", path, (unsigned long long)c->lim->max_items);
    size_t ntargets = 0;
    for (size_t pi = 0; pi < json_array_size(prims); pi++) {
      json_t *p = json_array_get(prims, pi);
      char pp[96];
      snprintf(pp, sizeof pp, "%s/primitives/%zu", path, pi);
      if (!json_is_object(p)) return BAD(c, "%s: must be an object", pp);
      json_t *attrs;
      if (get_obj(c, p, "attributes", true, pp, &attrs)) return c->rc;
      char ap[128];
      snprintf(ap, sizeof ap, "%s/attributes", pp);
      uint64_t vcount = 0;
      bool have_count = false;
      int64_t pos = -1, joints = -1, weights = -1;
      const char *key;
      json_t *v;
      json_object_foreach(attrs, key, v) {
        char kp[200];
        snprintf(kp, sizeof kp, "%s/%s", ap, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0) return BAD(c, "%s: must be an accessor index", kp);
        if ((uint64_t)json_integer_value(v) >= c->n_accessors)
          return BAD(c, "%s: index %lld out of range (%zu accessors)", kp, (long long)json_integer_value(v),
                     c->n_accessors);
        int64_t acc = json_integer_value(v);
        if (check_attribute(c, key, acc, ap)) return c->rc;
        if (have_count && c->acc[acc].count != vcount)
          return BAD(c, "%s: accessor %lld has %llu elements, the other attributes %llu", kp, (long long)acc,
                     (unsigned long long)c->acc[acc].count, (unsigned long long)vcount);
        vcount = c->acc[acc].count;
        have_count = true;
        if (!strcmp(key, "POSITION")) pos = acc;
        if (!strcmp(key, "JOINTS_0")) joints = acc;
        if (!strcmp(key, "WEIGHTS_0")) weights = acc;
      }
      if ((joints < 0) != (weights < 0))
        return BAD(c, "%s: JOINTS_0 and WEIGHTS_0 must come together", ap);
      if (weights >= 0 && check_skinning(c, joints, weights, ap)) return c->rc;
      if (pos >= 0) {
        json_t *a = json_array_get(c->a_accessors, (size_t)pos);
        if (!json_object_get(a, "min") || !json_object_get(a, "max"))
          return BAD(c, "/accessors/%lld: POSITION accessor must have min and max", (long long)pos);
      }
      if (joints >= 0) {
        const accinfo *ja = &c->acc[joints];
        if (ja->view >= 0 && !ja->sparse)
          for (uint64_t i = 0; i < ja->count; i++)
            for (int k = 0; k < 4; k++) {
              uint32_t j = (uint32_t)acc_get(c, ja, i, k) + 1;
              if (j > mi[m].max_joint) mi[m].max_joint = j;
            }
        mi[m].skinned = true;
      }
      uint64_t mode = 4;
      int64_t ind, mat;
      if (get_uint(c, p, "mode", false, 0, pp, &mode, NULL) ||
          get_index(c, p, "indices", false, c->n_accessors, "accessors", pp, &ind) ||
          get_index(c, p, "material", false, c->n_materials, "materials", pp, &mat))
        return c->rc;
      if (mode > 6) return BAD(c, "%s/mode: %llu is not a primitive mode (0-6)", pp, (unsigned long long)mode);
      uint64_t nelem = vcount;
      if (ind >= 0) {
        const accinfo *ia = &c->acc[ind];
        if (strcmp(ia->type, "SCALAR") || (ia->comp != 5121 && ia->comp != 5123 && ia->comp != 5125) ||
            ia->normalized)
          return BAD(c, "%s/indices: accessor %lld must be SCALAR unsigned byte, short or int", pp, (long long)ind);
        if (ia->view >= 0 && c->view_stride[ia->view])
          return BAD(c, "%s/indices: accessor %lld's bufferView must not have a byteStride", pp, (long long)ind);
        nelem = ia->count;
        if (ia->view >= 0 && !ia->sparse) {
          uint64_t restart = ia->comp == 5121 ? 0xff : ia->comp == 5123 ? 0xffff : 0xffffffffu;
          for (uint64_t i = 0; i < ia->count; i++) {
            uint64_t x = (uint64_t)acc_get(c, ia, i, 0);
            if (x == restart)
              return BAD(c, "/accessors/%lld: index %llu is the primitive restart value %llu", (long long)ind,
                         (unsigned long long)i, (unsigned long long)x);
            if (x >= vcount)
              return BAD(c, "/accessors/%lld: index %llu is %llu, the primitive has %llu vertices", (long long)ind,
                         (unsigned long long)i, (unsigned long long)x, (unsigned long long)vcount);
          }
        }
      }
      /* Morph targets: every primitive of a mesh has as many (3.7.2.2), each with the vertex count. */
      json_t *targets = json_object_get(p, "targets");
      size_t nt = 0;
      if (targets) {
        if (!json_is_array(targets) || !json_array_size(targets))
          return BAD(c, "%s/targets: must be a non-empty array", pp);
        nt = json_array_size(targets);
        for (size_t t = 0; t < nt; t++) {
          json_t *tg = json_array_get(targets, t);
          char tp[160];
          snprintf(tp, sizeof tp, "%s/targets/%zu", pp, t);
          if (!json_is_object(tg)) return BAD(c, "%s: must be an object", tp);
          json_object_foreach(tg, key, v) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                (uint64_t)json_integer_value(v) >= c->n_accessors)
              return BAD(c, "%s/%s: must be an accessor index below %zu", tp, key, c->n_accessors);
            if (c->acc[json_integer_value(v)].count != vcount)
              return BAD(c, "%s/%s: morph target has another vertex count than the primitive", tp, key);
          }
        }
      }
      if (pi > 0 && nt != ntargets)
        return BAD(c, "%s/targets: every primitive of a mesh must have as many morph targets", pp);
      ntargets = nt;
      uint64_t tris = mode == 4 ? nelem / 3 : (mode == 5 || mode == 6) && nelem >= 3 ? nelem - 2 : 0;
      mi[m].triangles = sat_add(mi[m].triangles, tris);
      mi[m].vertices = sat_add(mi[m].vertices, vcount);
      mi[m].prims++;
      if (mat >= 0) mi[m].materials++;
    }
    json_t *w = json_object_get(mesh, "weights");
    if (w && get_nums(c, mesh, "weights", 0, path, NULL, NULL)) return c->rc;
  }
  return 0;
}

/* ---- nodes, scenes, skins ------------------------------------------------------------------------- */

static int check_nodes(ctx *c) {
  c->parent = ow_malloc((c->n_nodes ? c->n_nodes : 1) * sizeof *c->parent);
  for (size_t i = 0; i < c->n_nodes; i++) c->parent[i] = -1;
  for (size_t i = 0; i < c->n_nodes; i++) {
    json_t *nd = json_array_get(c->a_nodes, i);
    char path[64];
    snprintf(path, sizeof path, "/nodes/%zu", i);
    json_t *children;
    int64_t mesh, skin, cam;
    if (get_index_list(c, nd, "children", false, c->n_nodes, "nodes", path, &children) ||
        get_index(c, nd, "mesh", false, c->n_meshes, "meshes", path, &mesh) ||
        get_index(c, nd, "skin", false, c->n_skins, "skins", path, &skin) ||
        get_index(c, nd, "camera", false, c->n_cameras, "cameras", path, &cam))
      return c->rc;
    if (skin >= 0 && mesh < 0) return BAD(c, "%s/skin: a node with a skin must have a mesh", path);
    for (size_t k = 0; children && k < json_array_size(children); k++) {
      size_t ch = (size_t)json_integer_value(json_array_get(children, k));
      if (ch == i) return BAD(c, "%s/children/%zu: node is its own child", path, k);
      if (c->parent[ch] >= 0)
        return BAD(c, "%s/children/%zu: node %zu already has parent %lld", path, k, ch, (long long)c->parent[ch]);
      c->parent[ch] = (int64_t)i;
    }
    double m[16], q[4];
    bool has_m, has_t, has_r, has_s;
    if (get_nums(c, nd, "matrix", 16, path, m, &has_m) || get_nums(c, nd, "translation", 3, path, NULL, &has_t) ||
        get_nums(c, nd, "rotation", 4, path, q, &has_r) || get_nums(c, nd, "scale", 3, path, NULL, &has_s))
      return c->rc;
    if (has_m && (has_t || has_r || has_s))
      return BAD(c, "%s/matrix: a node has either a matrix or translation/rotation/scale", path);
    if (has_r) {
      double len = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
      if (fabs(len - 1.0) > 5e-5) return BAD(c, "%s/rotation: quaternion is not unit length (%g)", path, len);
    }
    if (json_object_get(nd, "weights") && mesh < 0) return BAD(c, "%s/weights: a node with weights must have a mesh", path);
    if (json_object_get(nd, "weights") && get_nums(c, nd, "weights", 0, path, NULL, NULL)) return c->rc;
  }
  /* Each node has at most one parent now, so the nodes form trees and, possibly, cycles of
   * parents that never reach a root. One depth-first walk from the roots (children lists built
   * from the parents, an explicit stack) numbers each node on entry and exit, which answers "is
   * A an ancestor of B" and "which root" in O(1) for the skins; a node it never reaches is on a
   * cycle or below one. Everything is O(nodes): walking up from each node was O(nodes * depth),
   * seconds of CPU for a 65536-node chain. */
  size_t n = c->n_nodes ? c->n_nodes : 1;
  int64_t *head = ow_malloc(n * sizeof *head), *next = ow_malloc(n * sizeof *next);
  size_t *stack = ow_malloc(n * sizeof *stack);
  c->tin = ow_calloc(n, sizeof *c->tin);
  c->tout = ow_calloc(n, sizeof *c->tout);
  c->tree = ow_malloc(n * sizeof *c->tree);
  for (size_t i = 0; i < c->n_nodes; i++) head[i] = -1, c->tree[i] = SIZE_MAX;
  for (size_t i = c->n_nodes; i-- > 0;)
    if (c->parent[i] >= 0) next[i] = head[c->parent[i]], head[c->parent[i]] = (int64_t)i;
  uint64_t clock = 0;
  for (size_t r = 0; r < c->n_nodes; r++) {
    if (c->parent[r] >= 0) continue;
    size_t sp = 0;
    stack[sp++] = r;
    c->tree[r] = r;
    c->tin[r] = ++clock;
    while (sp) {
      size_t x = stack[sp - 1];
      /* head[x] is the next child not yet entered; -1 once all are done. */
      int64_t ch = head[x];
      if (ch < 0) {
        c->tout[x] = ++clock;
        sp--;
        continue;
      }
      head[x] = next[ch];
      c->tree[ch] = r;
      c->tin[ch] = ++clock;
      stack[sp++] = (size_t)ch;
    }
  }
  ow_free(head);
  ow_free(next);
  ow_free(stack);
  for (size_t i = 0; i < c->n_nodes; i++) {
    if (c->tree[i] != SIZE_MAX) continue;
    /* Unreached: n steps up from it lead onto its cycle. */
    size_t x = i;
    for (size_t k = 0; k < c->n_nodes; k++) x = (size_t)c->parent[x];
    return BAD(c, "/nodes/%lld/children: the node hierarchy has a cycle through node %zu", (long long)c->parent[x], x);
  }
  return 0;
}

static size_t root_of(const ctx *c, size_t n) { return c->tree[n]; }

static bool is_ancestor(const ctx *c, size_t anc, size_t n) {
  return c->tin[anc] <= c->tin[n] && c->tout[n] <= c->tout[anc];
}

static int check_scenes(ctx *c) {
  for (size_t s = 0; s < c->n_scenes; s++) {
    char path[64];
    snprintf(path, sizeof path, "/scenes/%zu", s);
    json_t *nodes;
    if (get_index_list(c, json_array_get(c->a_scenes, s), "nodes", false, c->n_nodes, "nodes", path, &nodes))
      return c->rc;
    for (size_t k = 0; nodes && k < json_array_size(nodes); k++) {
      size_t nd = (size_t)json_integer_value(json_array_get(nodes, k));
      if (c->parent[nd] >= 0) return BAD(c, "%s/nodes/%zu: node %zu is not a root (its parent is %lld)", path, k, nd,
                                         (long long)c->parent[nd]);
    }
  }
  int64_t scene;
  return get_index(c, c->root, "scene", false, c->n_scenes, "scenes", "", &scene);
}

static int check_skins(ctx *c, uint8_t *is_joint) {
  for (size_t s = 0; s < c->n_skins; s++) {
    json_t *sk = json_array_get(c->a_skins, s);
    char path[64];
    snprintf(path, sizeof path, "/skins/%zu", s);
    json_t *joints;
    int64_t skel, ibm;
    if (get_index_list(c, sk, "joints", true, c->n_nodes, "nodes", path, &joints) ||
        get_index(c, sk, "skeleton", false, c->n_nodes, "nodes", path, &skel) ||
        get_index(c, sk, "inverseBindMatrices", false, c->n_accessors, "accessors", path, &ibm))
      return c->rc;
    size_t nj = json_array_size(joints);
    size_t first = (size_t)json_integer_value(json_array_get(joints, 0));
    size_t root = root_of(c, first);
    for (size_t k = 0; k < nj; k++) {
      size_t j = (size_t)json_integer_value(json_array_get(joints, k));
      if (root_of(c, j) != root)
        return BAD(c, "%s/joints/%zu: joint %zu is not in the same hierarchy as joint %zu (no common root)", path, k,
                   j, first);
      if (skel >= 0 && !is_ancestor(c, (size_t)skel, j))
        return BAD(c, "%s/skeleton: node %lld is not an ancestor of joint %zu", path, (long long)skel, j);
      is_joint[j] = 1;
    }
    if (ibm >= 0) {
      const accinfo *a = &c->acc[ibm];
      if (strcmp(a->type, "MAT4") || a->comp != 5126)
        return BAD(c, "%s/inverseBindMatrices: accessor %lld must be MAT4 float", path, (long long)ibm);
      if (a->count != nj)
        return BAD(c, "%s/inverseBindMatrices: accessor %lld has %llu matrices for %zu joints", path, (long long)ibm,
                   (unsigned long long)a->count, nj);
      /* An inverse bind matrix is affine: its last row is exactly (0, 0, 0, 1). */
      for (uint64_t m = 0; a->view >= 0 && !a->sparse && m < a->count; m++)
        for (int k = 3; k < 16; k += 4)
          if (acc_get(c, a, m, k) != (k == 15 ? 1.0 : 0.0))
            return BAD(c, "%s/inverseBindMatrices: matrix %llu element %d is %g; the last row must be (0, 0, 0, 1)",
                       path, (unsigned long long)m, k, acc_get(c, a, m, k));
    }
  }
  return 0;
}

/* ---- materials, textures, images, samplers -------------------------------------------------------- */

/* A textureInfo; *need becomes at least its texCoord + 1 (the TEXCOORD_n a primitive must have). */
static int check_texinfo(ctx *c, json_t *o, const char *key, const char *path, uint64_t *need) {
  json_t *ti;
  if (get_obj(c, o, key, false, path, &ti) || !ti) return c->rc;
  char tp[160];
  snprintf(tp, sizeof tp, "%s/%s", path, key);
  int64_t idx;
  uint64_t tc = 0;
  if (get_index(c, ti, "index", true, c->n_textures, "textures", tp, &idx) ||
      get_uint(c, ti, "texCoord", false, 0, tp, &tc, NULL))
    return c->rc;
  if (tc >= 8) return BAD(c, "%s/texCoord: %llu, more texture coordinate sets than a primitive can have", tp,
                          (unsigned long long)tc);
  if (tc + 1 > *need) *need = tc + 1;
  return 0;
}

/* Every primitive drawn with a textured material has the TEXCOORD_n its textures read. */
static int check_texcoords(ctx *c, const uint64_t *need) {
  for (size_t m = 0; m < c->n_meshes; m++) {
    json_t *prims = json_object_get(json_array_get(c->a_meshes, m), "primitives");
    for (size_t pi = 0; pi < json_array_size(prims); pi++) {
      json_t *p = json_array_get(prims, pi), *mat = json_object_get(p, "material");
      if (!mat || !need[json_integer_value(mat)]) continue;
      char sem[32];
      snprintf(sem, sizeof sem, "TEXCOORD_%llu", (unsigned long long)need[json_integer_value(mat)] - 1);
      if (!json_object_get(json_object_get(p, "attributes"), sem))
        return BAD(c, "/meshes/%zu/primitives/%zu/material: material %lld's textures need %s, the primitive has none", m,
                   pi, (long long)json_integer_value(mat), sem);
    }
  }
  return 0;
}

static int check_material(ctx *c, size_t i, uint64_t *need);

static int check_materials(ctx *c) {
  uint64_t *need = ow_calloc(c->n_materials ? c->n_materials : 1, sizeof *need);
  int rc = 0;
  for (size_t i = 0; i < c->n_materials && !rc; i++) rc = check_material(c, i, &need[i]);
  if (!rc) rc = check_texcoords(c, need);
  ow_free(need);
  return rc;
}

static int check_material(ctx *c, size_t i, uint64_t *need) {
  {
    json_t *m = json_array_get(c->a_materials, i);
    char path[64];
    snprintf(path, sizeof path, "/materials/%zu", i);
    json_t *pbr;
    if (get_obj(c, m, "pbrMetallicRoughness", false, path, &pbr)) return c->rc;
    if (pbr) {
      char pp[96];
      snprintf(pp, sizeof pp, "%s/pbrMetallicRoughness", path);
      double f[4];
      bool has;
      if (get_nums(c, pbr, "baseColorFactor", 4, pp, f, &has)) return c->rc;
      for (int k = 0; has && k < 4; k++)
        if (f[k] < 0 || f[k] > 1) return BAD(c, "%s/baseColorFactor/%d: %g is outside [0, 1]", pp, k, f[k]);
      static const char *const factors[] = {"metallicFactor", "roughnessFactor"};
      for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(pbr, factors[k]);
        if (!v) continue;
        char fp[160];
        snprintf(fp, sizeof fp, "%s/%s", pp, factors[k]);
        double d = 0;
        if (get_num(c, v, fp, &d)) return c->rc;
        if (d < 0 || d > 1) return BAD(c, "%s: %g is outside [0, 1]", fp, d);
      }
      if (check_texinfo(c, pbr, "baseColorTexture", pp, need) ||
          check_texinfo(c, pbr, "metallicRoughnessTexture", pp, need))
        return c->rc;
    }
    if (check_texinfo(c, m, "normalTexture", path, need) || check_texinfo(c, m, "occlusionTexture", path, need) ||
        check_texinfo(c, m, "emissiveTexture", path, need))
      return c->rc;
    json_t *ds = json_object_get(m, "doubleSided"), *ac = json_object_get(m, "alphaCutoff");
    if (ds && !json_is_boolean(ds)) return BAD(c, "%s/doubleSided: must be a boolean", path);
    if (ac && (!json_is_number(ac) || json_number_value(ac) < 0))
      return BAD(c, "%s/alphaCutoff: must be a number of at least 0", path);
    json_t *am = json_object_get(m, "alphaMode");
    if (am && !str_is(am, "OPAQUE") && !str_is(am, "MASK") && !str_is(am, "BLEND"))
      return BAD(c, "%s/alphaMode: must be OPAQUE, MASK or BLEND", path);
  }
  return 0;
}

static int check_textures(ctx *c) {
  for (size_t i = 0; i < c->n_textures; i++) {
    json_t *t = json_array_get(c->a_textures, i);
    char path[64];
    snprintf(path, sizeof path, "/textures/%zu", i);
    int64_t src, smp;
    if (get_index(c, t, "source", false, c->n_images, "images", path, &src) ||
        get_index(c, t, "sampler", false, c->n_samplers, "samplers", path, &smp))
      return c->rc;
  }
  for (size_t i = 0; i < c->n_samplers; i++) {
    json_t *s = json_array_get(c->a_samplers, i);
    char path[64];
    snprintf(path, sizeof path, "/samplers/%zu", i);
    uint64_t v;
    bool has;
    if (get_uint(c, s, "magFilter", false, 0, path, &v, &has)) return c->rc;
    if (has && v != 9728 && v != 9729) return BAD(c, "%s/magFilter: %llu is not NEAREST or LINEAR", path, (unsigned long long)v);
    if (get_uint(c, s, "minFilter", false, 0, path, &v, &has)) return c->rc;
    if (has && v != 9728 && v != 9729 && (v < 9984 || v > 9987))
      return BAD(c, "%s/minFilter: %llu is not a minification filter", path, (unsigned long long)v);
    static const char *const wraps[] = {"wrapS", "wrapT"};
    for (int k = 0; k < 2; k++) {
      if (get_uint(c, s, wraps[k], false, 0, path, &v, &has)) return c->rc;
      if (has && v != 33071 && v != 33648 && v != 10497)
        return BAD(c, "%s/%s: %llu is not a wrap mode", path, wraps[k], (unsigned long long)v);
    }
  }
  return 0;
}

/* Width and height from the image's header: PNG's IHDR, JPEG's SOFn segment, KTX2's pixelWidth and
 * pixelHeight. Returns 0 and the bytes per pixel of the texture it becomes, or -1 (unknown). */
static int image_size(const uint8_t *p, size_t n, uint32_t *w, uint32_t *h, double *bpp, const char **fmt) {
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  static const uint8_t ktx2[12] = {0xAB, 'K', 'T', 'X', ' ', '2', '0', 0xBB, '\r', '\n', 0x1A, '\n'};
  if (n >= 24 && !memcmp(p, png, 8)) {
    if (memcmp(p + 12, "IHDR", 4) || be32(p + 8) != 13) return -1;
    /* The chunks must reach IEND inside the data (a stream cut short is refused, as Khronos
     * does); their contents and CRCs are not read. */
    size_t i = 8;
    bool end = false;
    while (!end && n - i >= 12) {
      uint32_t len = be32(p + i);
      if (len > n - i - 12) return -1;
      end = !memcmp(p + i + 4, "IEND", 4);
      i += 12 + (size_t)len;
    }
    if (!end) return -1;
    *w = be32(p + 16);
    *h = be32(p + 20);
    *bpp = 4;
    *fmt = "PNG";
    return 0;
  }
  if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
    size_t i = 2;
    while (i + 4 <= n) {
      if (p[i] != 0xFF) return -1;
      uint8_t mk = p[i + 1];
      if (mk == 0xFF) { i++; continue; } /* fill bytes */
      if (mk == 0xD8 || mk == 0x01 || (mk >= 0xD0 && mk <= 0xD7)) { i += 2; continue; }
      size_t len = (size_t)p[i + 2] << 8 | p[i + 3];
      if (len < 2) return -1;
      bool sof = mk >= 0xC0 && mk <= 0xCF && mk != 0xC4 && mk != 0xC8 && mk != 0xCC;
      if (sof) {
        if (i + 9 > n || len < 7) return -1;
        *h = (uint32_t)p[i + 5] << 8 | p[i + 6];
        *w = (uint32_t)p[i + 7] << 8 | p[i + 8];
        *bpp = 4;
        *fmt = "JPEG";
        return 0;
      }
      if (mk == 0xD9 || mk == 0xDA) return -1; /* the image data before any frame header */
      i += 2 + len;
    }
    return -1;
  }
  if (n >= 48 && !memcmp(p, ktx2, 12)) {
    *w = rd32(p + 20);
    *h = rd32(p + 24);
    *bpp = 1; /* block-compressed (Basis/UASTC/ASTC 4x4, BC7) textures hold about a byte per pixel */
    *fmt = "KTX2";
    return 0;
  }
  return -1;
}

static int check_images(ctx *c) {
  for (size_t i = 0; i < c->n_images; i++) {
    json_t *im = json_array_get(c->a_images, i);
    char path[64];
    snprintf(path, sizeof path, "/images/%zu", i);
    json_t *uri = json_object_get(im, "uri"), *mime = json_object_get(im, "mimeType");
    int64_t view;
    if (get_index(c, im, "bufferView", false, c->n_views, "bufferViews", path, &view)) return c->rc;
    if (uri && view >= 0) return BAD(c, "%s: an image has either a uri or a bufferView", path);
    if (!uri && view < 0) return BAD(c, "%s: an image needs a uri or a bufferView", path);
    if (mime && !json_is_string(mime)) return BAD(c, "%s/mimeType: must be a string", path);
    if (view >= 0 && !mime) return BAD(c, "%s/mimeType: required with a bufferView", path);
    const uint8_t *p;
    size_t n;
    uint8_t *owned = NULL;
    if (view >= 0) {
      p = c->bufs[c->view_buf[view]].p + c->view_off[view];
      n = (size_t)c->view_len[view];
    } else {
      if (!json_is_string(uri)) return BAD(c, "%s/uri: must be a string", path);
      if (load_uri(c, json_string_value(uri), path, &p, &n, &owned)) return c->rc;
    }
    uint32_t w = 0, h = 0;
    double bpp = 4;
    const char *fmt = "";
    int r = image_size(p, n, &w, &h, &bpp, &fmt);
    ow_free(owned);
    if (r < 0) return BAD(c, "%s: image is not PNG, JPEG or KTX2, or its header is cut short", path);
    if (!w || !h) return BAD(c, "%s: %s image of %ux%u pixels", path, fmt, w, h);
    if (w > c->lim->max_image_px || h > c->lim->max_image_px)
      return BIG(c, "%s: %s image of %ux%u pixels, the limit is %u per side", path, fmt, w, h, c->lim->max_image_px);
    if (mime && ((!strcmp(fmt, "PNG") && !str_is(mime, "image/png")) ||
                 (!strcmp(fmt, "JPEG") && !str_is(mime, "image/jpeg")) ||
                 (!strcmp(fmt, "KTX2") && !str_is(mime, "image/ktx2"))))
      return BAD(c, "%s/mimeType: \"%s\" but the data is %s", path, json_string_value(mime), fmt);
    /* A full mip chain adds a third. */
    c->fig.texture_mem += (uint64_t)((double)w * h * bpp * 4.0 / 3.0);
    c->fig.images++;
    if (c->fig.texture_mem > c->lim->max_texture_mem)
      return BIG(c, "%s: texture memory reaches %llu bytes, the limit is %llu", path,
                 (unsigned long long)c->fig.texture_mem, (unsigned long long)c->lim->max_texture_mem);
  }
  return 0;
}

static int check_animations(ctx *c) {
  for (size_t i = 0; i < c->n_animations; i++) {
    json_t *an = json_array_get(c->a_animations, i);
    char path[64];
    snprintf(path, sizeof path, "/animations/%zu", i);
    json_t *samplers = json_object_get(an, "samplers"), *channels = json_object_get(an, "channels");
    if (!json_is_array(samplers) || !json_array_size(samplers))
      return BAD(c, "%s/samplers: required non-empty array", path);
    if (!json_is_array(channels) || !json_array_size(channels))
      return BAD(c, "%s/channels: required non-empty array", path);
    for (size_t k = 0; k < json_array_size(samplers); k++) {
      json_t *s = json_array_get(samplers, k);
      char sp[96];
      snprintf(sp, sizeof sp, "%s/samplers/%zu", path, k);
      if (!json_is_object(s)) return BAD(c, "%s: must be an object", sp);
      int64_t in, out;
      if (get_index(c, s, "input", true, c->n_accessors, "accessors", sp, &in) ||
          get_index(c, s, "output", true, c->n_accessors, "accessors", sp, &out))
        return c->rc;
      json_t *ip = json_object_get(s, "interpolation");
      if (ip && !str_is(ip, "LINEAR") && !str_is(ip, "STEP") && !str_is(ip, "CUBICSPLINE"))
        return BAD(c, "%s/interpolation: must be LINEAR, STEP or CUBICSPLINE", sp);
      if (strcmp(c->acc[in].type, "SCALAR") || c->acc[in].comp != 5126)
        return BAD(c, "%s/input: accessor %lld must be SCALAR float", sp, (long long)in);
      if (!c->acc[in].min || !c->acc[in].max)
        return BAD(c, "%s/input: accessor %lld must have min and max (the animation's time range)", sp, (long long)in);
    }
    for (size_t k = 0; k < json_array_size(channels); k++) {
      json_t *ch = json_array_get(channels, k);
      char cp[96];
      snprintf(cp, sizeof cp, "%s/channels/%zu", path, k);
      if (!json_is_object(ch)) return BAD(c, "%s: must be an object", cp);
      int64_t smp, node;
      json_t *tg;
      if (get_index(c, ch, "sampler", true, json_array_size(samplers), "samplers", cp, &smp) ||
          get_obj(c, ch, "target", true, cp, &tg))
        return c->rc;
      char tp[128];
      snprintf(tp, sizeof tp, "%s/target", cp);
      if (get_index(c, tg, "node", false, c->n_nodes, "nodes", tp, &node)) return c->rc;
      json_t *pth = json_object_get(tg, "path");
      if (!pth) return BAD(c, "%s/path: required property missing", tp);
      if (!str_is(pth, "translation") && !str_is(pth, "rotation") && !str_is(pth, "scale") && !str_is(pth, "weights"))
        return BAD(c, "%s/path: must be translation, rotation, scale or weights", tp);
      /* Rotation keys are unit quaternions (float ones; normalized integers are by construction
       * close to it and are not checked here). */
      const accinfo *out = &c->acc[json_integer_value(json_object_get(json_array_get(samplers, (size_t)smp), "output"))];
      if (str_is(pth, "rotation") && out->comp == 5126 && out->ncomp == 4 && out->view >= 0 && !out->sparse)
        for (uint64_t e = 0; e < out->count; e++) {
          double q[4], len2 = 0;
          for (int x = 0; x < 4; x++) q[x] = acc_get(c, out, e, x), len2 += q[x] * q[x];
          if (fabs(sqrt(len2) - 1.0) > 5e-5)
            return BAD(c, "%s/sampler: rotation key %llu of its output is not a unit quaternion (length %g)", cp,
                       (unsigned long long)e, sqrt(len2));
        }
    }
  }
  return 0;
}

static int check_cameras(ctx *c) {
  for (size_t i = 0; i < c->n_cameras; i++) {
    json_t *cam = json_array_get(c->a_cameras, i);
    char path[64];
    snprintf(path, sizeof path, "/cameras/%zu", i);
    json_t *type = json_object_get(cam, "type");
    if (!type) return BAD(c, "%s/type: required property missing", path);
    if (!str_is(type, "perspective") && !str_is(type, "orthographic"))
      return BAD(c, "%s/type: must be perspective or orthographic", path);
    json_t *o;
    if (get_obj(c, cam, json_string_value(type), true, path, &o)) return c->rc;
  }
  return 0;
}

/* ---- figures and rank -------------------------------------------------------------------------------- */

/* Upper bounds of Excellent, Good, Medium and Poor; past the last, VeryPoor. Modelled on VRChat's
 * PC avatar ranks (docs/assets.md gives the reasons for each number). */
static const struct {
  const char *what;
  uint64_t max[4];
} rank_table[] = {
    {"triangles", {32000, 70000, 100000, 150000}},
    {"vertices", {40000, 80000, 120000, 200000}},
    {"materials", {4, 8, 16, 32}},
    {"bones", {75, 150, 256, 400}},
    {"draw_calls", {4, 8, 16, 32}},
    {"texture_mem", {40ull << 20, 75ull << 20, 110ull << 20, 150ull << 20}},
};

ow_gltf_rank ow_gltf_rank_of(const ow_gltf_figures *f) {
  uint64_t v[] = {f->triangles, f->vertices, f->materials, f->bones, f->draw_calls, f->texture_mem};
  ow_gltf_rank worst = OW_RANK_EXCELLENT;
  for (size_t i = 0; i < sizeof rank_table / sizeof rank_table[0]; i++) {
    ow_gltf_rank r = OW_RANK_VERY_POOR;
    for (int k = 0; k < 4; k++)
      if (v[i] <= rank_table[i].max[k]) {
        r = (ow_gltf_rank)k;
        break;
      }
    if (r > worst) worst = r;
  }
  return worst;
}

const char *ow_gltf_rank_name(ow_gltf_rank r) {
  static const char *const names[] = {"Excellent", "Good", "Medium", "Poor", "VeryPoor"};
  return (unsigned)r < 5 ? names[r] : "?";
}

static int add_figures(ctx *c, const meshinfo *mi, const uint8_t *is_joint) {
  /* Meshes drawn: every node with a mesh; an asset without a node tree draws each mesh once. */
  bool any = false;
  for (size_t i = 0; i < c->n_nodes; i++) {
    json_t *m = json_object_get(json_array_get(c->a_nodes, i), "mesh");
    if (!m) continue;
    const meshinfo *x = &mi[json_integer_value(m)];
    any = true;
    c->fig.triangles = sat_add(c->fig.triangles, x->triangles);
    c->fig.vertices = sat_add(c->fig.vertices, x->vertices);
    c->fig.draw_calls = sat_add32(c->fig.draw_calls, x->prims);
    c->fig.materials = sat_add32(c->fig.materials, x->materials);
    c->fig.meshes++;
    json_t *sk = json_object_get(json_array_get(c->a_nodes, i), "skin");
    if (sk && x->max_joint) {
      size_t nj = json_array_size(json_object_get(json_array_get(c->a_skins, json_integer_value(sk)), "joints"));
      if (x->max_joint > nj)
        return BAD(c, "/nodes/%zu/skin: mesh %lld uses joint %u, skin %lld has %zu joints", i,
                   (long long)json_integer_value(m), x->max_joint - 1, (long long)json_integer_value(sk), nj);
    }
  }
  for (size_t m = 0; !any && m < c->n_meshes; m++) {
    c->fig.triangles = sat_add(c->fig.triangles, mi[m].triangles);
    c->fig.vertices = sat_add(c->fig.vertices, mi[m].vertices);
    c->fig.draw_calls = sat_add32(c->fig.draw_calls, mi[m].prims);
    c->fig.materials = sat_add32(c->fig.materials, mi[m].materials);
    c->fig.meshes++;
  }
  for (size_t i = 0; i < c->n_nodes; i++) c->fig.bones += is_joint[i];
  c->fig.nodes = (uint32_t)c->n_nodes;
  if (c->fig.triangles > c->lim->max_triangles)
    return BIG(c, "/meshes: %llu triangles drawn, the limit is %llu", (unsigned long long)c->fig.triangles,
               (unsigned long long)c->lim->max_triangles);
  if (c->fig.vertices > c->lim->max_vertices)
    return BIG(c, "/meshes: %llu vertices drawn, the limit is %llu", (unsigned long long)c->fig.vertices,
               (unsigned long long)c->lim->max_vertices);
  c->fig.rank = ow_gltf_rank_of(&c->fig);
  return 0;
}

/* ---- the whole ------------------------------------------------------------------------------------- */

static int check_asset(ctx *c) {
  json_t *asset;
  if (get_obj(c, c->root, "asset", true, "", &asset)) return c->rc;
  json_t *ver = json_object_get(asset, "version");
  if (!ver) return BAD(c, "/asset/version: required property missing");
  if (!json_is_string(ver)) return BAD(c, "/asset/version: must be a string");
  const char *v = json_string_value(ver);
  unsigned major, minor;
  char tail;
  if (sscanf(v, "%u.%u%c", &major, &minor, &tail) != 2) return BAD(c, "/asset/version: \"%.40s\" is not MAJOR.MINOR", v);
  if (major != 2) return BAD(c, "/asset/version: glTF %.40s, only 2.x is supported", v);
  static const char *const strs[] = {"generator", "copyright", "minVersion"};
  for (int i = 0; i < 3; i++) {
    json_t *x = json_object_get(asset, strs[i]);
    if (x && !json_is_string(x)) return BAD(c, "/asset/%s: must be a string", strs[i]);
  }
  json_t *used = json_object_get(c->root, "extensionsUsed"), *req = json_object_get(c->root, "extensionsRequired");
  if (used && (!json_is_array(used) || !json_array_size(used))) return BAD(c, "/extensionsUsed: must be a non-empty array");
  if (req && (!json_is_array(req) || !json_array_size(req))) return BAD(c, "/extensionsRequired: must be a non-empty array");
  for (size_t i = 0; used && i < json_array_size(used); i++) {
    if (!json_is_string(json_array_get(used, i))) return BAD(c, "/extensionsUsed/%zu: must be a string", i);
    for (size_t k = 0; k < i; k++)
      if (json_equal(json_array_get(used, i), json_array_get(used, k)))
        return BAD(c, "/extensionsUsed/%zu: \"%s\" appears twice", i, json_string_value(json_array_get(used, i)));
  }
  for (size_t i = 0; req && i < json_array_size(req); i++) {
    json_t *e = json_array_get(req, i);
    if (!json_is_string(e)) return BAD(c, "/extensionsRequired/%zu: must be a string", i);
    bool found = false;
    for (size_t k = 0; used && k < json_array_size(used); k++) found |= json_equal(e, json_array_get(used, k));
    if (!found) return BAD(c, "/extensionsRequired/%zu: \"%s\" is not in extensionsUsed", i, json_string_value(e));
  }
  return 0;
}

int ow_gltf_validate(const uint8_t *p, size_t n, const ow_gltf_limits *lim, ow_gltf_resolve_fn resolve,
                     void *ud, ow_gltf_figures *fig, char *err, size_t errlen) {
  ow_gltf_limits deflim;
  if (!lim) {
    ow_gltf_limits_default(&deflim);
    lim = &deflim;
  }
  ctx cx = {.lim = lim, .resolve = resolve, .ud = ud, .err = err, .errlen = errlen};
  ctx *c = &cx;
  if (errlen) err[0] = 0;
  meshinfo *mi = NULL;
  uint8_t *is_joint = NULL;
  const uint8_t *json = p;
  size_t jlen = n;
  if (n > lim->max_file) {
    BIG(c, ": file of %zu bytes, the limit is %llu", n, (unsigned long long)lim->max_file);
    goto out;
  }
  if (n >= 4 && rd32(p) == GLB_MAGIC) {
    c->glb = true;
    if (parse_glb(c, p, n, &json, &jlen)) goto out;
  }
  if (jlen > lim->max_json) {
    BIG(c, ": JSON of %zu bytes, the limit is %llu", jlen, (unsigned long long)lim->max_json);
    goto out;
  }
  if (check_depth(c, json, jlen)) goto out;
  json_error_t je;
  c->root = json_loadb((const char *)json, jlen, 0, &je);
  if (!c->root) {
    BAD(c, ": JSON does not parse: %s (line %d, column %d)", je.text, je.line, je.column);
    goto out;
  }
  if (!json_is_object(c->root)) {
    BAD(c, ": the JSON is not an object");
    goto out;
  }
  if (check_asset(c) || top_array(c, "buffers", &c->a_buffers, &c->n_buffers) ||
      top_array(c, "bufferViews", &c->a_views, &c->n_views) ||
      top_array(c, "accessors", &c->a_accessors, &c->n_accessors) ||
      top_array(c, "meshes", &c->a_meshes, &c->n_meshes) || top_array(c, "nodes", &c->a_nodes, &c->n_nodes) ||
      top_array(c, "skins", &c->a_skins, &c->n_skins) ||
      top_array(c, "materials", &c->a_materials, &c->n_materials) ||
      top_array(c, "textures", &c->a_textures, &c->n_textures) ||
      top_array(c, "images", &c->a_images, &c->n_images) ||
      top_array(c, "samplers", &c->a_samplers, &c->n_samplers) ||
      top_array(c, "scenes", &c->a_scenes, &c->n_scenes) ||
      top_array(c, "animations", &c->a_animations, &c->n_animations) ||
      top_array(c, "cameras", &c->a_cameras, &c->n_cameras))
    goto out;
  mi = ow_calloc(c->n_meshes ? c->n_meshes : 1, sizeof *mi);
  is_joint = ow_calloc(c->n_nodes ? c->n_nodes : 1, 1);
  if (check_buffers(c) || check_views(c) || check_accessors(c) || check_accessor_data(c) || check_meshes(c, mi) || check_nodes(c) ||
      check_scenes(c) || check_skins(c, is_joint) || check_materials(c) || check_textures(c) || check_images(c) ||
      check_animations(c) || check_cameras(c) || add_figures(c, mi, is_joint))
    goto out;
  if (fig) *fig = c->fig;
out:
  if (c->bufs)
    for (size_t i = 0; i < c->n_buffers; i++) ow_free(c->bufs[i].owned);
  ow_free(c->bufs);
  ow_free(c->view_off);
  ow_free(c->view_len);
  ow_free(c->view_stride);
  ow_free(c->view_buf);
  ow_free(c->acc);
  ow_free(c->parent);
  ow_free(c->tin);
  ow_free(c->tout);
  ow_free(c->tree);
  ow_free(c->seen);
  ow_free(mi);
  ow_free(is_joint);
  json_decref(c->root);
  return c->rc;
}
