/* upv_msg.c - header pack/unpack and the payload codec of every version 1 message. */
#include "upv_msg.h"

#include <string.h>

const char *upv_err_name(int err)
{
    switch (err) {
    case UPV_OK: return "ok";
    case UPV_E_TRUNCATED: return "truncated";
    case UPV_E_BAD_VALUE: return "bad_value";
    case UPV_E_BAD_UTF8: return "bad_utf8";
    case UPV_E_BAD_LENGTH: return "bad_length";
    case UPV_E_UNKNOWN_TYPE: return "unknown_type";
    case UPV_E_NO_ROOM: return "no_room";
    case UPV_E_RANGE: return "range";
    case UPV_E_QUEUE_FULL: return "queue_full";
    case UPV_E_NO_KEY: return "no_key";
    case UPV_E_ARG: return "bad_argument";
    default: return "unknown_error";
    }
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void upv_header_pack(const upv_header_t *h, uint8_t out[UPV_HEADER_SIZE])
{
    out[0] = h->version;
    out[1] = h->type;
    out[2] = h->flags;
    out[3] = h->addr;
    put32(out + 4, h->epoch);
    put32(out + 8, h->peer_epoch);
    put16(out + 12, h->seq);
    put16(out + 14, h->ack);
}

void upv_header_unpack(const uint8_t in[UPV_HEADER_SIZE], upv_header_t *h)
{
    h->version = in[0];
    h->type = in[1];
    h->flags = in[2];
    h->addr = in[3];
    h->epoch = get32(in + 4);
    h->peer_epoch = get32(in + 8);
    h->seq = get16(in + 12);
    h->ack = get16(in + 14);
}

bool upv_type_is_money(uint8_t type)
{
    return type == UPV_T_CANCEL || type == UPV_T_VEND_APPROVED || type == UPV_T_VEND_RESULT;
}

bool upv_type_is_unsigned(uint8_t type)
{
    return type == UPV_T_HELLO || type == UPV_T_ACK;
}

upv_str_t upv_str(const char *s)
{
    upv_str_t r;
    size_t n = strlen(s);
    r.p = (const uint8_t *)s;
    r.len = (uint16_t)(n > 0xFFFFu ? 0xFFFFu : n);
    return r;
}

bool upv_str_eq(upv_str_t s, const char *c)
{
    size_t n = strlen(c);
    return n == s.len && (n == 0u || memcmp(s.p, c, n) == 0);
}

bool upv_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t need, k;
        uint32_t cp;
        if (c < 0x80u) {
            i++;
            continue;
        }
        if (c >= 0xC2u && c <= 0xDFu) {
            need = 1; cp = c & 0x1Fu;
        } else if (c >= 0xE0u && c <= 0xEFu) {
            need = 2; cp = c & 0x0Fu;
        } else if (c >= 0xF0u && c <= 0xF4u) {
            need = 3; cp = c & 0x07u;
        } else {
            return false; /* continuation byte, C0/C1 overlong lead, or > U+10FFFF lead */
        }
        if (n - i <= need) {
            return false;
        }
        for (k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3Fu);
        }
        if ((need == 2u && cp < 0x800u) || (need == 3u && cp < 0x10000u) || cp > 0x10FFFFu ||
            (cp >= 0xD800u && cp <= 0xDFFFu)) {
            return false;
        }
        i += need + 1u;
    }
    return true;
}

/* --- encoding --------------------------------------------------------------------------------- */
typedef struct {
    uint8_t *p;
    size_t cap, n;
    int err;
} wr_t;

