/*
 * fuzz target gltf: the validator of uploaded assets (src/assets/gltf.h), as the upload route uses
 * it, on the whole input as a GLB or a glTF JSON file. URIs are resolved in a package where every
 * path ending in ".png" is a small PNG and every other path is the input itself, so that buffers
 * named by URI hold bytes the fuzzer controls. Properties: the verdict is 0, OW_E_INVAL or
 * OW_E_TOO_LARGE; a refusal names its problem as "JSON-pointer: text"; an accepted asset's figures
 * are within the limits and its rank is that of its figures; a second run gives the same verdict
 * and, into an error buffer of 6 bytes, the same text cut short (never a write past it).
 */
#include "fuzz.h"

#include <string.h>

#include "assets/gltf.h"

typedef struct pkg {
  const uint8_t *self;
  size_t n;
} pkg;

/* An 8x8 RGBA PNG's signature and IHDR: all the validator reads of an image. */
static const uint8_t png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                0,    0,   0,   8,   0,    0,    0,    8,    8, 6, 0, 0,  0,   0,   0,   0, 0};

static const uint8_t *resolve(void *ud, const char *path, size_t *len) {
  pkg *p = ud;
  size_t l = strlen(path);
  if (l >= 4 && !strcmp(path + l - 4, ".png")) {
    *len = sizeof png;
    return png;
  }
  *len = p->n;
  return p->self;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ow_gltf_limits lim;
  ow_gltf_limits_default(&lim);
  pkg p = {data, size};
  ow_gltf_figures fig;
  memset(&fig, 0xa5, sizeof fig);
  char err[512];
  int rc = ow_gltf_validate(data, size, &lim, resolve, &p, &fig, err, sizeof err);
  FUZZ_CHECK(rc == 0 || rc == OW_E_INVAL || rc == OW_E_TOO_LARGE);
  FUZZ_CHECK(memchr(err, 0, sizeof err) != NULL);
  if (rc == 0) {
    FUZZ_CHECK(err[0] == 0);
    FUZZ_CHECK(fig.triangles <= lim.max_triangles && fig.vertices <= lim.max_vertices);
    FUZZ_CHECK(fig.texture_mem <= lim.max_texture_mem);
    FUZZ_CHECK(fig.rank == ow_gltf_rank_of(&fig));
    FUZZ_CHECK(fig.draw_calls >= fig.materials);
  } else {
    FUZZ_CHECK(strchr(err, ':') != NULL);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "refused %s: %s\n", ow_err_name(rc), err);
  }
  char small[6];
  memset(small, 'x', sizeof small);
  int rc2 = ow_gltf_validate(data, size, &lim, resolve, &p, NULL, small, sizeof small);
  FUZZ_CHECK(rc2 == rc);
  FUZZ_CHECK(memchr(small, 0, sizeof small) != NULL);
  FUZZ_CHECK(!strncmp(small, err, sizeof small - 1));
  return 0;
}
