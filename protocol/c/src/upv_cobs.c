/* upv_cobs.c - COBS (Cheshire & Baker) and the streaming decoder of docs/protocol.md 3.3. */
#include "upv_cobs.h"

#include "upv_crc32.h"

size_t upv_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t code_at = 0, o = 1, i;
    uint8_t code = 1;
    if (cap < 1u) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (in[i] != 0u) {
            if (o >= cap) {
                return 0;
            }
            out[o++] = in[i];
            if (++code != 0xFFu) {
                continue;
            }
            if (i + 1u == n) { /* a full block ends the data: no trailing 01 */
                out[code_at] = code;
                return o;
            }
        }
        if (o >= cap) {
            return 0;
        }
        out[code_at] = code; /* close the block (at a zero, or when it is full) */
        code_at = o++;
        code = 1;
    }
    out[code_at] = code;
    return o;
}

long upv_cobs_decode(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = in[i++];
        uint8_t k;
        if (code == 0u || i + code - 1u > n) {
            return -1;
        }
        for (k = 1; k < code; k++) {
            if (in[i] == 0u) {
                return -1;
            }
            out[o++] = in[i++]; /* o < i always: decoding in place is safe */
        }
        if (code != 0xFFu && i < n) {
            out[o++] = 0;
        }
    }
    return (long)o;
}

size_t upv_wire_encode(uint8_t *frame, size_t n, uint8_t *out, size_t cap)
{
    uint32_t crc = UPV_CRC32(frame, n);
    size_t enc;
    frame[n] = (uint8_t)crc;
    frame[n + 1u] = (uint8_t)(crc >> 8);
    frame[n + 2u] = (uint8_t)(crc >> 16);
    frame[n + 3u] = (uint8_t)(crc >> 24);
    if (cap < 3u) {
        return 0;
    }
    enc = upv_cobs_encode(frame, n + UPV_CRC_SIZE, out + 1, cap - 2u);
    if (enc == 0u) {
        return 0;
    }
    out[0] = 0;
    out[enc + 1u] = 0;
    return enc + 2u;
}

void upv_decoder_init(upv_decoder_t *d, uint8_t *buf, size_t cap)
{
    d->buf = buf;
    d->cap = cap < UPV_MAX_ENCODED ? cap : UPV_MAX_ENCODED;
    d->len = 0;
    d->discarding = false;
    d->stats.frames = d->stats.crc_errors = d->stats.cobs_errors = 0;
    d->stats.too_long = d->stats.too_short = d->stats.junk_bytes = 0;
}

void upv_decoder_reset(upv_decoder_t *d)
{
    d->len = 0;
    d->discarding = false;
}

static uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* Process one complete piece of d->len bytes (section 3.3, steps 1-4). */
static size_t process_piece(upv_decoder_t *d, const uint8_t **frame)
{
    size_t n = d->len;
    long raw = upv_cobs_decode(d->buf, n, d->buf);
    size_t m;
    if (raw < 0) {
        d->stats.cobs_errors++;
        d->stats.junk_bytes += (uint32_t)n;
        return 0;
    }
    m = (size_t)raw;
    if (m < UPV_MIN_RAW) {
        d->stats.too_short++;
        d->stats.junk_bytes += (uint32_t)n;
        return 0;
    }
    if (m > UPV_MAX_RAW) { /* COBS adds fewer bytes when the data has zeros */
        d->stats.too_long++;
        d->stats.junk_bytes += (uint32_t)n;
        return 0;
    }
    if (UPV_CRC32(d->buf, m - UPV_CRC_SIZE) != rd32le(d->buf + m - UPV_CRC_SIZE)) {
        d->stats.crc_errors++;
        d->stats.junk_bytes += (uint32_t)n;
        return 0;
    }
    d->stats.frames++;
    *frame = d->buf;
    return m - UPV_CRC_SIZE;
}

size_t upv_decoder_push(upv_decoder_t *d, uint8_t byte, const uint8_t **frame)
{
    size_t got = 0;
    if (byte == 0u) {
        if (d->discarding) {
            d->discarding = false; /* the over-long piece ended here */
        } else if (d->len != 0u) {
            got = process_piece(d, frame);
        }
        d->len = 0;
        return got;
    }
    if (d->discarding) {
        d->stats.junk_bytes++;
        return 0;
    }
    if (d->len >= d->cap) { /* this byte makes the piece longer than MAX_ENCODED */
        d->stats.too_long++;
        d->stats.junk_bytes += (uint32_t)d->len + 1u;
        d->len = 0;
        d->discarding = true;
        return 0;
    }
    d->buf[d->len++] = byte;
    return 0;
}