static uint8_t *room(wr_t *w, size_t k)
{
    uint8_t *at;
    if (w->err) {
        return NULL;
    }
    if (w->cap - w->n < k) {
        w->err = UPV_E_NO_ROOM;
        return NULL;
    }
    at = w->p + w->n;
    w->n += k;
    return at;
}
static void w8(wr_t *w, uint8_t v) { uint8_t *a = room(w, 1); if (a) { a[0] = v; } }
static void w16(wr_t *w, uint16_t v) { uint8_t *a = room(w, 2); if (a) { put16(a, v); } }
static void w32(wr_t *w, uint32_t v) { uint8_t *a = room(w, 4); if (a) { put32(a, v); } }
static void wbytes(wr_t *w, const uint8_t *b, size_t k)
{
    uint8_t *a = room(w, k);
    if (a && k) {
        memcpy(a, b, k);
    }
}
static void wfail(wr_t *w, int err) { if (!w->err) { w->err = err; } }
static void wbool(wr_t *w, bool v) { w8(w, v ? 1u : 0u); }
static void wenum(wr_t *w, uint8_t v, uint8_t lo, uint8_t hi)
{
    if (v < lo || v > hi) {
        wfail(w, UPV_E_BAD_VALUE);
    }
    w8(w, v);
}
static void wstr_n(wr_t *w, upv_str_t s, bool wide)
{
    if (!wide && s.len > 255u) {
        wfail(w, UPV_E_RANGE);
        return;
    }
    if (s.len && s.p == NULL) {
        wfail(w, UPV_E_ARG);
        return;
    }
    if (!upv_utf8_valid(s.p, s.len)) {
        wfail(w, UPV_E_BAD_UTF8);
        return;
    }
    if (wide) {
        w16(w, s.len);
    } else {
        w8(w, (uint8_t)s.len);
    }
    wbytes(w, s.p, s.len);
}
static void wstr(wr_t *w, upv_str_t s) { wstr_n(w, s, false); }
static void wlist(wr_t *w, const upv_strlist_t *l)
{
    uint8_t i;
    if (l->count > UPV_LIST_MAX) {
        wfail(w, UPV_E_RANGE);
        return;
    }
    w8(w, l->count);
    for (i = 0; i < l->count; i++) {
        wstr(w, l->item[i]);
    }
}

int upv_msg_encode(const upv_msg_t *m, uint8_t *out, size_t cap, size_t *len)
{
    wr_t w;
    unsigned i;
    w.p = out; w.cap = cap; w.n = 0; w.err = UPV_OK;
    switch (m->type) {
    case UPV_T_HELLO:
        wbytes(&w, m->u.hello.uid, UPV_UID_SIZE);
        wstr(&w, m->u.hello.fw_version);
        w8(&w, m->u.hello.proto_min);
        w8(&w, m->u.hello.proto_max);
        w32(&w, m->u.hello.capabilities);
        wlist(&w, &m->u.hello.products);
        break;
    case UPV_T_HELLO_ACK:
        w8(&w, m->u.hello_ack.version);
        w32(&w, m->u.hello_ack.unix_time);
        wbool(&w, m->u.hello_ack.time_synced);
        w16(&w, m->u.hello_ack.heartbeat_s);
        wbool(&w, m->u.hello_ack.in_service);
        break;
    case UPV_T_STATUS:
        wenum(&w, m->u.status.state, 0, UPV_STATE_MAX);
        w16(&w, m->u.status.error_code);
        w32(&w, m->u.status.uptime_s);
        w32(&w, m->u.status.vends_ok);
        w32(&w, m->u.status.vends_failed);
        wstr(&w, m->u.status.last_order);
        wenum(&w, m->u.status.last_outcome, 0, UPV_OUTCOME_MAX);
        w8(&w, m->u.status.last_dispensed);
        break;
    case UPV_T_STATUS_REQUEST:
        break;
    case UPV_T_ORDER_REQUEST:
        w16(&w, m->u.order_request.request_id);
        wstr(&w, m->u.order_request.product);
        wlist(&w, &m->u.order_request.options);
        w8(&w, m->u.order_request.quantity);
        break;
    case UPV_T_PAYMENT_QR:
        w16(&w, m->u.payment_qr.request_id);
        wstr(&w, m->u.payment_qr.order_ref);
        w32(&w, m->u.payment_qr.amount_paise);
        for (i = 0; i < 3u; i++) {
            if (m->u.payment_qr.currency[i] >= 0x80u) {
                wfail(&w, UPV_E_BAD_UTF8);
            }
        }
        wbytes(&w, m->u.payment_qr.currency, 3);
        w16(&w, m->u.payment_qr.expires_in_s);
        wstr_n(&w, m->u.payment_qr.upi_uri, true);
        w8(&w, m->u.payment_qr.qr_size);
        if (m->u.payment_qr.qr_size && m->u.payment_qr.qr_bitmap == NULL) {
            wfail(&w, UPV_E_BAD_LENGTH);
        } else {
            wbytes(&w, m->u.payment_qr.qr_bitmap, UPV_QR_BYTES(m->u.payment_qr.qr_size));
        }
        break;
    case UPV_T_ORDER_REJECTED:
        w16(&w, m->u.order_rejected.request_id);
        wenum(&w, m->u.order_rejected.reason, 1, UPV_REJECT_MAX);
        wstr(&w, m->u.order_rejected.message);
        break;
    case UPV_T_CANCEL:
        wstr(&w, m->u.cancel.order_ref);
        wenum(&w, m->u.cancel.reason, 1, UPV_CANCEL_MAX);
        break;
    case UPV_T_VEND_APPROVED:
        wstr(&w, m->u.vend_approved.order_ref);
        wbytes(&w, m->u.vend_approved.auth, UPV_AUTH_SIZE);
        w8(&w, m->u.vend_approved.quantity);
        w16(&w, m->u.vend_approved.deadline_s);
        break;
    case UPV_T_VEND_STARTED:
        wstr(&w, m->u.vend_started.order_ref);
        break;
    case UPV_T_VEND_RESULT:
        wstr(&w, m->u.vend_result.order_ref);
        wenum(&w, m->u.vend_result.outcome, 0, UPV_OUTCOME_MAX);
        w16(&w, m->u.vend_result.reason);
        w8(&w, m->u.vend_result.dispensed);
        break;
    case UPV_T_LOG:
        w8(&w, m->u.log.level);
        w16(&w, m->u.log.code);
        wstr(&w, m->u.log.text);
        break;
    default:
        return UPV_E_UNKNOWN_TYPE; /* ACK has no message; anything else is not version 1 */
    }
    if (w.err) {
        return w.err;
    }
    *len = w.n;
    return UPV_OK;
}

