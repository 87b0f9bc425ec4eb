/* upv_mac.c - board key derivation, truncated HMAC tags, constant-time compare. */
#include "upv_mac.h"

#include <string.h>

#include "upv_msg.h"

int upv_derive_board_key(const uint8_t *master_key, size_t master_len,
                         const uint8_t uid[UPV_UID_SIZE], uint8_t out[UPV_KEY_SIZE])
{
    upv_hmac_key_t k;
    if (master_key == NULL || uid == NULL || master_len < UPV_MASTER_KEY_MIN) {
        return UPV_E_ARG;
    }
    upv_hmac_key(&k, master_key, master_len);
    upv_hmac(&k, (const uint8_t *)UPV_KEY_LABEL, UPV_KEY_LABEL_LEN, uid, UPV_UID_SIZE, out);
    upv_hmac_key_wipe(&k);
    return UPV_OK;
}

void upv_mac_tag(const upv_hmac_key_t *key, const uint8_t *signed_part, size_t n,
                 uint8_t tag[UPV_TAG_SIZE])
{
    uint8_t full[UPV_SHA256_SIZE];
    upv_hmac(key, signed_part, n, NULL, 0, full);
    memcpy(tag, full, UPV_TAG_SIZE);
}

bool upv_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t diff = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0u;
}
