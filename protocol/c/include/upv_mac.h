/* upv_mac.h - keys and the 12-byte MAC trailer (docs/protocol.md section 7). */
#ifndef UPV_MAC_H
#define UPV_MAC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upv_config.h"
#include "upv_sha256.h"

#define UPV_KEY_LABEL "upv1 board key" /* 14 ASCII bytes, no terminator */
#define UPV_KEY_LABEL_LEN 14u
#define UPV_MASTER_KEY_MIN 16u

/* board_key = HMAC-SHA256(master_key, "upv1 board key" || uid). For the provisioning station
 * and tests: a board stores only its own board_key. UPV_E_ARG if the master key is < 16 bytes. */
int upv_derive_board_key(const uint8_t *master_key, size_t master_len,
                         const uint8_t uid[UPV_UID_SIZE], uint8_t out[UPV_KEY_SIZE]);

/* tag = HMAC-SHA256(board_key, header16 || payload || counter_le)[0:8]. `signed_part` is those
 * bytes, contiguous (the frame up to and including the counter). */
void upv_mac_tag(const upv_hmac_key_t *key, const uint8_t *signed_part, size_t n,
                 uint8_t tag[UPV_TAG_SIZE]);

/* Constant-time comparison of n bytes. */
bool upv_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

#endif
