/*
 * fuzz target action: the action codec (src/proto/wire.c: ow_action_decode), which reads the
 * actions of frame records at recovery and the ACTION messages of clients. The input is one or
 * more actions framed as in a version 2 frame record (u16 length, then u8 type and the arguments);
 * each decoded action is applied to the fuzz world as the avatar's, whose table holds the built-in
 * rows and one row with its own argument layout (4 to 16 bytes).
 * Properties: a decoded action re-encodes to exactly its bytes; a built-in type decodes only from
 * its fixed 62 argument bytes; applying it either changes nothing and says why, or succeeds, and
 * the world stays consistent.
 */
#include "fuzz.h"

#include "world/world.h"
#include "world_fixture.h"

enum { ROW_TYPE = 200, ROW_MIN = 4, ROW_MAX = 16 };

/* Succeeds only on a non-zero first argument byte, and says how many bytes it read. */
static int row_count(ow_world *w, ow_id account, ow_entity *avatar, const ow_action *a, ow_result *res) {
  (void)w, (void)account, (void)avatar;
  FUZZ_CHECK(a->nargs >= ROW_MIN && a->nargs <= ROW_MAX);
  if (!a->args[0]) return OW_E_INVAL;
  res->count = a->nargs;
  return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ow_log_level = getenv("FUZZ_VERBOSE") ? OW_LOG_DEBUG : OW_LOG_ERROR + 1;
  fuzz_default_content();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_world fw;
  fuzz_world_make(&fw, fuzz_default_content());
  ow_action_row row = {.type = ROW_TYPE, .name = "count", .arg_min = ROW_MIN, .arg_size = ROW_MAX,
                       .apply = row_count};
  FUZZ_CHECK(ow_world_action_register(fw.w, &row) == 0);
  ow_reader r;
  ow_reader_init(&r, data, size);
  ow_buf b;
  ow_buf_init(&b);
  while (r.left >= 2) {
    size_t len = ow_rd_u16(&r);
    const uint8_t *at = r.p;
    size_t before = r.left;
    ow_action a;
    int err = ow_action_decode(&r, len, &a);
    if (err) {
      FUZZ_CHECK(len == 0 || len > 1 + OW_ACTION_ARGS_MAX || before < len ||
                 (ow_action_builtin(at[0]) && len != 1 + OW_ACTION_BUILTIN_ARGS));
      break;
    }
    FUZZ_CHECK(before - r.left == len && ow_action_size(&a) == len);
    FUZZ_CHECK(!ow_action_builtin(a.type) || len == 1 + OW_ACTION_BUILTIN_ARGS);
    b.len = 0;
    ow_action_encode(&a, &b);
    FUZZ_CHECK(b.len == len && !memcmp(b.data, at, len));
    size_t n0 = ow_world_count(fw.w);
    ow_result res;
    int rc = ow_world_apply(fw.w, FUZZ_ACCOUNT, fw.avatar, &a, &res);
    FUZZ_CHECK(rc == res.code && rc <= 0);
    if (a.type == ROW_TYPE && (a.nargs < ROW_MIN || a.nargs > ROW_MAX)) FUZZ_CHECK(rc == OW_E_INVAL);
    if (rc) FUZZ_CHECK(ow_world_count(fw.w) == n0);
    fuzz_world_check(&fw);
  }
  ow_buf_deinit(&b);
  fuzz_world_free(&fw);
  return 0;
}
