/* upv_sha256.h - compact SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), no allocation. */
#ifndef UPV_SHA256_H
#define UPV_SHA256_H
#include <stddef.h>
#include <stdint.h>

#define UPV_SHA256_SIZE 32u
#define UPV_SHA256_BLOCK 64u

typedef struct {
    uint32_t h[8];
    uint64_t total;     /* bytes hashed so far */
    uint8_t block[64];
    uint8_t used;       /* bytes in block */
} upv_sha256_t;

void upv_sha256_init(upv_sha256_t *s);
void upv_sha256_update(upv_sha256_t *s, const uint8_t *p, size_t n);
void upv_sha256_final(upv_sha256_t *s, uint8_t out[UPV_SHA256_SIZE]);

/* A key's HMAC state, precomputed once (the inner and outer pads hashed): every MAC then costs
 * only the message blocks plus one outer block. */
typedef struct {
    upv_sha256_t inner;
    upv_sha256_t outer;
} upv_hmac_key_t;

void upv_hmac_key(upv_hmac_key_t *k, const uint8_t *key, size_t key_len);
/* HMAC-SHA256(key, a || b) in one call (either part may be empty). */
void upv_hmac(const upv_hmac_key_t *k, const uint8_t *a, size_t na, const uint8_t *b, size_t nb,
              uint8_t out[UPV_SHA256_SIZE]);
/* Overwrite a key state with zeros (key material must not linger in RAM). */
void upv_hmac_key_wipe(upv_hmac_key_t *k);

#endif
