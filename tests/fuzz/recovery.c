/*
 * fuzz target recovery: a store's contents as the server finds them at start (a corrupt disk is
 * outside input too). The input's key/value pairs are written into a real LMDB store, and the
 * store is then opened the way src/main.c opens it: the zone recovers (meta values, entity
 * records, session records, remembered results, player records: src/zone/zone.c, src/world),
 * accounts and tokens load (src/auth), the frame log is read (ow_zone_frame_log_each). When
 * recovery succeeds, the server's next steps follow: a login, actions and their replays on the
 * recovered sessions, a token issued, a frame committed and the confirmed-read mirror built; then
 * the store is recovered a second time.
 *
 * The input is a list of entries, each: u8 key length, u16 value length, key, value. An entry
 * with an empty key is skipped; a later entry with the same key replaces an earlier one.
 * Properties: recovery either succeeds or fails with a code that names corruption (never a
 * crash, a hang or a leak); a store that recovered, and was then written by the zone, recovers
 * again.
 */
#include "fuzz.h"

#include <unistd.h>

#include "auth/auth.h"
#include "proto/proto.h"
#include "server/replica.h"
#include "store/store.h"
#include "zone/zone.h"
#include "world_fixture.h"

static ow_store *store;
static char dir[512];
static uint16_t base_keys;
static ow_id next_id; /* the world's next id when the last recovery closed */

