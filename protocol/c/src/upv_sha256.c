/* upv_sha256.c - SHA-256 and HMAC-SHA256, written for small MCUs (one 64-word schedule on the
 * stack, no tables beyond the 64 round constants). */
#include "upv_sha256.h"

#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32u - (n))))

static void compress(uint32_t h[8], const uint8_t *blk)
{
    uint32_t w[64], a, b, c, d, e, f, g, hh, t1, t2;
    unsigned i;
    for (i = 0; i < 16u; i++) {
        w[i] = ((uint32_t)blk[4u * i] << 24) | ((uint32_t)blk[4u * i + 1u] << 16) |
               ((uint32_t)blk[4u * i + 2u] << 8) | (uint32_t)blk[4u * i + 3u];
    }
    for (i = 16; i < 64u; i++) {
        uint32_t s0 = ROR(w[i - 15u], 7u) ^ ROR(w[i - 15u], 18u) ^ (w[i - 15u] >> 3);
        uint32_t s1 = ROR(w[i - 2u], 17u) ^ ROR(w[i - 2u], 19u) ^ (w[i - 2u] >> 10);
        w[i] = w[i - 16u] + s0 + w[i - 7u] + s1;
    }
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
    for (i = 0; i < 64u; i++) {
        t1 = hh + (ROR(e, 6u) ^ ROR(e, 11u) ^ ROR(e, 25u)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        t2 = (ROR(a, 2u) ^ ROR(a, 13u) ^ ROR(a, 22u)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void upv_sha256_init(upv_sha256_t *s)
{
    static const uint32_t iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(s->h, iv, sizeof iv);
    s->total = 0;
    s->used = 0;
}

void upv_sha256_update(upv_sha256_t *s, const uint8_t *p, size_t n)
{
    s->total += n;
    while (n > 0u) {
        size_t take = UPV_SHA256_BLOCK - s->used;
        if (take > n) {
            take = n;
        }
        memcpy(s->block + s->used, p, take);
        s->used = (uint8_t)(s->used + take);
        p += take;
        n -= take;
        if (s->used == UPV_SHA256_BLOCK) {
            compress(s->h, s->block);
            s->used = 0;
        }
    }
}

void upv_sha256_final(upv_sha256_t *s, uint8_t out[UPV_SHA256_SIZE])
{
    uint64_t bits = s->total * 8u;
    unsigned i;
    s->block[s->used++] = 0x80u;
    if (s->used > 56u) {
        memset(s->block + s->used, 0, UPV_SHA256_BLOCK - s->used);
        compress(s->h, s->block);
        s->used = 0;
    }
    memset(s->block + s->used, 0, 56u - s->used);
    for (i = 0; i < 8u; i++) {
        s->block[63u - i] = (uint8_t)(bits >> (8u * i));
    }
    compress(s->h, s->block);
    for (i = 0; i < 8u; i++) {
        out[4u * i] = (uint8_t)(s->h[i] >> 24);
        out[4u * i + 1u] = (uint8_t)(s->h[i] >> 16);
        out[4u * i + 2u] = (uint8_t)(s->h[i] >> 8);
        out[4u * i + 3u] = (uint8_t)s->h[i];
    }
}

void upv_hmac_key(upv_hmac_key_t *k, const uint8_t *key, size_t key_len)
{
    uint8_t pad[UPV_SHA256_BLOCK];
    uint8_t hashed[UPV_SHA256_SIZE];
    unsigned i;
    if (key_len > UPV_SHA256_BLOCK) {
        upv_sha256_init(&k->inner);
        upv_sha256_update(&k->inner, key, key_len);
        upv_sha256_final(&k->inner, hashed);
        key = hashed;
        key_len = UPV_SHA256_SIZE;
    }
    memset(pad, 0, sizeof pad);
    memcpy(pad, key, key_len);
    for (i = 0; i < UPV_SHA256_BLOCK; i++) {
        pad[i] ^= 0x36u;
    }
    upv_sha256_init(&k->inner);
    upv_sha256_update(&k->inner, pad, sizeof pad);
    for (i = 0; i < UPV_SHA256_BLOCK; i++) {
        pad[i] ^= 0x36u ^ 0x5cu;
    }
    upv_sha256_init(&k->outer);
    upv_sha256_update(&k->outer, pad, sizeof pad);
    memset(pad, 0, sizeof pad);
    memset(hashed, 0, sizeof hashed);
}

void upv_hmac(const upv_hmac_key_t *k, const uint8_t *a, size_t na, const uint8_t *b, size_t nb,
              uint8_t out[UPV_SHA256_SIZE])
{
    upv_sha256_t s = k->inner;
    uint8_t inner[UPV_SHA256_SIZE];
    if (na) {
        upv_sha256_update(&s, a, na);
    }
    if (nb) {
        upv_sha256_update(&s, b, nb);
    }
    upv_sha256_final(&s, inner);
    s = k->outer;
    upv_sha256_update(&s, inner, sizeof inner);
    upv_sha256_final(&s, out);
}

void upv_hmac_key_wipe(upv_hmac_key_t *k)
{
    volatile uint8_t *p = (volatile uint8_t *)k;
    size_t n = sizeof *k;
    while (n--) {
        *p++ = 0;
    }
}