/* --- decoding --------------------------------------------------------------------------------- */
typedef struct {
    const uint8_t *p;
    size_t n, at;
    int err;
} rd_t;

static const uint8_t *take(rd_t *r, size_t k)
{
    const uint8_t *a;
    if (r->err) {
        return NULL;
    }
    if (r->n - r->at < k) {
        r->err = UPV_E_TRUNCATED;
        return NULL;
    }
    a = r->p + r->at;
    r->at += k;
    return a;
}
static void rfail(rd_t *r, int err) { if (!r->err) { r->err = err; } }
static uint8_t r8(rd_t *r) { const uint8_t *a = take(r, 1); return a ? a[0] : 0u; }
static uint16_t r16(rd_t *r) { const uint8_t *a = take(r, 2); return a ? get16(a) : 0u; }
static uint32_t r32(rd_t *r) { const uint8_t *a = take(r, 4); return a ? get32(a) : 0u; }
static bool rbool(rd_t *r)
{
    uint8_t v = r8(r);
    if (v > 1u) {
        rfail(r, UPV_E_BAD_VALUE);
    }
    return v == 1u;
}
static uint8_t renum(rd_t *r, uint8_t lo, uint8_t hi)
{
    uint8_t v = r8(r);
    if (!r->err && (v < lo || v > hi)) {
        rfail(r, UPV_E_BAD_VALUE);
    }
    return v;
}
static void rcopy(rd_t *r, uint8_t *dst, size_t k)
{
    const uint8_t *a = take(r, k);
    if (a) {
        memcpy(dst, a, k);
    } else {
        memset(dst, 0, k);
    }
}
static upv_str_t rstr_n(rd_t *r, bool wide)
{
    upv_str_t s;
    s.len = wide ? r16(r) : r8(r);
    s.p = take(r, s.len);
    if (s.p == NULL) {
        s.len = 0;
    } else if (!upv_utf8_valid(s.p, s.len)) {
        rfail(r, UPV_E_BAD_UTF8);
    }
    return s;
}
static upv_str_t rstr(rd_t *r) { return rstr_n(r, false); }
static void rlist(rd_t *r, upv_strlist_t *l)
{
    uint8_t count = r8(r), i;
    l->count = 0;
    for (i = 0; i < count && !r->err; i++) {
        upv_str_t s = rstr(r);
        if (i >= UPV_LIST_MAX) {
            rfail(r, UPV_E_BAD_LENGTH); /* more items than this build can hold (UPV_LIST_MAX) */
        } else {
            l->item[i] = s;
            l->count = (uint8_t)(i + 1u);
        }
    }
}

