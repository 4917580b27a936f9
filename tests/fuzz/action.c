/*
 * fuzz target action: the action codec (src/world: ow_action_decode), which reads the actions of
 * frame records at recovery and the ACTION messages of clients. The input is one or more encoded
 * actions back to back; each decoded action is applied to the fuzz world as the avatar's.
 * Properties: a decoded action re-encodes to exactly its 63 bytes; applying it either changes
 * nothing and says why, or succeeds, and the world stays consistent.
 */
#include "fuzz.h"

#include "world/world.h"
#include "world_fixture.h"

#define ACTION_LEN 63

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ow_log_level = getenv("FUZZ_VERBOSE") ? OW_LOG_DEBUG : OW_LOG_ERROR + 1;
  fuzz_default_content();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_world fw;
  fuzz_world_make(&fw, fuzz_default_content());
  ow_reader r;
  ow_reader_init(&r, data, size);
  ow_buf b;
  ow_buf_init(&b);
  while (r.left) {
    const uint8_t *at = r.p;
    size_t before = r.left;
    ow_action a;
    int err = ow_action_decode(&r, &a);
    if (err) {
      FUZZ_CHECK(before < ACTION_LEN);
      break;
    }
    FUZZ_CHECK(before - r.left == ACTION_LEN);
    b.len = 0;
    ow_action_encode(&a, &b);
    FUZZ_CHECK(b.len == ACTION_LEN && !memcmp(b.data, at, ACTION_LEN));
    size_t n0 = ow_world_count(fw.w);
    ow_result res;
    int rc = ow_world_apply(fw.w, FUZZ_ACCOUNT, fw.avatar, &a, &res);
    FUZZ_CHECK(rc == res.code && rc <= 0);
    if (rc) FUZZ_CHECK(ow_world_count(fw.w) == n0);
    fuzz_world_check(&fw);
  }
  ow_buf_deinit(&b);
  fuzz_world_free(&fw);
  return 0;
}
