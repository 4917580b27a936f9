/*
 * otherworld-validate-asset: runs the asset validator (src/assets/gltf.h) on files, as the upload
 * path does, for the oracle test and by hand. A .gltf file's relative URIs resolve inside the
 * file's own directory, which stands for the package. Prints one line per file:
 *   FILE ok rank=Good triangles=... vertices=... materials=... bones=... draw_calls=... texture_mem=...
 *   FILE refused OW_E_INVAL /accessors/3/count: ...
 * Exit status: 0 if every file was accepted, 1 if any was refused, 2 on a usage or I/O error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assets/gltf.h"
#include "core/core.h"

typedef struct pkg {
  char dir[4096];
  uint8_t *files[64];
  size_t nfiles;
} pkg;

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  uint8_t *b = malloc(cap);
  size_t got;
  while ((got = fread(b + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) b = realloc(b, cap *= 2);
  }
  fclose(f);
  *len = n;
  return b;
}

static const uint8_t *resolve(void *ud, const char *rel, size_t *len) {
  pkg *p = ud;
  if (p->nfiles == sizeof p->files / sizeof p->files[0]) return NULL;
  char path[8192];
  snprintf(path, sizeof path, "%s/%s", p->dir, rel);
  uint8_t *b = slurp(path, len);
  if (b) p->files[p->nfiles++] = b;
  return b;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE...\n", argv[0]);
    return 2;
  }
  int status = 0;
  for (int i = 1; i < argc; i++) {
    size_t n;
    uint8_t *data = slurp(argv[i], &n);
    if (!data) {
      fprintf(stderr, "%s: cannot read\n", argv[i]);
      return 2;
    }
    pkg p = {.nfiles = 0};
    snprintf(p.dir, sizeof p.dir, "%s", argv[i]);
    char *slash = strrchr(p.dir, '/');
    if (slash) *slash = 0;
    else snprintf(p.dir, sizeof p.dir, ".");
    ow_gltf_figures f;
    char err[512];
    int rc = ow_gltf_validate(data, n, NULL, resolve, &p, &f, err, sizeof err);
    if (!rc) {
      printf("%s ok rank=%s triangles=%llu vertices=%llu materials=%u bones=%u draw_calls=%u texture_mem=%llu\n",
             argv[i], ow_gltf_rank_name(f.rank), (unsigned long long)f.triangles, (unsigned long long)f.vertices,
             f.materials, f.bones, f.draw_calls, (unsigned long long)f.texture_mem);
    } else {
      printf("%s refused %s %s\n", argv[i], ow_err_name(rc), err);
      status = 1;
    }
    for (size_t k = 0; k < p.nfiles; k++) free(p.files[k]);
    free(data);
  }
  return status;
}
