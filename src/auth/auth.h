/*
 * auth: accounts and session tokens, kept in memory and persisted in the store through the zone's
 * frames (so an account or a token is durable exactly when its frame is). Passwords are hashed
 * with argon2id (libsodium); hashing and verifying are slow on purpose and run off the loop thread.
 * Tokens are 32 random bytes; only their BLAKE2b hash is stored, so a copy of the store does not
 * hold usable tokens.
 */
#ifndef OW_AUTH_H
#define OW_AUTH_H

#include <sodium.h>

#include "otherworld/protocol.h"
#include "store/store.h"
#include "zone/zone.h"

typedef struct ow_auth ow_auth;

typedef struct ow_auth_config {
  uint64_t pwhash_ops;       /* argon2id passes (libsodium opslimit) */
  uint64_t pwhash_mem;       /* argon2id memory in bytes (libsodium memlimit) */
  uint32_t token_ttl_s;      /* how long a token stays valid after it is issued */
  uint32_t max_tokens;       /* live tokens per account; issuing one more revokes the oldest */
} ow_auth_config;

typedef struct ow_account {
  uint64_t id;
  char name[OW_NAME_MAX_LEN + 1];
  uint8_t role;
  char hash[crypto_pwhash_STRBYTES];
} ow_account;

/* What a valid token stands for. */
typedef struct ow_token_info {
  uint64_t account;
  uint64_t session; /* the zone session (exactly-once sequence space) bound to the token */
  uint64_t expires; /* unix seconds */
} ow_token_info;

/* Loads accounts and tokens from the store. The caller owns *out. */
int ow_auth_create(ow_auth **out, ow_store *store, const ow_auth_config *cfg);
void ow_auth_destroy(ow_auth *a);

/* Names: 3..32 bytes of A-Z a-z 0-9 _ - . ; passwords: 8..128 bytes. */
bool ow_auth_name_ok(const char *name, size_t n);
bool ow_auth_password_ok(size_t n);

/* Hashes and verifies passwords. Slow (argon2id): call them on a worker thread. They touch no
 * shared state: hash writes `out`, verify reads `hash`. */
int ow_auth_hash(const ow_auth *a, const char *pw, size_t n, char out[crypto_pwhash_STRBYTES]);
bool ow_auth_verify(const char hash[crypto_pwhash_STRBYTES], const char *pw, size_t n);

/* Account lookups (loop thread). The pointers stay valid until ow_auth_destroy(). */
const ow_account *ow_auth_by_name(const ow_auth *a, const char *name, size_t n);
const ow_account *ow_auth_by_id(const ow_auth *a, uint64_t id);

/* Creates an account with an already computed hash. OW_E_NAME_TAKEN if the name exists (checked
 * again here because two registrations may race while hashing). The account is written in the
 * zone's gathering frame; *frame says which. */
int ow_auth_add(ow_auth *a, ow_zone *z, const char *name, size_t n, const char *hash, uint8_t role,
                const ow_account **out, uint64_t *frame);

/* Issues a new token for (account, session). The raw token is written to `token`; only its hash is
 * kept and stored. */
int ow_auth_issue(ow_auth *a, ow_zone *z, uint64_t account, uint64_t session, uint64_t now,
                  uint8_t token[OW_TOKEN_LEN], ow_token_info *info);
/* Checks a token: OW_E_TOKEN when unknown, revoked or expired. */
int ow_auth_check(const ow_auth *a, const uint8_t token[OW_TOKEN_LEN], uint64_t now, ow_token_info *info);
/* Revokes a token (logout). Unknown tokens are ignored. */
void ow_auth_revoke(ow_auth *a, ow_zone *z, const uint8_t token[OW_TOKEN_LEN]);

/* Gives an account a role (OW_ROLE_*), written in the zone's gathering frame (*frame says which).
 * OW_E_NOT_FOUND for an unknown account, OW_E_INVAL for an unknown role. */
int ow_auth_set_role(ow_auth *a, ow_zone *z, uint64_t account, uint8_t role, uint64_t *frame);
/* Revokes every token of an account (an admin's REVOKE): no RESUME with them works afterwards.
 * The deletions are written in the gathering frame (*frame; 0 when there was no token to revoke).
 * OW_E_NOT_FOUND for an unknown account. */
int ow_auth_revoke_account(ow_auth *a, ow_zone *z, uint64_t account, uint64_t *frame);
size_t ow_auth_accounts(const ow_auth *a);

#endif
