#include "testlink.h"

#include <string.h>

#include "upv_cobs.h"
#include "vectors.h"

uint32_t tl_random(tl_t *t)
{
    uint32_t x = t->rng; /* xorshift32: deterministic runs */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    t->rng = x;
    return x;
}

static uint32_t rnd(void *user) { return tl_random((tl_t *)user); }

static void on_write(void *user, const uint8_t *data, size_t n)
{
    tl_t *t = (tl_t *)user;
    if (t->out_n + n <= sizeof t->out) {
        memcpy(t->out + t->out_n, data, n);
        t->out_n += n;
    }
    t->out_writes++;
}

static void on_event(void *user, const upv_event_t *ev)
{
    tl_t *t = (tl_t *)user;
    if (t->nev < TL_MAX_EVENTS) {
        t->ev[t->nev++] = *ev;
    }
    if (ev->kind == UPV_EV_MESSAGE) {
        t->messages++;
        if (t->expect && !msg_equal(ev->msg, t->expect)) {
            t->expect_mismatch++;
        }
    }
}

int tl_init(tl_t *t, upv_role_t role, uint8_t addr, uint32_t epoch, const uint8_t *key)
{
    upv_link_config_t c;
    memset(t, 0, sizeof *t);
    t->rng = 0x12345678u ^ epoch;
    memset(&c, 0, sizeof c);
    c.role = role;
    c.addr = addr;
    c.baud = 115200;
    c.key = key;
    c.epoch = epoch;
    c.random32 = rnd;
    c.write = on_write;
    c.on_event = on_event;
    c.user = t;
    c.rto_jitter_pct = 0;
    return upv_link_init(&t->link, &c);
}

void tl_clear(tl_t *t)
{
    t->out_n = 0;
    t->out_writes = 0;
    t->nev = 0;
    t->messages = 0;
    t->expect_mismatch = 0;
}

static bool str_eq(upv_str_t a, upv_str_t b)
{
    return a.len == b.len && (a.len == 0u || memcmp(a.p, b.p, a.len) == 0);
}

static bool list_eq(const upv_strlist_t *a, const upv_strlist_t *b)
{
    unsigned i;
    if (a->count != b->count) {
        return false;
    }
    for (i = 0; i < a->count; i++) {
        if (!str_eq(a->item[i], b->item[i])) {
            return false;
        }
    }
    return true;
}

bool msg_equal(const upv_msg_t *a, const upv_msg_t *b)
{
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case UPV_T_HELLO: {
        const upv_hello_t *x = &a->u.hello, *y = &b->u.hello;
        return memcmp(x->uid, y->uid, sizeof x->uid) == 0 && str_eq(x->fw_version, y->fw_version) &&
               x->proto_min == y->proto_min && x->proto_max == y->proto_max &&
               x->capabilities == y->capabilities && list_eq(&x->products, &y->products);
    }
    case UPV_T_HELLO_ACK: {
        const upv_hello_ack_t *x = &a->u.hello_ack, *y = &b->u.hello_ack;
        return x->version == y->version && x->unix_time == y->unix_time &&
               x->time_synced == y->time_synced && x->heartbeat_s == y->heartbeat_s &&
               x->in_service == y->in_service;
    }
    case UPV_T_STATUS: {
        const upv_status_t *x = &a->u.status, *y = &b->u.status;
        return x->state == y->state && x->error_code == y->error_code &&
               x->uptime_s == y->uptime_s && x->vends_ok == y->vends_ok &&
               x->vends_failed == y->vends_failed && str_eq(x->last_order, y->last_order) &&
               x->last_outcome == y->last_outcome && x->last_dispensed == y->last_dispensed;
    }
    case UPV_T_STATUS_REQUEST:
        return true;
    case UPV_T_ORDER_REQUEST: {
        const upv_order_request_t *x = &a->u.order_request, *y = &b->u.order_request;
        return x->request_id == y->request_id && str_eq(x->product, y->product) &&
               list_eq(&x->options, &y->options) && x->quantity == y->quantity;
    }
    case UPV_T_PAYMENT_QR: {
        const upv_payment_qr_t *x = &a->u.payment_qr, *y = &b->u.payment_qr;
        size_t nb = UPV_QR_BYTES(x->qr_size);
        return x->request_id == y->request_id && str_eq(x->order_ref, y->order_ref) &&
               x->amount_paise == y->amount_paise &&
               memcmp(x->currency, y->currency, 3) == 0 && x->expires_in_s == y->expires_in_s &&
               str_eq(x->upi_uri, y->upi_uri) && x->qr_size == y->qr_size &&
               (nb == 0u || memcmp(x->qr_bitmap, y->qr_bitmap, nb) == 0);
    }
    case UPV_T_ORDER_REJECTED: {
        const upv_order_rejected_t *x = &a->u.order_rejected, *y = &b->u.order_rejected;
        return x->request_id == y->request_id && x->reason == y->reason &&
               str_eq(x->message, y->message);
    }
    case UPV_T_CANCEL:
        return str_eq(a->u.cancel.order_ref, b->u.cancel.order_ref) &&
               a->u.cancel.reason == b->u.cancel.reason;
    case UPV_T_VEND_APPROVED: {
        const upv_vend_approved_t *x = &a->u.vend_approved, *y = &b->u.vend_approved;
        return str_eq(x->order_ref, y->order_ref) && memcmp(x->auth, y->auth, 8) == 0 &&
               x->quantity == y->quantity && x->deadline_s == y->deadline_s;
    }
    case UPV_T_VEND_STARTED:
        return str_eq(a->u.vend_started.order_ref, b->u.vend_started.order_ref);
    case UPV_T_VEND_RESULT: {
        const upv_vend_result_t *x = &a->u.vend_result, *y = &b->u.vend_result;
        return str_eq(x->order_ref, y->order_ref) && x->outcome == y->outcome &&
               x->reason == y->reason && x->dispensed == y->dispensed;
    }
    case UPV_T_LOG:
        return a->u.log.level == b->u.log.level && a->u.log.code == b->u.log.code &&
               str_eq(a->u.log.text, b->u.log.text);
    default:
        return false;
    }
}

size_t first_frame(const uint8_t *wire, size_t n, uint8_t *out, size_t cap)
{
    upv_decoder_t d;
    uint8_t buf[UPV_MAX_ENCODED];
    size_t i;
    upv_decoder_init(&d, buf, sizeof buf);
    for (i = 0; i < n; i++) {
        const uint8_t *f = NULL;
        size_t len = upv_decoder_push(&d, wire[i], &f);
        if (len) {
            if (len > cap) {
                return 0;
            }
            memcpy(out, f, len);
            return len;
        }
    }
    return 0;
}

/* A board link that has received the hub's frames before entry `upto` (and sent nothing). */
void board_before(tl_t *t, unsigned upto)
{
    unsigned i;
    tl_init(t, UPV_ROLE_BOARD, V_BOARD_ADDR, V_BOARD_EPOCH, V_BOARD_KEY.p);
    for (i = 0; i < upto; i++) {
        if (!V_CONV[i].to_hub) {
            upv_link_feed(&t->link, V_CONV[i].wire.p, V_CONV[i].wire.n, 1000u);
        }
    }
    upv_link_poll(&t->link, 1000u);
    tl_clear(t);
}
