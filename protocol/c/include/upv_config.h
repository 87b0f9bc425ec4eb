/* upv_config.h - sizes, limits and hooks of the board-side protocol library (docs/protocol.md).
 *
 * Every buffer in the library is sized here, at compile time. Override any UPV_* tunable with
 * -D on the command line, or put them in a header named by -DUPV_USER_CONFIG="my_upv.h".
 * The protocol constants (first block) are fixed by the spec: do not change them.
 */
#ifndef UPV_CONFIG_H
#define UPV_CONFIG_H

#ifdef UPV_USER_CONFIG
#include UPV_USER_CONFIG
#endif

/* --- fixed by the spec (sections 3.2, 5, 7, 8, 15) ------------------------------------------ */
#define UPV_PROTOCOL_VERSION 1u
#define UPV_HEADER_SIZE 16u
#define UPV_MAX_BODY 1024u
#define UPV_MAX_FRAME (UPV_HEADER_SIZE + UPV_MAX_BODY)       /* 1040 */
#define UPV_CRC_SIZE 4u
#define UPV_MAX_RAW (UPV_MAX_FRAME + UPV_CRC_SIZE)            /* 1044 */
#define UPV_MIN_RAW (UPV_HEADER_SIZE + UPV_CRC_SIZE)          /* 20 */
#define UPV_COBS_MAX(n) ((n) + ((n) + 253u) / 254u + ((n) == 0u ? 1u : 0u))
#define UPV_MAX_ENCODED UPV_COBS_MAX(UPV_MAX_RAW)              /* 1049 */
#define UPV_MAX_WIRE (UPV_MAX_ENCODED + 2u)                    /* 1051 */
#define UPV_WIRE_MAX_FOR(frame_len) (UPV_COBS_MAX((frame_len) + UPV_CRC_SIZE) + 2u)
#define UPV_ACK_WIRE 23u                                       /* a pure ACK on the wire */
#define UPV_KEY_SIZE 32u
#define UPV_UID_SIZE 12u
#define UPV_AUTH_SIZE 8u
#define UPV_TAG_SIZE 8u
#define UPV_COUNTER_SIZE 4u
#define UPV_TRAILER_SIZE (UPV_COUNTER_SIZE + UPV_TAG_SIZE)    /* 12 */
#define UPV_MAX_ADDR 247u
#define UPV_BITS_PER_BYTE 10u                                  /* UART 8N1 */

/* --- tunables ------------------------------------------------------------------------------- */
#ifndef UPV_WINDOW
#define UPV_WINDOW 4u              /* reliable frames in flight (spec W = 4) */
#endif
#ifndef UPV_TX_SLOTS
#define UPV_TX_SLOTS 8u            /* messages queued or in flight; >= UPV_WINDOW */
#endif
#ifndef UPV_TX_PAYLOAD_MAX
#define UPV_TX_PAYLOAD_MAX 240u    /* largest payload this side sends (a board's HELLO/STATUS/LOG) */
#endif
#ifndef UPV_LIST_MAX
#define UPV_LIST_MAX 16u           /* list<str> items a decoded message can hold */
#endif
#ifndef UPV_RETIRED_EPOCHS
#define UPV_RETIRED_EPOCHS 16u     /* replaced peer epochs remembered and refused (spec >= 16) */
#endif
#ifndef UPV_MAX_RETRIES
#define UPV_MAX_RETRIES 5u         /* resends of the oldest frame before SendFailed */
#endif
#ifndef UPV_MAX_BACKOFF
#define UPV_MAX_BACKOFF 8u         /* rto(k) = rto0 * min(2^k, UPV_MAX_BACKOFF) */
#endif
#ifndef UPV_RTO_SLACK_MS
#define UPV_RTO_SLACK_MS 50u       /* T_slack of section 8.4 */
#endif
#ifndef UPV_RTO_JITTER_PCT
#define UPV_RTO_JITTER_PCT 25u     /* random 0..25 % added to every timeout (section 2, RS-485) */
#endif

/* --- CRC hook ------------------------------------------------------------------------------- */
/* UPV_CRC32(p, n) must return CRC-32/ISO-HDLC of n bytes (check "123456789" = 0xCBF43926).
 * Default: the table routine upv_crc32(). For an STM32 hardware CRC unit, define
 * UPV_CRC32(p, n) as your function (see README.md); the library always passes whole frames. */
#ifndef UPV_CRC32
#define UPV_CRC32(p, n) upv_crc32((p), (n))
#endif

#if UPV_TX_SLOTS < UPV_WINDOW
#error "UPV_TX_SLOTS must be at least UPV_WINDOW"
#endif
#if UPV_TX_PAYLOAD_MAX + UPV_TRAILER_SIZE > UPV_MAX_BODY
#error "UPV_TX_PAYLOAD_MAX + trailer exceeds MAX_BODY"
#endif
#if UPV_TX_SLOTS > 255 || UPV_WINDOW < 1
#error "UPV_TX_SLOTS must be 1..255"
#endif

#endif /* UPV_CONFIG_H */
