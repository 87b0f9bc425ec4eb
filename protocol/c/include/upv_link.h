/* upv_link.h - one end of the board <-> hub serial link, sans-IO (docs/protocol.md 8-10).
 *
 * Bytes in:  upv_link_feed(link, data, n, now_ms)   (from a UART ring buffer, main loop)
 * Messages:  upv_link_send(link, &msg, tag, now_ms)  (queued; sent reliably, MAC'd once keyed)
 * Timers:    upv_link_poll(link, now_ms)             (retransmissions, give-up, pending pure ACK)
 * Bytes out: the config's write() callback, one call per frame (feed it to UART TX / DMA).
 * Events:    the config's on_event() callback; upv_link_send() may be called from it.
 *
 * now_ms is any free-running millisecond tick (HAL_GetTick()); it may wrap. There is no global
 * state: everything lives in upv_link_t, which must not be copied after upv_link_init().
 */
#ifndef UPV_LINK_H
#define UPV_LINK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upv_cobs.h"
#include "upv_config.h"
#include "upv_mac.h"
#include "upv_msg.h"
#include "upv_sha256.h"

typedef enum { UPV_ROLE_BOARD = 0, UPV_ROLE_HUB = 1 } upv_role_t;

typedef enum {
    UPV_EV_MESSAGE = 1,        /* msg delivered; authenticated = MAC verified */
    UPV_EV_PEER_RESTARTED = 2, /* the peer has a new epoch (it rebooted or gave up) */
    UPV_EV_SEND_FAILED = 3,    /* a message was not acknowledged (msg_type, tag) */
    UPV_EV_AUTH_FAILED = 4,    /* a frame failed the MAC rules (msg_type) */
    UPV_EV_UNKNOWN = 5,        /* unknown message type or protocol version (msg_type, version) */
    UPV_EV_INVALID = 6         /* an authentic, in-sequence payload that does not decode */
} upv_event_kind_t;

typedef struct {
    upv_event_kind_t kind;
    uint8_t msg_type;
    uint8_t version;        /* UPV_EV_UNKNOWN */
    int reason;             /* UPV_EV_INVALID: a upv_err_t (upv_err_name() gives the spec name) */
    bool authenticated;     /* UPV_EV_MESSAGE */
    const upv_msg_t *msg;   /* UPV_EV_MESSAGE: valid only during the callback */
    uint32_t old_epoch;     /* UPV_EV_PEER_RESTARTED */
    uint32_t new_epoch;     /* UPV_EV_PEER_RESTARTED */
    uint32_t tag;           /* UPV_EV_SEND_FAILED: the caller's tag given to upv_link_send() */
} upv_event_t;

typedef struct {
    upv_role_t role;
    uint8_t addr;            /* 1..247 on RS-485, 0 point to point */
    uint32_t baud;           /* for the retransmission timeout */
    const uint8_t *key;      /* 32-byte board key, or NULL (a hub learns it from HELLO) */
    uint32_t epoch;          /* own epoch; 0 = draw one from random32() */
    uint32_t (*random32)(void *user);  /* true random source (STM32 RNG); required */
    void (*write)(void *user, const uint8_t *data, size_t n);           /* required */
    void (*on_event)(void *user, const upv_event_t *ev);               /* required */
    void *user;
    uint8_t rto_jitter_pct;  /* random 0..pct % added to each timeout (UPV_RTO_JITTER_PCT) */
} upv_link_config_t;

typedef struct {
    uint32_t frames_rx, frames_tx;
    uint32_t crc_errors, cobs_errors, too_long, too_short, junk_bytes;
    uint32_t retransmits, duplicates, out_of_order;
    uint32_t mac_failures, replays, send_failures;
    uint32_t stale_frames, filtered, unknown, invalid, peer_restarts;
} upv_link_stats_t;

typedef struct {
    uint8_t type;
    uint16_t seq;      /* assigned when first transmitted */
    uint16_t len;      /* payload bytes */
    uint16_t wire_len; /* wire bytes of its last transmission */
    uint32_t tag;
    uint8_t payload[UPV_TX_PAYLOAD_MAX];
} upv_tx_slot_t;

#define UPV_TX_FRAME_MAX (UPV_HEADER_SIZE + UPV_TX_PAYLOAD_MAX + UPV_TRAILER_SIZE)
#define UPV_EVENTS_MAX (UPV_TX_SLOTS + 2u)

typedef struct {
    upv_link_config_t cfg;
    upv_hmac_key_t key;
    bool keyed;
    uint32_t epoch, peer_epoch;
    uint8_t session; /* NO_PEER / PEER (upv_link.c table) */
    uint32_t retired[UPV_RETIRED_EPOCHS];
    uint8_t retired_n, retired_next;
    uint32_t tx_counter;      /* last MAC counter sent in this epoch */
    uint32_t rx_last_counter; /* last MAC counter taken from peer_epoch */
    uint16_t next_seq, rx_expected;
    upv_tx_slot_t slots[UPV_TX_SLOTS];
    uint8_t head, count, inflight; /* ring: the `inflight` oldest are in flight, then queued */
    uint8_t retries;
    bool timer_on, need_ack, down, renew_epoch;
    uint32_t deadline, now;
    upv_decoder_t dec;
    upv_msg_t rx_msg;
    upv_event_t events[UPV_EVENTS_MAX];
    uint8_t nev;
    upv_link_stats_t stats;
    uint8_t rx_buf[UPV_MAX_ENCODED];
    uint8_t tx_frame[UPV_TX_FRAME_MAX + UPV_CRC_SIZE];
    uint8_t tx_wire[UPV_WIRE_MAX_FOR(UPV_TX_FRAME_MAX)];
} upv_link_t;

int upv_link_init(upv_link_t *l, const upv_link_config_t *cfg);
/* Set (key != NULL) or clear the board key. Once keyed, every frame but HELLO/ACK is MAC'd. */
void upv_link_set_key(upv_link_t *l, const uint8_t *key);
/* Queue a message; `tag` comes back in UPV_EV_SEND_FAILED. UPV_OK or a negative upv_err_t. */
int upv_link_send(upv_link_t *l, const upv_msg_t *msg, uint32_t tag, uint32_t now_ms);
/* Feed received bytes. Never fails on bad input. Call upv_link_poll() after a batch. */
void upv_link_feed(upv_link_t *l, const uint8_t *data, size_t n, uint32_t now_ms);
/* Run what is due: retransmissions, give-up, and the pure ACK owed for frames received since
 * no data frame carried it. Call after each batch of bytes and at least every few ms. */
void upv_link_poll(upv_link_t *l, uint32_t now_ms);
/* When poll() must next run for the timers (false when no timer is running). */
bool upv_link_next_timeout(const upv_link_t *l, uint32_t *when_ms);
/* Messages queued or in flight (not yet acknowledged). */
unsigned upv_link_pending(const upv_link_t *l);
/* Forget a partial frame (port reopened). */
void upv_link_reset_rx(upv_link_t *l);
void upv_link_get_stats(const upv_link_t *l, upv_link_stats_t *out);
uint32_t upv_link_epoch(const upv_link_t *l);
uint32_t upv_link_peer_epoch(const upv_link_t *l);
/* The first retransmission timeout (ms) for `inflight_wire` bytes in flight at `baud`. */
uint32_t upv_rto0_ms(uint32_t baud, uint32_t inflight_wire);

#endif
