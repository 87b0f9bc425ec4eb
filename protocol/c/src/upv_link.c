/* upv_link.c - receive pipeline (section 10), reliable transport (8), sessions (9).
 *
 * Receive pipeline for each CRC-valid frame, in this order: version -> direction/address ->
 * epoch sanity -> stale session -> MAC (tag, then counter) -> peer epoch -> ACK field ->
 * sequencing -> commit MAC counter -> decode and deliver. Events are collected while a frame is
 * processed and dispatched once it is done, so a callback that sends sees a consistent link.
 */
#include "upv_link.h"

#include <string.h>

#include "upv_crc32.h"
#include "upv_link_int.h"

/* --- session table (docs/protocol.md 9.2, one table) ---------------------------------------- */
enum { S_NO_PEER = 0, S_PEER = 1, S_COUNT = 2 };
enum { E_NEW_PEER_EPOCH = 0, E_GIVE_UP = 1, E_COUNT = 2 };
typedef enum {
    A_END = 0,
    A_RETIRE_PEER,   /* remember the old peer epoch and refuse it from now on */
    A_FAIL_PENDING,  /* SendFailed for everything queued or in flight; send stream to seq 1 */
    A_NEW_OWN_EPOCH, /* draw a new own epoch; MAC counter back to 1 */
    A_ADOPT_PEER,    /* peer_epoch = the frame's epoch; its replay state from 0 */
    A_RESET_RX,      /* the peer's stream towards us starts again at seq 1 */
    A_REPORT_RESTART /* UPV_EV_PEER_RESTARTED */
} action_t;

typedef struct {
    uint8_t next;
    uint8_t actions[6];
} transition_t;

static const transition_t SESSION[S_COUNT][E_COUNT] = {
    /* NO_PEER */ {
        /* first contact restarts nothing: a sender that never heard us holds all from seq 1 */
        {S_PEER, {A_ADOPT_PEER, A_RESET_RX, A_END}},
        {S_NO_PEER, {A_FAIL_PENDING, A_NEW_OWN_EPOCH, A_RESET_RX, A_END}},
    },
    /* PEER */ {
        {S_PEER, {A_RETIRE_PEER, A_FAIL_PENDING, A_ADOPT_PEER, A_RESET_RX, A_REPORT_RESTART,
                  A_END}},
        {S_PEER, {A_FAIL_PENDING, A_NEW_OWN_EPOCH, A_RESET_RX, A_END}},
    },
};

/* --- helpers ------------------------------------------------------------------------------- */
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static bool time_reached(uint32_t now, uint32_t when)
{
    return (int32_t)(now - when) >= 0;
}

