/* upv_msg.h - the 16-byte header and every message of version 1 (docs/protocol.md 5 and 6).
 *
 * Decoded strings, lists and byte fields point INTO the payload they were decoded from (no
 * copies): they are valid as long as that buffer is. Encoding reads the same structs.
 */
#ifndef UPV_MSG_H
#define UPV_MSG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upv_config.h"

/* One error shape for the whole library: 0 = OK, a negative upv_err_t otherwise. */
typedef enum {
    UPV_OK = 0,
    UPV_E_TRUNCATED = -1,    /* a field runs past the end of the payload */
    UPV_E_BAD_VALUE = -2,    /* an enum or bool value not defined in this version */
    UPV_E_BAD_UTF8 = -3,     /* a string that is not UTF-8 (or a currency that is not ASCII) */
    UPV_E_BAD_LENGTH = -4,   /* a length that disagrees with its data (bitmap, list over limit) */
    UPV_E_UNKNOWN_TYPE = -5, /* no message with this type code in this version */
    UPV_E_NO_ROOM = -6,      /* the output buffer (or UPV_TX_PAYLOAD_MAX) is too small */
    UPV_E_RANGE = -7,        /* a field to encode is out of range (string > 255 bytes, ...) */
    UPV_E_QUEUE_FULL = -8,   /* UPV_TX_SLOTS messages unacknowledged: the peer is not answering */
    UPV_E_NO_KEY = -9,       /* CANCEL / VEND_APPROVED / VEND_RESULT need a link key */
    UPV_E_ARG = -10          /* a bad argument (NULL, addr > 247, baud 0, no random source) */
} upv_err_t;

/* The spec's reason name of an error ("truncated", "bad_value", ...). */
const char *upv_err_name(int err);

enum {
    UPV_F_RELIABLE = 0x01u,
    UPV_F_ACK = 0x02u,
    UPV_F_MAC = 0x04u,
    UPV_F_FROM_HUB = 0x08u
};

typedef enum {
    UPV_T_ACK = 0x00,
    UPV_T_HELLO = 0x01,
    UPV_T_HELLO_ACK = 0x02,
    UPV_T_STATUS = 0x03,
    UPV_T_STATUS_REQUEST = 0x04,
    UPV_T_ORDER_REQUEST = 0x10,
    UPV_T_PAYMENT_QR = 0x11,
    UPV_T_ORDER_REJECTED = 0x12,
    UPV_T_CANCEL = 0x13,
    UPV_T_VEND_APPROVED = 0x14,
    UPV_T_VEND_STARTED = 0x15,
    UPV_T_VEND_RESULT = 0x16,
    UPV_T_LOG = 0x20
} upv_type_t;

typedef enum { UPV_REJECT_OFFLINE = 1, UPV_REJECT_UNKNOWN_PRODUCT, UPV_REJECT_SOLD_OUT,
               UPV_REJECT_BUSY, UPV_REJECT_OUT_OF_SERVICE, UPV_REJECT_INVALID,
               UPV_REJECT_STORAGE_FULL, UPV_REJECT_INTERNAL } upv_reject_reason_t;
typedef enum { UPV_CANCEL_CUSTOMER = 1, UPV_CANCEL_EXPIRED, UPV_CANCEL_OPERATOR,
               UPV_CANCEL_BOARD_RESET, UPV_CANCEL_PAYMENT_FAILED, UPV_CANCEL_HUB
} upv_cancel_reason_t;
typedef enum { UPV_OUTCOME_NONE = 0, UPV_OUTCOME_SUCCESS, UPV_OUTCOME_FAILED,
               UPV_OUTCOME_NOT_STARTED, UPV_OUTCOME_IN_PROGRESS } upv_outcome_t;
typedef enum { UPV_STATE_IDLE = 0, UPV_STATE_ORDERING, UPV_STATE_AWAITING_PAYMENT,
               UPV_STATE_VENDING, UPV_STATE_OUT_OF_SERVICE, UPV_STATE_ERROR } upv_board_state_t;
#define UPV_REJECT_MAX 8u
#define UPV_CANCEL_MAX 6u
#define UPV_OUTCOME_MAX 4u
#define UPV_STATE_MAX 5u

typedef struct {
    uint8_t version, type, flags, addr;
    uint32_t epoch;      /* the sender's */
    uint32_t peer_epoch; /* the last epoch the sender accepted from its peer */
    uint16_t seq, ack;
} upv_header_t;

