/* Member identity lookups: phone numbers and email addresses are never
 * stored or replicated; the node that receives one turns it into a keyed
 * hash (BLAKE2b-256 under the coalition identity key, the same on every
 * node) and only that hash enters the ledger (TXN_IDENTIFY) or a lookup.
 * Normalization makes "+44 20 7946 0000" and "+442079460000", or
 * "Ann@Example.com " and "ann@example.com", the same key.  No store, no
 * networking here. */
#ifndef COALITION_IDENTITY_H
#define COALITION_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDENTITY_KEY_LEN  32
#define IDENTITY_HASH_LEN 32
#define IDENTITY_TEXT_MAX 254 /* bytes of a phone or email as given */

struct identity_key {
    bool loaded;
    uint8_t key[IDENTITY_KEY_LEN];
};

/* Reads the key from `path`: 64 hex digits, optional trailing newline.
 * 0, or -1 with a message in err. */
int identity_key_load(struct identity_key *k, const char *path, char *err, size_t errlen);

/* The lookup key of a phone number (digits, an optional leading '+';
 * spaces, dots, dashes and parentheses are ignored; 6..15 digits) or an
 * email (trimmed, lower-cased, one '@' with text on both sides).  Returns 0
 * and out, COALITION_E_INVALID_ARGUMENT for a value that is not one, or
 * COALITION_E_IDENTITY_UNAVAILABLE without a key. */
int identity_hash_phone(const struct identity_key *k, const char *phone,
                        uint8_t out[IDENTITY_HASH_LEN]);
int identity_hash_email(const struct identity_key *k, const char *email,
                        uint8_t out[IDENTITY_HASH_LEN]);

#endif
