/* Identity lookup keys (contract in identity.h): normalization of phone
 * numbers and emails and their keyed hash.  Nothing is stored here. */
#include "identity.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "errors.h"

int identity_key_load(struct identity_key *k, const char *path, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open identity key file '%s'", path);
        return -1;
    }
    char hex[2 * IDENTITY_KEY_LEN + 4] = "";
    size_t n = fread(hex, 1, sizeof(hex) - 1, f);
    fclose(f);
    while (n > 0 && (hex[n - 1] == '\n' || hex[n - 1] == '\r')) {
        hex[--n] = '\0';
    }
    size_t bin_len = 0;
    if (n != 2 * IDENTITY_KEY_LEN ||
        sodium_hex2bin(k->key, sizeof(k->key), hex, n, NULL, &bin_len, NULL) != 0 ||
        bin_len != IDENTITY_KEY_LEN) {
        snprintf(err, errlen, "identity key file '%s' must hold 64 hex digits", path);
        sodium_memzero(hex, sizeof(hex));
        return -1;
    }
    sodium_memzero(hex, sizeof(hex));
    k->loaded = true;
    return 0;
}

/* BLAKE2b-256 keyed, over "<kind>:<normalized>". */
static int identity_hash(const struct identity_key *k, const char *kind, const char *norm,
                         uint8_t out[IDENTITY_HASH_LEN])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, k->key, IDENTITY_KEY_LEN, IDENTITY_HASH_LEN);
    crypto_generichash_update(&st, (const uint8_t *)kind, strlen(kind));
    crypto_generichash_update(&st, (const uint8_t *)":", 1);
    crypto_generichash_update(&st, (const uint8_t *)norm, strlen(norm));
    crypto_generichash_final(&st, out, IDENTITY_HASH_LEN);
    return 0;
}

int identity_hash_phone(const struct identity_key *k, const char *phone,
                        uint8_t out[IDENTITY_HASH_LEN])
{
    if (phone == NULL || strlen(phone) > IDENTITY_TEXT_MAX) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    char norm[IDENTITY_TEXT_MAX + 1];
    size_t n = 0, digits = 0;
    for (const char *p = phone; *p != '\0'; p++) {
        if (*p == '+' && n == 0) {
            norm[n++] = '+';
        } else if (isdigit((unsigned char)*p)) {
            norm[n++] = *p;
            digits++;
        } else if (strchr(" .-()", *p) == NULL) {
            return COALITION_E_INVALID_ARGUMENT;
        }
    }
    norm[n] = '\0';
    if (digits < 6 || digits > 15) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (!k->loaded) {
        return COALITION_E_IDENTITY_UNAVAILABLE;
    }
    return identity_hash(k, "phone", norm, out);
}

int identity_hash_email(const struct identity_key *k, const char *email,
                        uint8_t out[IDENTITY_HASH_LEN])
{
    if (email == NULL || strlen(email) > IDENTITY_TEXT_MAX) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    while (*email == ' ' || *email == '\t') {
        email++;
    }
    char norm[IDENTITY_TEXT_MAX + 1];
    size_t n = strlen(email);
    while (n > 0 && (email[n - 1] == ' ' || email[n - 1] == '\t')) {
        n--;
    }
    size_t ats = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= ' ' || c == 0x7f) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        if (c == '@') {
            ats++;
            at = i;
        }
        norm[i] = (char)tolower(c);
    }
    norm[n] = '\0';
    if (ats != 1 || at == 0 || at + 1 == n) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (!k->loaded) {
        return COALITION_E_IDENTITY_UNAVAILABLE;
    }
    return identity_hash(k, "email", norm, out);
}