int upv_msg_decode(uint8_t type, const uint8_t *p, size_t n, upv_msg_t *m)
{
    rd_t r;
    unsigned i;
    r.p = p; r.n = n; r.at = 0; r.err = UPV_OK;
    memset(m, 0, sizeof *m);
    m->type = type;
    switch (type) {
    case UPV_T_HELLO:
        rcopy(&r, m->u.hello.uid, UPV_UID_SIZE);
        m->u.hello.fw_version = rstr(&r);
        m->u.hello.proto_min = r8(&r);
        m->u.hello.proto_max = r8(&r);
        m->u.hello.capabilities = r32(&r);
        rlist(&r, &m->u.hello.products);
        break;
    case UPV_T_HELLO_ACK:
        m->u.hello_ack.version = r8(&r);
        m->u.hello_ack.unix_time = r32(&r);
        m->u.hello_ack.time_synced = rbool(&r);
        m->u.hello_ack.heartbeat_s = r16(&r);
        m->u.hello_ack.in_service = rbool(&r);
        break;
    case UPV_T_STATUS:
        m->u.status.state = renum(&r, 0, UPV_STATE_MAX);
        m->u.status.error_code = r16(&r);
        m->u.status.uptime_s = r32(&r);
        m->u.status.vends_ok = r32(&r);
        m->u.status.vends_failed = r32(&r);
        m->u.status.last_order = rstr(&r);
        m->u.status.last_outcome = renum(&r, 0, UPV_OUTCOME_MAX);
        m->u.status.last_dispensed = r8(&r);
        break;
    case UPV_T_STATUS_REQUEST:
        break;
    case UPV_T_ORDER_REQUEST:
        m->u.order_request.request_id = r16(&r);
        m->u.order_request.product = rstr(&r);
        rlist(&r, &m->u.order_request.options);
        m->u.order_request.quantity = r8(&r);
        break;
    case UPV_T_PAYMENT_QR:
        m->u.payment_qr.request_id = r16(&r);
        m->u.payment_qr.order_ref = rstr(&r);
        m->u.payment_qr.amount_paise = r32(&r);
        rcopy(&r, m->u.payment_qr.currency, 3);
        for (i = 0; i < 3u && !r.err; i++) {
            if (m->u.payment_qr.currency[i] >= 0x80u) {
                rfail(&r, UPV_E_BAD_UTF8);
            }
        }
        m->u.payment_qr.expires_in_s = r16(&r);
        m->u.payment_qr.upi_uri = rstr_n(&r, true);
        m->u.payment_qr.qr_size = r8(&r);
        m->u.payment_qr.qr_bitmap = take(&r, UPV_QR_BYTES(m->u.payment_qr.qr_size));
        break;
    case UPV_T_ORDER_REJECTED:
        m->u.order_rejected.request_id = r16(&r);
        m->u.order_rejected.reason = renum(&r, 1, UPV_REJECT_MAX);
        m->u.order_rejected.message = rstr(&r);
        break;
    case UPV_T_CANCEL:
        m->u.cancel.order_ref = rstr(&r);
        m->u.cancel.reason = renum(&r, 1, UPV_CANCEL_MAX);
        break;
    case UPV_T_VEND_APPROVED:
        m->u.vend_approved.order_ref = rstr(&r);
        rcopy(&r, m->u.vend_approved.auth, UPV_AUTH_SIZE);
        m->u.vend_approved.quantity = r8(&r);
        m->u.vend_approved.deadline_s = r16(&r);
        break;
    case UPV_T_VEND_STARTED:
        m->u.vend_started.order_ref = rstr(&r);
        break;
    case UPV_T_VEND_RESULT:
        m->u.vend_result.order_ref = rstr(&r);
        m->u.vend_result.outcome = renum(&r, 0, UPV_OUTCOME_MAX);
        m->u.vend_result.reason = r16(&r);
        m->u.vend_result.dispensed = r8(&r);
        break;
    case UPV_T_LOG:
        m->u.log.level = r8(&r);
        m->u.log.code = r16(&r);
        m->u.log.text = rstr(&r);
        break;
    default:
        return UPV_E_UNKNOWN_TYPE;
    }
    return r.err;
}
