/* Test support. See support.h. */
#define _GNU_SOURCE
#include "support.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ow_test_mkdtemp(const char *tag) {
  const char *tmp = getenv("TMPDIR");
  char buf[512];
  snprintf(buf, sizeof buf, "%s/ow-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
  if (!mkdtemp(buf)) {
    perror("mkdtemp");
    abort();
  }
  return ow_strdup(buf);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

void ow_test_rmdir(char *path) {
  if (!path) return;
  nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  ow_free(path);
}

const char *ow_test_source_path(const char *rel) {
  static char buf[1024];
  snprintf(buf, sizeof buf, "%s/%s", OW_SOURCE_DIR, rel);
  return buf;
}

ow_content *ow_test_content(void) {
  ow_content *c;
  char err[512];
  if (ow_content_load_file(ow_test_source_path("content/default.json"), &c, err, sizeof err)) {
    fprintf(stderr, "content: %s\n", err);
    abort();
  }
  return c;
}

ow_store *ow_test_store(const char *dir) {
  ow_store_options o = {.path = dir, .map_size = 64u << 20, .nosync = false};
  ow_store *s;
  char *uri = ow_test_store_uri(dir), err[512] = "";
  int rc = uri ? ow_store_open_uri(&s, uri, &o, err, sizeof err) : ow_store_open(&s, &o);
  ow_free(uri);
  if (rc) {
    fprintf(stderr, "store %s: %s %s\n", dir, ow_strerror(rc), err);
    abort();
  }
  return s;
}

ow_zone_config ow_test_zone_config(void) {
  ow_zone_config c = {.world = {.region_size = 256, .reach = 8, .bound = 1e6f},
                      .replay_window = 64,
                      .frame_log_keep = 0};
  return c;
}

bool ow_test_result_eq(const ow_result *a, const ow_result *b) {
  return a->code == b->code && a->entity == b->entity && a->count == b->count;
}

bool ow_test_action_eq(const ow_action *a, const ow_action *b) {
  ow_buf x, y;
  ow_buf_init(&x);
  ow_buf_init(&y);
  ow_action_encode(a, &x);
  ow_action_encode(b, &y);
  bool eq = x.len == y.len && !memcmp(x.data, y.data, x.len);
  ow_buf_deinit(&x);
  ow_buf_deinit(&y);
  return eq;
}
