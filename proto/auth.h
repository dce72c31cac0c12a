/* Keys and signatures shared by node and client (libsodium): Ed25519 key
 * files, signing and verifying a SignedGroup, and API keys.  No I/O beyond
 * reading and writing key files; no ledger state lives here (which key a
 * signer has is the ledger's business).  See docs/security.md.
 *
 * Formats:
 *   secret key file: 128 hex digits (libsodium's 64-byte Ed25519 secret key,
 *                    seed then public key), one line, mode 0600
 *   public key:      64 hex digits (file: one line)
 *   API key:         "<key_id>.<secret>": key_id 16 hex digits, secret 64
 *                    hex digits (32 random bytes); the ledger stores only
 *                    BLAKE2b-256 of the secret's bytes */
#ifndef COALITION_AUTH_H
#define COALITION_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coalition.pb-c.h"

#define AUTH_PUBLIC_LEN    32
#define AUTH_SECRET_LEN    64
#define AUTH_SIG_LEN       64
#define AUTH_HASH_LEN      32
#define AUTH_KEY_ID_HEX    16                                        /* hex digits of a key id */
#define AUTH_API_KEY_LEN   (AUTH_KEY_ID_HEX + 1 + 2 * AUTH_HASH_LEN) /* without NUL */
#define AUTH_PUBLIC_HEX    (2 * AUTH_PUBLIC_LEN)                     /* without NUL */
#define AUTH_GROUP_CONTEXT "coalition-group-v1"

/* Calls sodium_init once; 0 or COALITION_E_INTERNAL. */
int auth_init(void);

/* Decodes exactly 2*len hex digits (surrounding blanks and a final newline
 * allowed) into out.  0 or COALITION_E_INVALID_ARGUMENT. */
int auth_hex_decode(const char *hex, uint8_t *out, size_t len);
/* Writes 2*len hex digits and a NUL into out (capacity >= 2*len+1). */
void auth_hex_encode(const uint8_t *in, size_t len, char *out);

/* A new key pair into PREFIX.key (0600) and PREFIX.pub; refuses to overwrite
 * an existing file.  0, COALITION_E_ALREADY_EXISTS or COALITION_E_STORAGE
 * (message in err). */
int auth_keygen(const char *prefix, uint8_t pk[AUTH_PUBLIC_LEN], char *err, size_t errlen);
/* Reads a secret key file.  0, or COALITION_E_INVALID_ARGUMENT / STORAGE with
 * a message naming the file in err. */
int auth_load_secret(const char *path, uint8_t sk[AUTH_SECRET_LEN], char *err, size_t errlen);
/* Reads a public key given as 64 hex digits or as a file holding them. */
int auth_load_public(const char *hex_or_path, uint8_t pk[AUTH_PUBLIC_LEN], char *err,
                     size_t errlen);
/* Reads a file of public keys, one per line in hex ('#' comments and blank
 * lines allowed).  *out is malloc'd (caller frees) with *n keys. */
int auth_load_public_list(const char *path, uint8_t (**out)[AUTH_PUBLIC_LEN], size_t *n, char *err,
                          size_t errlen);
/* True if pk is a usable Ed25519 public key (a valid point, not small order). */
bool auth_public_valid(const uint8_t pk[AUTH_PUBLIC_LEN]);

/* Signs `txns` (a packed TxnList, borrowed) into sig. */
void auth_group_sign(const uint8_t *txns, size_t len, const uint8_t sk[AUTH_SECRET_LEN],
                     uint8_t sig[AUTH_SIG_LEN]);
/* Verifies a group signature, refusing non-canonical signatures (S >= L) and
 * bad keys.  0 or COALITION_E_UNAUTHENTICATED. */
int auth_group_verify(const uint8_t *txns, size_t len, const uint8_t *sig, size_t sig_len,
                      const uint8_t pk[AUTH_PUBLIC_LEN]);

/* Packs `txns` into a TxnList and signs it: on success g->txns.data and
 * g->signature.data are malloc'd (free with auth_group_clear) and g->signer
 * points at `signer` (borrowed).  0, COALITION_E_NOMEM or
 * COALITION_E_FRAME_TOO_LARGE. */
int auth_group_make(Coalition__SignedGroup *g, const char *signer, Coalition__Txn *const *txns,
                    size_t n, const uint8_t sk[AUTH_SECRET_LEN]);
void auth_group_clear(Coalition__SignedGroup *g);

