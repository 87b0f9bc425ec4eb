/* upv_crc32.h - CRC-32/ISO-HDLC (zlib crc32), docs/protocol.md section 4. */
#ifndef UPV_CRC32_H
#define UPV_CRC32_H
#include <stddef.h>
#include <stdint.h>

#define UPV_CRC_CHECK 0xCBF43926u   /* CRC of "123456789" */
#define UPV_CRC_RESIDUE 0x2144DF1Cu /* CRC of data || its CRC (LE) */

/* Continue a CRC: upv_crc32_update(0, p, n) starts one; pass the previous result to go on. */
uint32_t upv_crc32_update(uint32_t crc, const uint8_t *p, size_t n);
/* The CRC of n bytes. */
uint32_t upv_crc32(const uint8_t *p, size_t n);

#endif
