/* upv_link_tx.c - the send half of the link (docs/protocol.md 8.2, 8.4): frames queued in
 * slots, at most UPV_WINDOW in flight, cumulative ACKs, one go-back-N retransmission timer, and
 * the framing of every outgoing frame (header, payload, MAC trailer with a fresh counter). */
#include <string.h>

#include "upv_link_int.h"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

uint32_t upv_rto0_ms(uint32_t baud, uint32_t inflight_wire)
{
    uint32_t bytes = inflight_wire + UPV_ACK_WIRE + UPV_MAX_WIRE;
    uint64_t us = ((uint64_t)bytes * UPV_BITS_PER_BYTE * 1000000u + baud - 1u) / baud;
    return UPV_RTO_SLACK_MS + (uint32_t)((us + 999u) / 1000u);
}

uint32_t upv__rto_ms(upv_link_t *l)
{
    uint32_t inflight = 0, rto, backoff;
    unsigned i;
    for (i = 0; i < l->inflight; i++) {
        inflight += upv__slot_at(l, i)->wire_len;
    }
    for (backoff = 1, i = 0; i < l->retries && backoff < UPV_MAX_BACKOFF; i++) {
        backoff *= 2u; /* rto(k) = rto0 * min(2^k, UPV_MAX_BACKOFF) */
    }
    if (backoff > UPV_MAX_BACKOFF) {
        backoff = UPV_MAX_BACKOFF;
    }
    rto = upv_rto0_ms(l->cfg.baud, inflight) * backoff;
    if (l->cfg.rto_jitter_pct) {
        rto += (uint32_t)(((uint64_t)rto * (l->cfg.random32(l->cfg.user) %
                                            (l->cfg.rto_jitter_pct + 1u))) / 100u);
    }
    return rto;
}

void upv__fail_all(upv_link_t *l)
{
    while (l->count) {
        upv_tx_slot_t *s = upv__slot_at(l, 0);
        upv_event_t *e = upv__push_event(l, UPV_EV_SEND_FAILED, s->type);
        if (e) {
            e->tag = s->tag;
        }
        l->stats.send_failures++;
        l->head = (uint8_t)((l->head + 1u) % UPV_TX_SLOTS);
        l->count--;
    }
    l->inflight = 0;
    l->next_seq = 1;
    l->retries = 0;
    l->timer_on = false;
}

/* --- upv__transmit ------------------------------------------------------------------------------- */
static bool signs(const upv_link_t *l, uint8_t type)
{
    return l->keyed && !upv_type_is_unsigned(type);
}

static void emit(upv_link_t *l, const upv_header_t *h, const uint8_t *payload, size_t len,
                 bool mac, uint16_t *wire_len)
{
    uint8_t *f = l->tx_frame;
    size_t n = UPV_HEADER_SIZE + len, w;
    upv_header_pack(h, f);
    if (len) {
        memcpy(f + UPV_HEADER_SIZE, payload, len);
    }
    if (mac) {
        put32(f + n, l->tx_counter);
        upv_mac_tag(&l->key, f, n + UPV_COUNTER_SIZE, f + n + UPV_COUNTER_SIZE);
        n += UPV_TRAILER_SIZE;
    }
    w = upv_wire_encode(f, n, l->tx_wire, sizeof l->tx_wire);
    if (wire_len) {
        *wire_len = (uint16_t)w;
    }
    l->stats.frames_tx++;
    l->cfg.write(l->cfg.user, l->tx_wire, w);
}

static void fill_header(const upv_link_t *l, upv_header_t *h, uint8_t type, uint8_t flags,
                        uint16_t seq)
{
    h->version = UPV_PROTOCOL_VERSION;
    h->type = type;
    h->flags = (uint8_t)(flags | (l->peer_epoch ? UPV_F_ACK : 0u) |
                         (l->cfg.role == UPV_ROLE_HUB ? UPV_F_FROM_HUB : 0u));
    h->addr = l->cfg.addr;
    h->epoch = l->epoch;
    h->peer_epoch = l->peer_epoch;
    h->seq = seq;
    h->ack = (uint16_t)(l->rx_expected - 1u);
}

void upv__transmit(upv_link_t *l, upv_tx_slot_t *s)
{
    upv_header_t h;
    bool mac = signs(l, s->type);
    if (mac) {
        if (l->tx_counter == 0xFFFFFFFFu) {
            l->renew_epoch = true; /* counter exhausted: new epoch at the next poll */
            return;
        }
        l->tx_counter++; /* retransmissions included: every MAC'd frame gets a fresh counter */
    }
    fill_header(l, &h, s->type, (uint8_t)(UPV_F_RELIABLE | (mac ? UPV_F_MAC : 0u)), s->seq);
    emit(l, &h, s->payload, s->len, mac, &s->wire_len);
    l->need_ack = false; /* this frame carries our ACK state */
}

void upv__send_pure_ack(upv_link_t *l)
{
    upv_header_t h;
    fill_header(l, &h, UPV_T_ACK, 0, 0);
    emit(l, &h, NULL, 0, false, NULL);
    l->need_ack = false;
}

void upv__pump(upv_link_t *l)
{
    while (l->count > l->inflight && l->inflight < UPV_WINDOW) {
        upv_tx_slot_t *s = upv__slot_at(l, l->inflight);
        if (signs(l, s->type) && l->peer_epoch == 0u) {
            break; /* a MAC'd frame must name the peer's epoch: wait for its first frame */
        }
        s->seq = l->next_seq;
        l->next_seq = (uint16_t)(l->next_seq + 1u);
        l->inflight++;
        upv__transmit(l, s);
        if (!l->timer_on) {
            l->timer_on = true;
            l->deadline = l->now + upv__rto_ms(l);
        }
    }
}

bool upv__on_ack(upv_link_t *l, uint16_t ack)
{
    unsigned k;
    if (!l->inflight) {
        return false;
    }
    k = (uint16_t)(ack - upv__slot_at(l, 0)->seq) + 1u;
    if (k > l->inflight) {
        return false; /* stale or bogus */
    }
    l->head = (uint8_t)((l->head + k) % UPV_TX_SLOTS);
    l->count = (uint8_t)(l->count - k);
    l->inflight = (uint8_t)(l->inflight - k);
    l->retries = 0;
    l->timer_on = l->inflight != 0u;
    if (l->timer_on) {
        l->deadline = l->now + upv__rto_ms(l);
    }
    return true;
}