/* A new API key: writes "<key_id>.<secret>" into key (capacity >
 * AUTH_API_KEY_LEN), its id into key_id (capacity > AUTH_KEY_ID_HEX) and the
 * hash to store into hash. */
void auth_api_key_new(char *key, char *key_id, uint8_t hash[AUTH_HASH_LEN]);
/* Splits an API key: its id (NUL-terminated into key_id) and the hash of its
 * secret.  0 or COALITION_E_UNAUTHENTICATED if it is not well formed. */
int auth_api_key_parse(const char *key, char key_id[AUTH_KEY_ID_HEX + 1],
                       uint8_t hash[AUTH_HASH_LEN]);
/* Constant-time comparison of two hashes. */
bool auth_hash_equal(const uint8_t a[AUTH_HASH_LEN], const uint8_t b[AUTH_HASH_LEN]);

/* Membership changes (ClusterChangeRequest).  The signature covers a
 * domain-separated message: AUTH_CLUSTER_CONTEXT with its NUL, then op,
 * id, raft_addr, client_addr, role, time_ms and nonce (integers big-endian,
 * strings with a 4-byte length), hashed with BLAKE2b-512 and signed with
 * Ed25519.  Who may sign what, and the clock window, are the leader's
 * business (node/cluster.c); the replay cache below is its memory. */
#define AUTH_CLUSTER_CONTEXT   "coalition-cluster-v1"
#define AUTH_NONCE_LEN         16
#define AUTH_CLUSTER_WINDOW_MS ((uint64_t)5 * 60 * 1000) /* allowed clock difference */

/* Where a signed request's bytes fields point (caller-allocated; must
 * outlive every use of the request). */
struct auth_cluster_sig {
    uint8_t public_key[AUTH_PUBLIC_LEN];
    uint8_t nonce[AUTH_NONCE_LEN];
    uint8_t signature[AUTH_SIG_LEN];
};

/* Signs `req` (its op, id, addresses and role as they are) at `time_ms`
 * with a fresh random nonce: sets req->time_ms and points req->public_key,
 * req->nonce and req->signature into *out. */
void auth_cluster_sign(Coalition__ClusterChangeRequest *req, uint64_t time_ms,
                       const uint8_t sk[AUTH_SECRET_LEN], struct auth_cluster_sig *out);
/* Verifies req's signature by req->public_key (which must be a valid key):
 * 0, or COALITION_E_UNAUTHENTICATED if it is unsigned, a field has the
 * wrong length, S is not canonical or the signature does not match.  Does
 * not look at the clock, at replays or at whose key it is. */
int auth_cluster_verify(const Coalition__ClusterChangeRequest *req);

/* A bounded memory of the nonces of accepted requests, to refuse an exact
 * replay within the clock window.  Entries older than the window are
 * dropped (a replay of them fails the clock check); when the cache is full
 * of live entries the oldest is dropped and every request not newer than it
 * is refused from then on (floor_ms), so a full cache never lets a replay
 * through.  Not thread-safe; state is in memory only. */
struct auth_replay_entry {
    uint8_t nonce[AUTH_NONCE_LEN];
    uint64_t time_ms;
};
struct auth_replay {
    struct auth_replay_entry *e; /* malloc'd, cap entries */
    size_t cap, n;
    uint64_t window_ms;
    uint64_t floor_ms; /* requests with time_ms <= floor_ms are refused */
};

/* 0 or COALITION_E_NOMEM.  cap > 0; window_ms: the allowed difference
 * between a request's time and the checker's clock, either way. */
int auth_replay_init(struct auth_replay *r, size_t cap, uint64_t window_ms);
void auth_replay_free(struct auth_replay *r);
/* Forgets every nonce and refuses from now on anything signed at or before
 * floor_ms (a new leader: what an earlier leader accepted is not known
 * here). */
void auth_replay_reset(struct auth_replay *r, uint64_t floor_ms);
/* Checks a request signed at `time_ms` with `nonce` (nonce_len must be
 * AUTH_NONCE_LEN) against the clock `now_ms`, and remembers the nonce if it
 * passes: 0, or COALITION_E_UNAUTHENTICATED with a static reason in *why
 * (may be NULL): a time outside the window, not newer than the floor, or a
 * nonce seen before. */
int auth_replay_check(struct auth_replay *r, const uint8_t *nonce, size_t nonce_len,
                      uint64_t time_ms, uint64_t now_ms, const char **why);

#endif