void upv_header_pack(const upv_header_t *h, uint8_t out[UPV_HEADER_SIZE]);
void upv_header_unpack(const uint8_t in[UPV_HEADER_SIZE], upv_header_t *h);

/* A string: len bytes of UTF-8 at p (not terminated). str fields hold <= 255, str16 <= 65535. */
typedef struct {
    const uint8_t *p;
    uint16_t len;
} upv_str_t;

typedef struct {
    uint8_t count;
    upv_str_t item[UPV_LIST_MAX];
} upv_strlist_t;

typedef struct {
    uint8_t uid[UPV_UID_SIZE];
    upv_str_t fw_version;
    uint8_t proto_min, proto_max;
    uint32_t capabilities;
    upv_strlist_t products;
} upv_hello_t;

typedef struct {
    uint8_t version;
    uint32_t unix_time;
    bool time_synced;
    uint16_t heartbeat_s;
    bool in_service;
} upv_hello_ack_t;

typedef struct {
    uint8_t state; /* upv_board_state_t */
    uint16_t error_code;
    uint32_t uptime_s, vends_ok, vends_failed;
    upv_str_t last_order;
    uint8_t last_outcome; /* upv_outcome_t */
    uint8_t last_dispensed;
} upv_status_t;

typedef struct {
    uint16_t request_id;
    upv_str_t product;
    upv_strlist_t options;
    uint8_t quantity;
} upv_order_request_t;

typedef struct {
    uint16_t request_id;
    upv_str_t order_ref;
    uint32_t amount_paise;
    uint8_t currency[3];
    uint16_t expires_in_s;
    upv_str_t upi_uri; /* str16 */
    uint8_t qr_size;
    const uint8_t *qr_bitmap; /* (qr_size * qr_size + 7) / 8 bytes */
} upv_payment_qr_t;

typedef struct {
    uint16_t request_id;
    uint8_t reason; /* upv_reject_reason_t */
    upv_str_t message;
} upv_order_rejected_t;

typedef struct {
    upv_str_t order_ref;
    uint8_t reason; /* upv_cancel_reason_t */
} upv_cancel_t;

typedef struct {
    upv_str_t order_ref;
    uint8_t auth[UPV_AUTH_SIZE];
    uint8_t quantity;
    uint16_t deadline_s;
} upv_vend_approved_t;

typedef struct {
    upv_str_t order_ref;
} upv_vend_started_t;

typedef struct {
    upv_str_t order_ref;
    uint8_t outcome; /* upv_outcome_t */
    uint16_t reason;
    uint8_t dispensed;
} upv_vend_result_t;

typedef struct {
    uint8_t level;
    uint16_t code;
    upv_str_t text;
} upv_log_t;

typedef struct {
    uint8_t type; /* upv_type_t; UPV_T_STATUS_REQUEST has no fields */
    union {
        upv_hello_t hello;
        upv_hello_ack_t hello_ack;
        upv_status_t status;
        upv_order_request_t order_request;
        upv_payment_qr_t payment_qr;
        upv_order_rejected_t order_rejected;
        upv_cancel_t cancel;
        upv_vend_approved_t vend_approved;
        upv_vend_started_t vend_started;
        upv_vend_result_t vend_result;
        upv_log_t log;
    } u;
} upv_msg_t;

/* Bytes of a QR bitmap of side qr_size. */
#define UPV_QR_BYTES(qr_size) ((((size_t)(qr_size)) * (qr_size) + 7u) / 8u)

/* Encode m's payload into out (cap bytes); *len gets its length. Checks every field (ranges,
 * enums, UTF-8) and returns UPV_OK or a negative upv_err_t. */
int upv_msg_encode(const upv_msg_t *m, uint8_t *out, size_t cap, size_t *len);
/* Decode a payload of type `type`. Bytes after the last known field are ignored (section 12).
 * Returns UPV_OK, UPV_E_UNKNOWN_TYPE, or the reason the payload is invalid. */
int upv_msg_decode(uint8_t type, const uint8_t *p, size_t n, upv_msg_t *m);

/* true for the types that are acted upon only with a verified MAC (CANCEL, VEND_*). */
bool upv_type_is_money(uint8_t type);
/* true for the types that are never MAC'd (HELLO, ACK). */
bool upv_type_is_unsigned(uint8_t type);
/* A string from a NUL-terminated C string (for building messages). */
upv_str_t upv_str(const char *s);
/* true when s holds exactly the NUL-terminated c. */
bool upv_str_eq(upv_str_t s, const char *c);
/* true when the n bytes at p are well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool upv_utf8_valid(const uint8_t *p, size_t n);

#endif
