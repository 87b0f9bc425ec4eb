/* upv_cobs.h - COBS framing and the streaming frame decoder (docs/protocol.md section 3). */
#ifndef UPV_COBS_H
#define UPV_COBS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upv_config.h"

/* Canonical COBS encode of n bytes into out (capacity cap; UPV_COBS_MAX(n) is always enough).
 * Returns the encoded length (no delimiters), or 0 when cap is too small. */
size_t upv_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* COBS decode of one piece (the bytes between two delimiters). out may equal in (in place).
 * Returns the decoded length, or -1 when the piece is not valid COBS. */
long upv_cobs_decode(const uint8_t *in, size_t n, uint8_t *out);

/* 0x00 || COBS(frame || CRC32_LE(frame)) || 0x00 into out. frame is n bytes and must be followed
 * by 4 writable bytes (the CRC is appended in place). Returns the wire length or 0 (no room). */
size_t upv_wire_encode(uint8_t *frame, size_t n, uint8_t *out, size_t cap);

typedef struct {
    uint32_t frames;      /* verified frames returned */
    uint32_t crc_errors;  /* COBS-valid pieces whose CRC did not match */
    uint32_t cobs_errors; /* pieces that are not valid COBS */
    uint32_t too_long;    /* pieces over MAX_ENCODED, or decoding to more than MAX_RAW */
    uint32_t too_short;   /* valid pieces shorter than header + CRC */
    uint32_t junk_bytes;  /* bytes of every discarded piece */
} upv_decoder_stats_t;

/* Streaming decoder over a caller-supplied buffer of cap bytes (cap >= UPV_MAX_ENCODED to take
 * every valid frame; a smaller buffer drops longer pieces as too_long). */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool discarding;
    upv_decoder_stats_t stats;
} upv_decoder_t;

void upv_decoder_init(upv_decoder_t *d, uint8_t *buf, size_t cap);
/* Forget a partial piece (e.g. after the port was reopened). */
void upv_decoder_reset(upv_decoder_t *d);
/* Push one received byte. When it completes a frame that passed COBS, length and CRC, returns
 * its length (header || body, CRC stripped) and sets *frame into the buffer; the frame stays
 * valid until the next push. Otherwise returns 0. Never fails on bad input. */
size_t upv_decoder_push(upv_decoder_t *d, uint8_t byte, const uint8_t **frame);

#endif
