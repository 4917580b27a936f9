/* fuzz: helpers shared by the targets. See fuzz.h. */
#include "fuzz.h"

#include "content/content.h"

#ifndef OW_FUZZ_CONTENT
#define OW_FUZZ_CONTENT "content/default.json"
#endif

struct ow_content *fuzz_default_content(void) {
  static ow_content *c;
  if (!c) {
    char err[512];
    if (ow_content_load_file(OW_FUZZ_CONTENT, &c, err, sizeof err)) {
      fprintf(stderr, "fuzz: cannot load %s: %s\n", OW_FUZZ_CONTENT, err);
      abort();
    }
  }
  return c;
}

void fuzz_content_keep_keys(ow_content *c, uint16_t keep) {
  while (c->nkeys > keep) ow_free(c->keys[--c->nkeys]);
}
