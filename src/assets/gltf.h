/*
 * assets/gltf: the validator of uploaded glTF 2.0 assets (GLB containers and glTF JSON with their
 * buffers and images), written from the Khronos specification, and the complexity figures and rank
 * each accepted asset gets. Nothing is decoded beyond what the checks need: image sizes come from
 * their headers, buffers are only read where an index or weight must be checked, and every size a
 * file declares is held against the limits before anything is allocated for it.
 */
#ifndef OW_ASSETS_GLTF_H
#define OW_ASSETS_GLTF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard limits: a file past any of them is refused with OW_E_TOO_LARGE, whatever the rest says.
 * They bound the work and memory one upload can cost the server (docs/assets.md, "Limits"). */
typedef struct ow_gltf_limits {
  uint64_t max_file;        /* bytes of the GLB or .gltf file */
  uint64_t max_json;        /* bytes of its JSON */
  unsigned max_depth;       /* nesting of JSON arrays and objects */
  uint64_t max_items;       /* elements of any one top-level array (nodes, accessors, ...) */
  uint64_t max_buffer;      /* declared byteLength of one buffer */
  uint64_t max_triangles;   /* triangles of the whole asset, every mesh instance counted */
  uint64_t max_vertices;    /* vertices, likewise */
  uint32_t max_image_px;    /* width and height of one image */
  uint64_t max_texture_mem; /* estimated GPU texture memory, bytes */
} ow_gltf_limits;

/* The defaults (documented in docs/assets.md). */
void ow_gltf_limits_default(ow_gltf_limits *l);

/* The performance ranks, best first, as VRChat's (thresholds in docs/assets.md and gltf.c). */
typedef enum ow_gltf_rank {
  OW_RANK_EXCELLENT = 0,
  OW_RANK_GOOD,
  OW_RANK_MEDIUM,
  OW_RANK_POOR,
  OW_RANK_VERY_POOR
} ow_gltf_rank;

/* An accepted asset's complexity: what it costs each client that draws it. Mesh figures count
 * every instance of a mesh in the node tree (a mesh used by three nodes is drawn three times). */
typedef struct ow_gltf_figures {
  uint64_t triangles;
  uint64_t vertices;
  uint32_t materials;   /* material slots drawn (primitives with their own material) */
  uint32_t bones;       /* distinct joint nodes of all skins */
  uint32_t draw_calls;  /* primitives drawn */
  uint32_t meshes;      /* mesh instances in the node tree */
  uint32_t nodes;
  uint32_t images;
  uint64_t texture_mem; /* bytes: each image as RGBA8 (KTX2: its own levels) with a mip chain */
  ow_gltf_rank rank;
} ow_gltf_figures;

/* Finds a file of the package that a relative URI names (already checked: no scheme, no "..", not
 * absolute). Returns its bytes, valid until ow_gltf_validate returns, with *len set, or NULL if the
 * package has no such file. */
typedef const uint8_t *(*ow_gltf_resolve_fn)(void *ud, const char *path, size_t *len);

/* Validates one asset: p/n is a GLB file or glTF JSON. lim NULL: the defaults. resolve NULL: the
 * asset must be self-contained (GLB buffer, data: URIs). On success fills *fig (may be NULL) and
 * returns 0. Otherwise returns OW_E_INVAL (the asset breaks the specification or our rules) or
 * OW_E_TOO_LARGE (a limit), with err set to "JSON-pointer: problem" (e.g. "/accessors/3/count:
 * accessor overruns its bufferView (needs 1200 bytes, has 960)"; "" names the container). */
int ow_gltf_validate(const uint8_t *p, size_t n, const ow_gltf_limits *lim, ow_gltf_resolve_fn resolve,
                     void *ud, ow_gltf_figures *fig, char *err, size_t errlen);

/* "Excellent", "Good", "Medium", "Poor", "VeryPoor". */
const char *ow_gltf_rank_name(ow_gltf_rank r);

/* The rank of a set of figures: the worst of its categories (gltf.c's table). */
ow_gltf_rank ow_gltf_rank_of(const ow_gltf_figures *f);

/* Whether a relative URI is acceptable inside a package (no scheme, not absolute, no "." or ".."
 * segment, no backslash, no percent-encoded way around these). Writes the decoded path into out. */
bool ow_gltf_uri_ok(const char *uri, char *out, size_t outlen);

#endif