upv_event_t *upv__push_event(upv_link_t *l, upv_event_kind_t kind, uint8_t type)
{
    upv_event_t *e;
    if (l->nev >= UPV_EVENTS_MAX) {
        return NULL; /* cannot happen: at most one per slot plus two per frame */
    }
    e = &l->events[l->nev++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->msg_type = type;
    return e;
}

static void dispatch(upv_link_t *l)
{
    uint8_t i;
    for (i = 0; i < l->nev; i++) {
        upv_event_t ev = l->events[i]; /* a copy: the callback may send (never feed/poll) */
        l->cfg.on_event(l->cfg.user, &ev);
    }
    l->nev = 0;
}

static uint32_t draw_epoch(upv_link_t *l, uint32_t avoid1, uint32_t avoid2)
{
    uint32_t e = 0;
    unsigned tries;
    for (tries = 0; tries < 64u; tries++) {
        e = l->cfg.random32(l->cfg.user);
        if (e != 0u && e != avoid1 && e != avoid2) {
            return e;
        }
    }
    do { /* a broken random source: still never 0, never the old or the peer's epoch */
        e++;
    } while (e == 0u || e == avoid1 || e == avoid2);
    return e;
}

static bool is_retired(const upv_link_t *l, uint32_t epoch)
{
    uint8_t i;
    for (i = 0; i < l->retired_n; i++) {
        if (l->retired[i] == epoch) {
            return true;
        }
    }
    return false;
}

static void session_event(upv_link_t *l, unsigned event, uint32_t epoch)
{
    const transition_t *t = &SESSION[l->session][event];
    uint32_t old_peer = l->peer_epoch;
    unsigned i;
    l->session = t->next;
    for (i = 0; i < sizeof t->actions && t->actions[i] != A_END; i++) {
        switch ((action_t)t->actions[i]) {
        case A_RETIRE_PEER:
            l->retired[l->retired_next] = old_peer;
            l->retired_next = (uint8_t)((l->retired_next + 1u) % UPV_RETIRED_EPOCHS);
            if (l->retired_n < UPV_RETIRED_EPOCHS) {
                l->retired_n++;
            }
            l->stats.peer_restarts++;
            break;
        case A_FAIL_PENDING:
            upv__fail_all(l);
            break;
        case A_NEW_OWN_EPOCH:
            l->epoch = draw_epoch(l, l->epoch, l->peer_epoch);
            l->tx_counter = 0;
            break;
        case A_ADOPT_PEER:
            l->peer_epoch = epoch;
            l->rx_last_counter = 0;
            break;
        case A_RESET_RX:
            l->rx_expected = 1;
            break;
        case A_REPORT_RESTART: {
            upv_event_t *e = upv__push_event(l, UPV_EV_PEER_RESTARTED, 0);
            if (e) {
                e->old_epoch = old_peer;
                e->new_epoch = epoch;
            }
            break;
        }
        case A_END:
            break;
        }
    }
}

/* --- receive -------------------------------------------------------------------------------- */
static void auth_failed(upv_link_t *l, uint8_t type, uint32_t *counter)
{
    (*counter)++;
    (void)upv__push_event(l, UPV_EV_AUTH_FAILED, type);
}

static void deliver(upv_link_t *l, const upv_header_t *h, const uint8_t *p, size_t n, bool auth)
{
    int rc = upv_msg_decode(h->type, p, n, &l->rx_msg);
    upv_event_t *e;
    if (rc == UPV_E_UNKNOWN_TYPE) {
        l->stats.unknown++;
        e = upv__push_event(l, UPV_EV_UNKNOWN, h->type);
        if (e) {
            e->version = h->version;
        }
    } else if (rc != UPV_OK) {
        l->stats.invalid++;
        e = upv__push_event(l, UPV_EV_INVALID, h->type);
        if (e) {
            e->reason = rc;
        }
    } else {
        e = upv__push_event(l, UPV_EV_MESSAGE, h->type);
        if (e) {
            e->msg = &l->rx_msg;
            e->authenticated = auth;
        }
    }
}

static void on_frame(upv_link_t *l, const uint8_t *frame, size_t n)
{
    upv_header_t h;
    const uint8_t *body = frame + UPV_HEADER_SIZE;
    size_t blen = n - UPV_HEADER_SIZE;
    bool pure_ack, authenticated = false;
    uint32_t counter = 0;
    uint8_t own_dir = l->cfg.role == UPV_ROLE_HUB ? UPV_F_FROM_HUB : 0u;

    upv_header_unpack(frame, &h);
    l->stats.frames_rx++;
    if (h.version != UPV_PROTOCOL_VERSION) {                       /* 1. version */
        upv_event_t *e = upv__push_event(l, UPV_EV_UNKNOWN, h.type);
        l->stats.unknown++;
        if (e) {
            e->version = h.version;
        }
        return;
    }
    if ((h.flags & UPV_F_FROM_HUB) == own_dir || h.addr != l->cfg.addr) {
        l->stats.filtered++;                                       /* 2. direction, address */
        return;
    }
    if (h.epoch == 0u || is_retired(l, h.epoch)) {                  /* 3. epoch sanity */
        l->stats.stale_frames++;
        return;
    }
    pure_ack = h.type == UPV_T_ACK;
    if (!pure_ack && h.peer_epoch != 0u && h.peer_epoch != l->epoch) {
        l->stats.stale_frames++;                                   /* 4. stale session */
        l->need_ack = true; /* our pure ACK tells the sender our epoch */
        return;
    }
    if ((h.flags & UPV_F_MAC) && l->keyed) {                        /* 5. MAC */
        uint8_t tag[UPV_TAG_SIZE];
        uint32_t last;
        if (blen < UPV_TRAILER_SIZE || h.peer_epoch != l->epoch) {
            auth_failed(l, h.type, &l->stats.mac_failures);
            return;
        }
        upv_mac_tag(&l->key, frame, n - UPV_TAG_SIZE, tag);
        if (!upv_ct_equal(tag, frame + n - UPV_TAG_SIZE, UPV_TAG_SIZE)) {
            auth_failed(l, h.type, &l->stats.mac_failures);
            return;
        }
        counter = get32(frame + n - UPV_TRAILER_SIZE);
        last = h.epoch == l->peer_epoch ? l->rx_last_counter : 0u;
        if (counter <= last) {
            auth_failed(l, h.type, &l->stats.replays);
            return;
        }
        blen -= UPV_TRAILER_SIZE;
        authenticated = true;
    } else if (h.flags & UPV_F_MAC) {
        if (blen < UPV_TRAILER_SIZE) { /* unkeyed: strip the trailer, unauthenticated */
            auth_failed(l, h.type, &l->stats.mac_failures);
            return;
        }
        blen -= UPV_TRAILER_SIZE;
    } else if (l->keyed && !upv_type_is_unsigned(h.type)) {
        auth_failed(l, h.type, &l->stats.mac_failures);
        return;
    }
    if (upv_type_is_money(h.type) && !authenticated) {
        auth_failed(l, h.type, &l->stats.mac_failures);
        return;
    }
    if (h.epoch != l->peer_epoch) {                                 /* 6. peer epoch */
        session_event(l, E_NEW_PEER_EPOCH, h.epoch);
    }
    if ((h.flags & UPV_F_ACK) && h.peer_epoch == l->epoch && upv__on_ack(l, h.ack)) {
        l->down = false;                                           /* 7. ACK field */
    }
    if (pure_ack) {                                                /* 8. pure ACK: done */
        return;
    }
    if (h.flags & UPV_F_RELIABLE) {                                 /* 9. sequencing */
        uint16_t d = (uint16_t)(h.seq - l->rx_expected);
        l->need_ack = true;
        if (d != 0u) {
            if (d >= 0x8000u) {
                l->stats.duplicates++;
            } else {
                l->stats.out_of_order++;
            }
            return; /* not taken: its counter is not committed either */
        }
        l->rx_expected = (uint16_t)(l->rx_expected + 1u);
    }
    if (authenticated) {                                           /* 10. commit counter */
        l->rx_last_counter = counter;
    }
    deliver(l, &h, body, blen, authenticated);                     /* 11. decode */
}

/* --- public API ----------------------------------------------------------------------------- */
int upv_link_init(upv_link_t *l, const upv_link_config_t *cfg)
{
    if (l == NULL || cfg == NULL || cfg->random32 == NULL || cfg->write == NULL ||
        cfg->on_event == NULL || cfg->baud == 0u || cfg->addr > UPV_MAX_ADDR ||
        cfg->rto_jitter_pct > 100u) {
        return UPV_E_ARG;
    }
    memset(l, 0, sizeof *l);
    l->cfg = *cfg;
    l->session = S_NO_PEER;
    l->next_seq = 1;
    l->rx_expected = 1;
    l->epoch = cfg->epoch ? cfg->epoch : draw_epoch(l, 0, 0);
    upv_decoder_init(&l->dec, l->rx_buf, sizeof l->rx_buf);
    upv_link_set_key(l, cfg->key);
    l->cfg.key = NULL; /* the key lives only in the HMAC state */
    return UPV_OK;
}

void upv_link_set_key(upv_link_t *l, const uint8_t *key)
{
    if (key) {
        upv_hmac_key(&l->key, key, UPV_KEY_SIZE);
        l->keyed = true;
    } else {
        upv_hmac_key_wipe(&l->key);
        l->keyed = false;
    }
}

int upv_link_send(upv_link_t *l, const upv_msg_t *msg, uint32_t tag, uint32_t now_ms)
{
    upv_tx_slot_t *s;
    size_t len = 0;
    int rc;
    if (msg == NULL || msg->type == UPV_T_ACK) {
        return UPV_E_ARG;
    }
    if (upv_type_is_money(msg->type) && !l->keyed) {
        return UPV_E_NO_KEY;
    }
    if (l->count >= UPV_TX_SLOTS) {
        return UPV_E_QUEUE_FULL;
    }
    s = upv__slot_at(l, l->count);
    rc = upv_msg_encode(msg, s->payload, sizeof s->payload, &len);
    if (rc != UPV_OK) {
        return rc;
    }
    s->type = msg->type;
    s->len = (uint16_t)len;
    s->seq = 0;
    s->wire_len = (uint16_t)UPV_WIRE_MAX_FOR(UPV_HEADER_SIZE + len + UPV_TRAILER_SIZE);
    s->tag = tag;
    l->count++;
    l->now = now_ms;
    upv__pump(l);
    return UPV_OK;
}

void upv_link_feed(upv_link_t *l, const uint8_t *data, size_t n, uint32_t now_ms)
{
    size_t i;
    l->now = now_ms;
    for (i = 0; i < n; i++) {
        const uint8_t *frame = NULL;
        size_t len = upv_decoder_push(&l->dec, data[i], &frame);
        if (len) {
            on_frame(l, frame, len);
            dispatch(l);
        }
    }
    upv__pump(l);
}

static void give_up(upv_link_t *l)
{
    session_event(l, E_GIVE_UP, 0);
    l->down = true;
}

void upv_link_poll(upv_link_t *l, uint32_t now_ms)
{
    l->now = now_ms;
    if (l->renew_epoch) {
        l->renew_epoch = false;
        give_up(l);
    } else if (l->timer_on && time_reached(now_ms, l->deadline)) {
        l->retries++;
        if (l->retries > UPV_MAX_RETRIES) {
            give_up(l);
        } else {
            unsigned i;
            for (i = 0; i < l->inflight; i++) {
                upv__transmit(l, upv__slot_at(l, i));
                l->stats.retransmits++;
            }
            l->deadline = now_ms + upv__rto_ms(l);
        }
    }
    dispatch(l);
    upv__pump(l);
    if (l->need_ack) {
        upv__send_pure_ack(l);
    }
}

bool upv_link_next_timeout(const upv_link_t *l, uint32_t *when_ms)
{
    if (l->renew_epoch) {
        *when_ms = l->now;
        return true;
    }
    if (!l->timer_on) {
        return false;
    }
    *when_ms = l->deadline;
    return true;
}

unsigned upv_link_pending(const upv_link_t *l)
{
    return l->count;
}

void upv_link_reset_rx(upv_link_t *l)
{
    upv_decoder_reset(&l->dec);
}

void upv_link_get_stats(const upv_link_t *l, upv_link_stats_t *out)
{
    *out = l->stats;
    out->crc_errors = l->dec.stats.crc_errors;
    out->cobs_errors = l->dec.stats.cobs_errors;
    out->too_long = l->dec.stats.too_long;
    out->too_short = l->dec.stats.too_short;
    out->junk_bytes = l->dec.stats.junk_bytes;
}

uint32_t upv_link_epoch(const upv_link_t *l)
{
    return l->epoch;
}

uint32_t upv_link_peer_epoch(const upv_link_t *l)
{
    return l->peer_epoch;
}
