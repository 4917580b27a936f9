/* auth: accounts, argon2id password hashes, session tokens. See auth.h. */
#include "auth/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct token {
  uint8_t hash[32];
  ow_token_info info;
  uint64_t issued;
} token;

typedef struct acct {
  ow_account pub;
  uint32_t next_same_name; /* index + 1 of the next account whose name hashes the same */
  OW_VEC(token *) tokens;
} acct;

struct ow_auth {
  ow_auth_config cfg;
  OW_VEC(acct *) accounts;
  ow_map by_id;    /* id -> index */
  ow_map by_name;  /* hash(name) -> index + 1 of the first account with that hash */
  ow_map tokens;   /* first 8 bytes of the token hash -> token* */
  uint64_t next_id;
};

static uint64_t name_hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
  return h;
}

static void token_hash(const uint8_t tok[OW_TOKEN_LEN], uint8_t out[32]) {
  crypto_generichash(out, 32, tok, OW_TOKEN_LEN, NULL, 0);
}

static uint64_t token_key(const uint8_t hash[32]) {
  uint64_t k;
  memcpy(&k, hash, 8);
  return k;
}

bool ow_auth_name_ok(const char *name, size_t n) {
  if (n < OW_NAME_MIN_LEN || n > OW_NAME_MAX_LEN) return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return false;
  }
  return true;
}

bool ow_auth_password_ok(size_t n) { return n >= 8 && n <= 128; }

int ow_auth_hash(const ow_auth *a, const char *pw, size_t n, char out[crypto_pwhash_STRBYTES]) {
  if (crypto_pwhash_str_alg(out, pw, n, a->cfg.pwhash_ops, (size_t)a->cfg.pwhash_mem,
                            crypto_pwhash_ALG_ARGON2ID13))
    return OW_E_NOMEM; /* libsodium fails only when it cannot get the memory */
  return 0;
}

bool ow_auth_verify(const char hash[crypto_pwhash_STRBYTES], const char *pw, size_t n) {
  return crypto_pwhash_str_verify(hash, pw, n) == 0;
}

/* ---- in-memory tables ---------------------------------------------------------------------------- */

static acct *add_mem(ow_auth *a, uint64_t id, const char *name, size_t n, uint8_t role, const char *hash) {
  acct *x = ow_calloc(1, sizeof *x);
  x->pub.id = id;
  memcpy(x->pub.name, name, n);
  x->pub.role = role;
  snprintf(x->pub.hash, sizeof x->pub.hash, "%s", hash);
  size_t idx = a->accounts.len;
  OW_VEC_PUSH(a->accounts, x);
  ow_map_set(&a->by_id, id, idx);
  uint64_t h = name_hash(name, n);
  uint64_t *first = ow_map_get(&a->by_name, h);
  x->next_same_name = first ? (uint32_t)*first : 0;
  ow_map_set(&a->by_name, h, idx + 1);
  if (id >= a->next_id) a->next_id = id + 1;
  return x;
}

static acct *find_name(const ow_auth *a, const char *name, size_t n) {
  uint64_t *v = ow_map_get(&a->by_name, name_hash(name, n));
  for (uint32_t i = v ? (uint32_t)*v : 0; i; i = a->accounts.v[i - 1]->next_same_name) {
    acct *x = a->accounts.v[i - 1];
    if (strlen(x->pub.name) == n && !memcmp(x->pub.name, name, n)) return x;
  }
  return NULL;
}

static acct *find_id(const ow_auth *a, uint64_t id) {
  uint64_t *v = ow_map_get(&a->by_id, id);
  return v ? a->accounts.v[*v] : NULL;
}

const ow_account *ow_auth_by_name(const ow_auth *a, const char *name, size_t n) {
  acct *x = find_name(a, name, n);
  return x ? &x->pub : NULL;
}

const ow_account *ow_auth_by_id(const ow_auth *a, uint64_t id) {
  acct *x = find_id(a, id);
  return x ? &x->pub : NULL;
}

size_t ow_auth_accounts(const ow_auth *a) { return a->accounts.len; }

/* The map is keyed by the first 8 bytes of the hash: a second token with the same 8 bytes would
 * replace the first in the map but not in its account's list (a leak, and a later drop of the
 * first would remove the second from the map). Returns false, adding nothing, in that case. */
static bool token_mem_add(ow_auth *a, token *t) {
  if (ow_map_get(&a->tokens, token_key(t->hash))) return false;
  ow_map_set(&a->tokens, token_key(t->hash), (uint64_t)(uintptr_t)t);
  acct *x = find_id(a, t->info.account);
  if (x) OW_VEC_PUSH(x->tokens, t);
  return true;
}

static token *token_find(const ow_auth *a, const uint8_t hash[32]) {
  uint64_t *v = ow_map_get(&a->tokens, token_key(hash));
  token *t = v ? (token *)(uintptr_t)*v : NULL;
  return t && !memcmp(t->hash, hash, 32) ? t : NULL;
}