static void cleanup(void) {
  ow_store_close(store);
  char p[600];
  snprintf(p, sizeof p, "%s/data.mdb", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/lock.mdb", dir);
  unlink(p);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ow_log_level = getenv("FUZZ_VERBOSE") ? OW_LOG_DEBUG : OW_LOG_ERROR + 1;
  base_keys = fuzz_default_content()->nkeys;
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(dir, sizeof dir, "%s/ow-fuzz-recovery-XXXXXX", tmp);
  FUZZ_CHECK(mkdtemp(dir) != NULL);
  ow_store_options o = {.path = dir, .map_size = 64u << 20, .nosync = true};
  FUZZ_CHECK(ow_store_open(&store, &o) == 0);
  atexit(cleanup);
  return 0;
}

static int collect_key(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  (void)v, (void)vl;
  ow_batch_del(ud, k, kl);
  return 0;
}

static int visit_frame(void *ud, uint64_t frame, const ow_applied *a) {
  (void)frame;
  if (a) (*(size_t *)ud)++;
  return 0;
}

static bool corrupt_code(int rc) {
  return rc == OW_E_CORRUPT || rc == OW_E_VERSION || rc == OW_E_UNKNOWN_TYPE ||
         rc == OW_E_NOT_FOUND;
}

static void on_snapshot(void *ud, const uint8_t *p, size_t n) {
  (void)ud;
  ow_msg m;
  size_t used;
  FUZZ_CHECK(ow_proto_decode(p, n, &used, &m, NULL, 0) == 0 && used == n);
}

/* Recovers the store as the server does; returns 0 or the failing code. When `act`, also goes
 * on as the server would after a successful start. */
static int recover(const uint8_t *data, size_t size, bool act) {
  ow_zone_config cfg = {.world = {.region_size = 256, .reach = 8, .bound = 1e6f},
                        .replay_window = 8,
                        .frame_log_keep = 4};
  ow_zone *z;
  int rc = ow_zone_open(&z, &cfg, fuzz_default_content(), store, NULL, NULL);
  if (rc) return rc;
  ow_auth_config acfg = {.pwhash_ops = 1, .pwhash_mem = 8192, .token_ttl_s = 60, .max_tokens = 2};
  ow_auth *auth;
  rc = ow_auth_create(&auth, store, &acfg);
  if (rc) {
    ow_zone_close(z);
    return rc;
  }
  size_t nframe = 0;
  ow_zone_frame_log_each(store, visit_frame, &nframe);
  if (act) {
    /* Sessions named in the input: resume them and send actions, new and replayed. */
    fuzz_in in = {data, size};
    int sessions = 0;
    while (in.left && sessions < 4) {
      size_t kl = fz_u8(&in), vl = fz_u16(&in), got;
      const uint8_t *k = fz_bytes(&in, kl, &got);
      if (got != kl) break;
      fz_bytes(&in, vl, &got);
      if (kl != 9 || k[0] != OW_KEY_SESSION) continue;
      uint64_t sid = ow_be64_read(k + 1), last = 0;
      if (ow_zone_session(z, sid, NULL, NULL, &last)) continue;
      sessions++;
      ow_action a = {.type = OW_ACT_MOVE};
      ow_transform_identity(&a.xf);
      uint64_t seqs[] = {last, last - 1, last + 1, last + 1, 1};
      for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        ow_result res;
        uint64_t frame;
        bool replayed;
        ow_zone_act(z, sid, seqs[i], &a, &res, &frame, &replayed);
      }
      ow_zone_stream(z, sid, 0, &a.xf);
    }
    /* A new login (its avatar may come from a recovered player record) and its token. */
    uint64_t session;
    ow_id avatar;
    if (ow_zone_login(z, 1, &session, &avatar) == 0) {
      ow_action a = {.type = OW_ACT_HARVEST, .target = avatar};
      ow_result res;
      uint64_t frame;
      bool replayed;
      ow_zone_act(z, session, 1, &a, &res, &frame, &replayed);
    }
    for (uint64_t id = 1; id <= 3; id++) {
      if (!ow_auth_by_id(auth, id)) continue;
      uint8_t tok[OW_TOKEN_LEN];
      ow_token_info ti;
      if (ow_auth_issue(auth, z, id, 7, 1000, tok, &ti) == 0) {
        FUZZ_CHECK(ow_auth_check(auth, tok, 1000, NULL) == 0);
        ow_auth_revoke(auth, z, tok);
        FUZZ_CHECK(ow_auth_check(auth, tok, 1000, NULL) == OW_E_TOKEN);
      }
    }
    FUZZ_CHECK(ow_zone_commit_sync(z, true) == 0);
    fuzz_world fw = {ow_zone_world(z), 0, 0};
    fuzz_world_check(&fw);
    /* Confirmed reads start from the recovered world. */
    ow_replica *r = ow_replica_create(ow_zone_world(z), ow_zone_durable_frame(z));
    ow_view *v = ow_view_create();
    ow_view_update(v, r, (ow_cell){0, 0}, 2, 0, on_snapshot, NULL);
    ow_view_destroy(v);
    ow_replica_destroy(r);
  }
  next_id = ow_world_next_id(ow_zone_world(z));
  ow_auth_destroy(auth);
  ow_zone_close(z);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The store holds exactly the input: everything else is deleted in the same transaction. */
  ow_batch b;
  ow_batch_init(&b);
  uint8_t all = 0; /* an empty prefix: every key */
  FUZZ_CHECK(ow_store_scan(store, &all, 0, collect_key, &b) == 0);
  fuzz_in in = {data, size};
  while (in.left) {
    size_t kl = fz_u8(&in), vl = fz_u16(&in), gk, gv;
    const uint8_t *k = fz_bytes(&in, kl, &gk);
    const uint8_t *v = fz_bytes(&in, vl, &gv);
    if (gk) ow_batch_put(&b, k, gk, v, gv);
  }
  FUZZ_CHECK(ow_store_write(store, &b) == 0);
  ow_batch_deinit(&b);

  int rc = recover(data, size, true);
  if (rc && !corrupt_code(rc)) fprintf(stderr, "recovery failed with %s\n", ow_err_name(rc));
  FUZZ_CHECK(rc == 0 || corrupt_code(rc));
  /* Recovered and written by the zone: it must recover again. Except at the edge of the id space:
   * every start moves the next id up by a reserve (2^20, zone.c), so a store whose ids are
   * already within 2^32 of OW_ID_MAX is refused by the next start, as it should be. */
  if (rc == 0 && next_id < OW_ID_MAX - (UINT64_C(1) << 32)) {
    rc = recover(NULL, 0, false);
    if (rc) fprintf(stderr, "second recovery failed with %s\n", ow_err_name(rc));
    FUZZ_CHECK(rc == 0);
  }
  fuzz_content_keep_keys(fuzz_default_content(), base_keys);
  return 0;
}
