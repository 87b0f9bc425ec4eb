/* upv_link_int.h - internal: what upv_link.c (receive, sessions, API) and upv_link_tx.c
 * (the send half: window, timers, framing of outgoing frames) share. Not a public header. */
#ifndef UPV_LINK_INT_H
#define UPV_LINK_INT_H
#include "upv_link.h"

static inline upv_tx_slot_t *upv__slot_at(upv_link_t *l, unsigned i)
{
    return &l->slots[(l->head + i) % UPV_TX_SLOTS];
}

upv_event_t *upv__push_event(upv_link_t *l, upv_event_kind_t kind, uint8_t type);
uint32_t upv__rto_ms(upv_link_t *l);
/* SendFailed for everything queued or in flight; the send stream restarts at seq 1. */
void upv__fail_all(upv_link_t *l);
void upv__transmit(upv_link_t *l, upv_tx_slot_t *s);
void upv__send_pure_ack(upv_link_t *l);
/* Move queued messages into the window while there is room (and a peer epoch for MAC'd ones). */
void upv__pump(upv_link_t *l);
/* Apply a cumulative ACK; false when it is stale or bogus. */
bool upv__on_ack(upv_link_t *l, uint16_t ack);

#endif