static void token_drop(ow_auth *a, ow_zone *z, token *t) {
  uint8_t key[33];
  key[0] = OW_KEY_TOKEN;
  memcpy(key + 1, t->hash, 32);
  if (z) ow_zone_del(z, key, sizeof key);
  ow_map_del(&a->tokens, token_key(t->hash));
  acct *x = find_id(a, t->info.account);
  for (size_t i = 0; x && i < x->tokens.len; i++)
    if (x->tokens.v[i] == t) {
      x->tokens.v[i] = x->tokens.v[--x->tokens.len];
      break;
    }
  ow_free(t);
}

/* ---- load ---------------------------------------------------------------------------------------- */

static int scan_account(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  ow_auth *a = ud;
  ow_reader r;
  ow_reader_init(&r, v, vl);
  size_t nl = ow_rd_u8(&r);
  const char *name = (const char *)ow_rd_bytes(&r, nl);
  uint8_t role = ow_rd_u8(&r);
  size_t hl = ow_rd_u8(&r);
  const char *hash = (const char *)ow_rd_bytes(&r, hl);
  if (kl != OW_KEY_ID_LEN || r.err || r.left || !ow_auth_name_ok(name, nl) ||
      hl >= crypto_pwhash_STRBYTES)
    return OW_E_CORRUPT;
  char h[crypto_pwhash_STRBYTES];
  memcpy(h, hash, hl);
  h[hl] = 0;
  add_mem(a, ow_be64_read(k + 1), name, nl, role, h);
  return 0;
}

typedef struct load_tokens {
  ow_auth *a;
  uint64_t now;
} load_tokens;

static int scan_token(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  load_tokens *lt = ud;
  ow_reader r;
  ow_reader_init(&r, v, vl);
  token t;
  t.info.account = ow_rd_u64(&r);
  t.info.session = ow_rd_u64(&r);
  t.info.expires = ow_rd_u64(&r);
  t.issued = ow_rd_u64(&r);
  if (kl != 33 || r.err || r.left) return OW_E_CORRUPT;
  if (t.info.expires <= lt->now) return 0; /* expired: never valid again */
  memcpy(t.hash, k + 1, 32);
  token *p = ow_malloc(sizeof *p);
  *p = t;
  if (!token_mem_add(lt->a, p)) {
    /* Only a damaged store has two (random 32-byte tokens share 8 bytes once in 2^64). */
    OW_WARN("token_skipped", "account=%llu hint=\"another stored token has the same hash prefix; "
            "this one is ignored and its holder logs in again\"", (unsigned long long)t.info.account);
    ow_free(p);
  }
  return 0;
}

int ow_auth_create(ow_auth **out, ow_store *store, const ow_auth_config *cfg) {
  *out = NULL;
  if (sodium_init() < 0) return OW_E_NOMEM;
  ow_auth *a = ow_calloc(1, sizeof *a);
  a->cfg = *cfg;
  if (!a->cfg.pwhash_ops) a->cfg.pwhash_ops = 2;
  if (!a->cfg.pwhash_mem) a->cfg.pwhash_mem = 19u << 20;
  if (!a->cfg.token_ttl_s) a->cfg.token_ttl_s = 86400;
  if (!a->cfg.max_tokens) a->cfg.max_tokens = 4;
  a->next_id = 1;
  ow_map_init(&a->by_id);
  ow_map_init(&a->by_name);
  ow_map_init(&a->tokens);
  uint8_t p = OW_KEY_ACCOUNT;
  int rc = ow_store_scan(store, &p, 1, scan_account, a);
  if (!rc) {
    load_tokens lt = {a, (uint64_t)time(NULL)};
    p = OW_KEY_TOKEN;
    rc = ow_store_scan(store, &p, 1, scan_token, &lt);
  }
  if (rc) {
    OW_ERROR("auth_load_failed", "err=%s", ow_err_name(rc));
    ow_auth_destroy(a);
    return rc;
  }
  *out = a;
  return 0;
}

void ow_auth_destroy(ow_auth *a) {
  if (!a) return;
  for (size_t i = 0; i < a->tokens.cap; i++)
    if (a->tokens.keys[i]) ow_free((void *)(uintptr_t)a->tokens.vals[i]);
  if (a->tokens.has_zero) ow_free((void *)(uintptr_t)a->tokens.zero_val);
  for (size_t i = 0; i < a->accounts.len; i++) {
    OW_VEC_FREE(a->accounts.v[i]->tokens);
    ow_free(a->accounts.v[i]);
  }
  OW_VEC_FREE(a->accounts);
  ow_map_deinit(&a->by_id);
  ow_map_deinit(&a->by_name);
  ow_map_deinit(&a->tokens);
  ow_free(a);
}

/* ---- changes ------------------------------------------------------------------------------------- */

