/* Big-endian integers in byte buffers (frame headers, stored keys and
 * values, snapshot records) and the FNV-1a hash of bytes (hash tables).
 * Header-only; no allocation, no I/O. */
#ifndef COALITION_BYTES_H
#define COALITION_BYTES_H

#include <stddef.h>
#include <stdint.h>

static inline void bytes_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t bytes_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void bytes_put_be64(uint8_t *p, uint64_t v)
{
    bytes_put_be32(p, (uint32_t)(v >> 32));
    bytes_put_be32(p + 4, (uint32_t)v);
}

static inline uint64_t bytes_get_be64(const uint8_t *p)
{
    return ((uint64_t)bytes_get_be32(p) << 32) | bytes_get_be32(p + 4);
}

#define BYTES_FNV1A_INIT 1469598103934665603ull

/* FNV-1a over `len` bytes, continuing from `h` (BYTES_FNV1A_INIT to start):
 * for hash tables and fingerprints, not where someone could gain by a
 * collision. */
static inline uint64_t bytes_fnv1a(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

#endif