/* Writes the account record (name, role, password hash) into the zone's gathering frame and
 * returns that frame. */
static uint64_t put_account(ow_zone *z, const ow_account *acc) {
  uint8_t key[OW_KEY_ID_LEN];
  ow_key_id(key, OW_KEY_ACCOUNT, acc->id);
  size_t n = strlen(acc->name), hl = strlen(acc->hash);
  ow_buf v;
  ow_buf_init(&v);
  ow_buf_u8(&v, (uint8_t)n);
  ow_buf_put(&v, acc->name, n);
  ow_buf_u8(&v, acc->role);
  ow_buf_u8(&v, (uint8_t)hl);
  ow_buf_put(&v, acc->hash, hl);
  uint64_t f = ow_zone_put(z, key, sizeof key, v.data, v.len);
  ow_buf_deinit(&v);
  return f;
}

int ow_auth_add(ow_auth *a, ow_zone *z, const char *name, size_t n, const char *hash, uint8_t role,
                const ow_account **out, uint64_t *frame) {
  if (!ow_auth_name_ok(name, n)) return OW_E_BAD_NAME;
  if (find_name(a, name, n)) return OW_E_NAME_TAKEN;
  size_t hl = strlen(hash);
  if (hl == 0 || hl >= crypto_pwhash_STRBYTES || hl > 255) return OW_E_INVAL;
  acct *x = add_mem(a, a->next_id, name, n, role, hash);
  /* The account record holds the name: the name index is rebuilt in memory from those records at
   * start, so no separate name key is written (stores before 2026-12 hold 'N' keys; never read). */
  uint64_t f = put_account(z, &x->pub);
  if (out) *out = &x->pub;
  if (frame) *frame = f;
  return 0;
}

int ow_auth_issue(ow_auth *a, ow_zone *z, uint64_t account, uint64_t session, uint64_t now,
                  uint8_t tok[OW_TOKEN_LEN], ow_token_info *info) {
  acct *x = find_id(a, account);
  if (!x) return OW_E_NOT_FOUND;
  /* Keep at most max_tokens live tokens per account: the oldest goes first. */
  while (x->tokens.len >= a->cfg.max_tokens) {
    size_t oldest = 0;
    for (size_t i = 1; i < x->tokens.len; i++)
      if (x->tokens.v[i]->issued < x->tokens.v[oldest]->issued) oldest = i;
    token_drop(a, z, x->tokens.v[oldest]);
  }
  token *t = ow_malloc(sizeof *t);
  t->info = (ow_token_info){account, session, now + a->cfg.token_ttl_s};
  t->issued = now;
  do {
    randombytes_buf(tok, OW_TOKEN_LEN);
    token_hash(tok, t->hash);
  } while (!token_mem_add(a, t));
  uint8_t key[33];
  key[0] = OW_KEY_TOKEN;
  memcpy(key + 1, t->hash, 32);
  ow_buf v;
  ow_buf_init(&v);
  ow_buf_u64(&v, t->info.account);
  ow_buf_u64(&v, t->info.session);
  ow_buf_u64(&v, t->info.expires);
  ow_buf_u64(&v, t->issued);
  ow_zone_put(z, key, sizeof key, v.data, v.len);
  ow_buf_deinit(&v);
  if (info) *info = t->info;
  return 0;
}

int ow_auth_check(const ow_auth *a, const uint8_t tok[OW_TOKEN_LEN], uint64_t now, ow_token_info *info) {
  uint8_t h[32];
  token_hash(tok, h);
  token *t = token_find(a, h);
  if (!t || t->info.expires <= now) return OW_E_TOKEN;
  if (info) *info = t->info;
  return 0;
}

void ow_auth_revoke(ow_auth *a, ow_zone *z, const uint8_t tok[OW_TOKEN_LEN]) {
  uint8_t h[32];
  token_hash(tok, h);
  token *t = token_find(a, h);
  if (t) token_drop(a, z, t);
}

int ow_auth_set_role(ow_auth *a, ow_zone *z, uint64_t account, uint8_t role, uint64_t *frame) {
  if (role > OW_ROLE_ADMIN) return OW_E_INVAL;
  acct *x = find_id(a, account);
  if (!x) return OW_E_NOT_FOUND;
  x->pub.role = role;
  uint64_t f = put_account(z, &x->pub);
  if (frame) *frame = f;
  return 0;
}

int ow_auth_revoke_account(ow_auth *a, ow_zone *z, uint64_t account, uint64_t *frame) {
  acct *x = find_id(a, account);
  if (!x) return OW_E_NOT_FOUND;
  /* Nothing to write (and no frame to wait for) when the account has no live token. */
  uint64_t f = x->tokens.len ? ow_zone_frame(z) : 0;
  while (x->tokens.len) token_drop(a, z, x->tokens.v[x->tokens.len - 1]);
  if (frame) *frame = f;
  return 0;
}
