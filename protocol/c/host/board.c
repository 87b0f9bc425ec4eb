/* board.c - the board's side of the purchase (docs/protocol.md 11): HELLO until HELLO_ACK,
 * STATUS (at once, on heartbeat, on request), ORDER_REQUEST -> PAYMENT_QR / ORDER_REJECTED,
 * CANCEL both ways, VEND_APPROVED (MAC'd, once per auth) -> VEND_STARTED -> VEND_RESULT. */
#include "board.h"

#include <stdio.h>
#include <string.h>

/* --- board states: one table (section 11.5) ------------------------------------------------- */
typedef enum {
    EV_ORDER_SENT, EV_QR_SHOWN, EV_ORDER_CLOSED, EV_APPROVED, EV_RESULT_SENT,
    EV_IN_SERVICE, EV_OUT_OF_SERVICE, EV_COUNT
} board_event_t;

#define NO_MOVE 0xFFu
static const uint8_t MOVES[UPV_STATE_MAX + 1u][EV_COUNT] = {
    /*                  ORDER_SENT           QR_SHOWN                    ORDER_CLOSED     APPROVED           RESULT_SENT     IN_SERVICE       OUT_OF_SERVICE */
    [UPV_STATE_IDLE] = {UPV_STATE_ORDERING, NO_MOVE, NO_MOVE, NO_MOVE, NO_MOVE, UPV_STATE_IDLE, UPV_STATE_OUT_OF_SERVICE},
    [UPV_STATE_ORDERING] = {NO_MOVE, UPV_STATE_AWAITING_PAYMENT, UPV_STATE_IDLE, NO_MOVE, NO_MOVE, UPV_STATE_ORDERING, UPV_STATE_OUT_OF_SERVICE},
    [UPV_STATE_AWAITING_PAYMENT] = {NO_MOVE, NO_MOVE, UPV_STATE_IDLE, UPV_STATE_VENDING, NO_MOVE, UPV_STATE_AWAITING_PAYMENT, UPV_STATE_OUT_OF_SERVICE},
    [UPV_STATE_VENDING] = {NO_MOVE, NO_MOVE, NO_MOVE, NO_MOVE, UPV_STATE_IDLE, UPV_STATE_VENDING, UPV_STATE_VENDING},
    [UPV_STATE_OUT_OF_SERVICE] = {NO_MOVE, NO_MOVE, UPV_STATE_OUT_OF_SERVICE, NO_MOVE, NO_MOVE, UPV_STATE_IDLE, UPV_STATE_OUT_OF_SERVICE},
    [UPV_STATE_ERROR] = {NO_MOVE, NO_MOVE, NO_MOVE, NO_MOVE, NO_MOVE, NO_MOVE, NO_MOVE},
};

static bool fire(board_t *b, board_event_t ev)
{
    uint8_t next = MOVES[b->state][ev];
    if (next == NO_MOVE) {
        return false;
    }
    b->state = next;
    return true;
}

const char *board_state_name(uint8_t state)
{
    static const char *const names[] = {"IDLE", "ORDERING", "AWAITING_PAYMENT", "VENDING",
                                        "OUT_OF_SERVICE", "ERROR"};
    return state <= UPV_STATE_MAX ? names[state] : "?";
}

static const char *outcome_name(uint8_t o)
{
    static const char *const names[] = {"NONE", "SUCCESS", "FAILED", "NOT_STARTED", "IN_PROGRESS"};
    return o <= UPV_OUTCOME_MAX ? names[o] : "?";
}

static void say(board_t *b, const char *line)
{
    b->cfg.say(b->cfg.user, line);
}

static void copy_ref(char *dst, upv_str_t s)
{
    size_t n = s.len < BOARD_REF_MAX - 1u ? s.len : BOARD_REF_MAX - 1u;
    memcpy(dst, s.p, n);
    dst[n] = 0;
}

static bool ref_is(const char *ref, upv_str_t s)
{
    return ref[0] != 0 && upv_str_eq(s, ref);
}

static void send(board_t *b, const upv_msg_t *m)
{
    int rc = upv_link_send(&b->link, m, m->type, b->now);
    if (rc != UPV_OK) {
        snprintf(b->text, sizeof b->text, "send_error type=0x%02x error=%s", m->type,
                 upv_err_name(rc));
        say(b, b->text);
    }
}

static void send_hello(board_t *b)
{
    upv_msg_t m;
    uint8_t i;
    memset(&m, 0, sizeof m);
    m.type = UPV_T_HELLO;
    memcpy(m.u.hello.uid, b->cfg.uid, UPV_UID_SIZE);
    m.u.hello.fw_version = upv_str(b->cfg.fw_version);
    m.u.hello.proto_min = 1;
    m.u.hello.proto_max = 1;
    m.u.hello.capabilities = 0x2u; /* quantity > 1; this host board draws no bitmap */
    m.u.hello.products.count = b->cfg.nproducts;
    for (i = 0; i < b->cfg.nproducts; i++) {
        m.u.hello.products.item[i] = upv_str(b->cfg.products[i]);
    }
    b->connected = false;
    b->hello_due = b->now + b->cfg.hello_retry_ms;
    send(b, &m);
    say(b, "hello_sent");
}

static void send_status(board_t *b)
{
    upv_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = UPV_T_STATUS;
    m.u.status.state = b->state;
    m.u.status.uptime_s = (b->now - b->boot_ms) / 1000u;
    m.u.status.vends_ok = b->flash.vends_ok;
    m.u.status.vends_failed = b->flash.vends_failed;
    m.u.status.last_order = upv_str(b->flash.last_order);
    m.u.status.last_outcome = b->flash.last_outcome;
    m.u.status.last_dispensed = b->flash.last_dispensed;
    send(b, &m);
    snprintf(b->text, sizeof b->text, "status_sent state=%s last_order=%s last_outcome=%s",
             board_state_name(b->state), b->flash.last_order,
             outcome_name(b->flash.last_outcome));
    say(b, b->text);
}

static void send_result(board_t *b, upv_str_t ref, uint8_t outcome, uint16_t reason,
                        uint8_t dispensed)
{
    upv_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = UPV_T_VEND_RESULT;
    m.u.vend_result.order_ref = ref;
    m.u.vend_result.outcome = outcome;
    m.u.vend_result.reason = reason;
    m.u.vend_result.dispensed = dispensed;
    send(b, &m);
    snprintf(b->text, sizeof b->text, "vend_result order_ref=%.*s outcome=%s reason=%u dispensed=%u",
             (int)ref.len, (const char *)ref.p, outcome_name(outcome), reason, dispensed);
    say(b, b->text);
}

static bool auth_used(const board_t *b, const uint8_t *auth)
{
    uint8_t i;
    for (i = 0; i < b->flash.nauths; i++) {
        if (memcmp(b->flash.auths[i], auth, UPV_AUTH_SIZE) == 0) {
            return true;
        }
    }
    return false;
}

static void on_vend_approved(board_t *b, const upv_vend_approved_t *va, bool authenticated)
{
    upv_msg_t m;
    if (!authenticated) { /* the link never delivers this, but goods move only on a MAC */
        say(b, "vend_refused reason=unauthenticated");
        return;
    }
    if (auth_used(b, va->auth) || ref_is(b->flash.last_order, va->order_ref)) {
        /* at most once: answer with what we know (the last vend's result, or NOT_STARTED) */
        if (ref_is(b->flash.last_order, va->order_ref)) {
            send_result(b, va->order_ref, b->flash.last_outcome, 0, b->flash.last_dispensed);
        } else {
            send_result(b, va->order_ref, UPV_OUTCOME_NOT_STARTED, 0, 0);
        }
        say(b, "vend_refused reason=repeat");
        return;
    }
    if (b->state != UPV_STATE_AWAITING_PAYMENT || !ref_is(b->order_ref, va->order_ref) ||
        va->quantity == 0u || va->quantity > b->quantity) {
        send_result(b, va->order_ref, UPV_OUTCOME_NOT_STARTED, 0, 0);
        say(b, "vend_refused reason=unknown_order");
        return;
    }
    if ((uint32_t)va->deadline_s * 1000u < b->cfg.vend_ms / 4u) {
        send_result(b, va->order_ref, UPV_OUTCOME_NOT_STARTED, 2, 0); /* deadline passed */
        (void)fire(b, EV_ORDER_CLOSED);
        return;
    }
    /* 1. flash: order, auth, NOT_STARTED before anything moves; 2. IN_PROGRESS, VEND_STARTED */
    copy_ref(b->flash.last_order, va->order_ref);
    memcpy(b->flash.auths[b->flash.next_auth], va->auth, UPV_AUTH_SIZE);
    b->flash.next_auth = (uint8_t)((b->flash.next_auth + 1u) % BOARD_AUTHS);
    if (b->flash.nauths < BOARD_AUTHS) {
        b->flash.nauths++;
    }
    b->flash.last_outcome = UPV_OUTCOME_IN_PROGRESS;
    b->flash.last_dispensed = 0;
    b->quantity = va->quantity;
    (void)fire(b, EV_APPROVED);
    memset(&m, 0, sizeof m);
    m.type = UPV_T_VEND_STARTED;
    m.u.vend_started.order_ref = va->order_ref;
    send(b, &m);
    b->vend_done = b->now + b->cfg.vend_ms;
    snprintf(b->text, sizeof b->text, "vend_started order_ref=%s quantity=%u", b->order_ref,
             va->quantity);
    say(b, b->text);
}

static void finish_vend(board_t *b)
{
    uint8_t dispensed = b->plan == PLAN_OK ? b->quantity
                        : b->plan == PLAN_PARTIAL ? (uint8_t)(b->quantity - 1u) : 0u;
    bool ok = dispensed == b->quantity;
    b->flash.last_outcome = ok ? UPV_OUTCOME_SUCCESS : UPV_OUTCOME_FAILED;
    b->flash.last_dispensed = dispensed;
    if (ok) {
        b->flash.vends_ok++;
    } else {
        b->flash.vends_failed++;
    }
    send_result(b, upv_str(b->flash.last_order), b->flash.last_outcome, ok ? 0u : 5u, dispensed);
    b->order_ref[0] = 0;
    (void)fire(b, EV_RESULT_SENT);
}

static void on_message(board_t *b, const upv_msg_t *m, bool authenticated)
{
    switch (m->type) {
    case UPV_T_HELLO_ACK: {
        const upv_hello_ack_t *ha = &m->u.hello_ack;
        bool serve = ha->version == UPV_PROTOCOL_VERSION && ha->in_service;
        b->connected = true;
        b->heartbeat_ms = (uint32_t)ha->heartbeat_s * 1000u;
        b->heartbeat_due = b->now + b->heartbeat_ms;
        (void)fire(b, serve ? EV_IN_SERVICE : EV_OUT_OF_SERVICE);
        snprintf(b->text, sizeof b->text, "connected version=%u in_service=%u heartbeat_s=%u",
                 ha->version, serve ? 1u : 0u, ha->heartbeat_s);
        say(b, b->text);
        send_status(b); /* at once: the hub learns the outcome of the last vend (11.3) */
        break;
    }
    case UPV_T_STATUS_REQUEST:
        say(b, "status_request");
        send_status(b);
        break;
    case UPV_T_PAYMENT_QR: {
        const upv_payment_qr_t *qr = &m->u.payment_qr;
        if (b->state != UPV_STATE_ORDERING || qr->request_id != b->request_id) {
            say(b, "qr_ignored");
            break;
        }
        copy_ref(b->order_ref, qr->order_ref);
        b->qr_expires = b->now + (uint32_t)qr->expires_in_s * 1000u;
        (void)fire(b, EV_QR_SHOWN);
        snprintf(b->text, sizeof b->text,
                 "qr order_ref=%s amount_paise=%lu currency=%.3s expires_in_s=%u qr_size=%u "
                 "uri=%.*s", b->order_ref, (unsigned long)qr->amount_paise,
                 (const char *)qr->currency, qr->expires_in_s, qr->qr_size,
                 (int)(qr->upi_uri.len < 160u ? qr->upi_uri.len : 160u),
                 (const char *)qr->upi_uri.p);
        say(b, b->text);
        break;
    }
    case UPV_T_ORDER_REJECTED:
        if (b->state == UPV_STATE_ORDERING && m->u.order_rejected.request_id == b->request_id) {
            (void)fire(b, EV_ORDER_CLOSED);
            snprintf(b->text, sizeof b->text, "rejected reason=%u message=%.*s",
                     m->u.order_rejected.reason, (int)m->u.order_rejected.message.len,
                     (const char *)m->u.order_rejected.message.p);
            say(b, b->text);
        }
        break;
    case UPV_T_CANCEL:
        if (authenticated && b->state == UPV_STATE_AWAITING_PAYMENT &&
            ref_is(b->order_ref, m->u.cancel.order_ref)) {
            snprintf(b->text, sizeof b->text, "cancelled_by_hub order_ref=%s reason=%u",
                     b->order_ref, m->u.cancel.reason);
            say(b, b->text);
            b->order_ref[0] = 0;
            (void)fire(b, EV_ORDER_CLOSED);
        }
        break;
    case UPV_T_VEND_APPROVED:
        on_vend_approved(b, &m->u.vend_approved, authenticated);
        break;
    default:
        break; /* B->H types from a hub: ignore */
    }
}

static void on_event(void *user, const upv_event_t *ev)
{
    board_t *b = (board_t *)user;
    switch (ev->kind) {
    case UPV_EV_MESSAGE:
        on_message(b, ev->msg, ev->authenticated);
        break;
    case UPV_EV_PEER_RESTARTED:
        say(b, "hub_restarted");
        send_hello(b); /* the hub may have lost our key: introduce ourselves again */
        break;
    case UPV_EV_SEND_FAILED:
        snprintf(b->text, sizeof b->text, "send_failed type=0x%02x", (unsigned)ev->tag);
        say(b, b->text);
        if (ev->tag == UPV_T_HELLO) {
            b->hello_due = b->now; /* say HELLO again now */
        } else if (ev->tag == UPV_T_ORDER_REQUEST && b->state == UPV_STATE_ORDERING) {
            (void)fire(b, EV_ORDER_CLOSED);
            say(b, "try_again");
        } /* a VEND_RESULT stays in flash and goes out in STATUS after the next HELLO_ACK */
        break;
    case UPV_EV_AUTH_FAILED:
        snprintf(b->text, sizeof b->text, "auth_failed type=0x%02x", ev->msg_type);
        say(b, b->text);
        break;
    case UPV_EV_UNKNOWN:
    case UPV_EV_INVALID:
        snprintf(b->text, sizeof b->text, "bad_message type=0x%02x reason=%s", ev->msg_type,
                 ev->kind == UPV_EV_UNKNOWN ? "unknown" : upv_err_name(ev->reason));
        say(b, b->text);
        break;
    }
}

static void link_write(void *user, const uint8_t *data, size_t n)
{
    board_t *b = (board_t *)user;
    b->cfg.write(b->cfg.user, data, n);
}

static uint32_t link_random(void *user)
{
    board_t *b = (board_t *)user;
    return b->cfg.random32(b->cfg.user);
}

int board_boot(board_t *b, const board_config_t *cfg, uint32_t now_ms)
{
    upv_link_config_t lc;
    board_flash_t flash = b->flash; /* flash survives */
    board_config_t c = *cfg;        /* cfg may point into *b (a reboot) */
    int rc;
    cfg = &c;
    memset(b, 0, sizeof *b);
    b->flash = flash;
    b->cfg = *cfg;
    b->now = b->boot_ms = now_ms;
    b->state = UPV_STATE_OUT_OF_SERVICE; /* until HELLO_ACK says in service (11.1) */
    if (b->flash.last_outcome == UPV_OUTCOME_IN_PROGRESS) {
        b->flash.last_outcome = UPV_OUTCOME_FAILED; /* reset mid-vend: never resumed (11.4) */
    }
    b->request_id = (uint16_t)cfg->random32(cfg->user);
    memset(&lc, 0, sizeof lc);
    lc.role = UPV_ROLE_BOARD;
    lc.addr = cfg->addr;
    lc.baud = cfg->baud;
    lc.key = cfg->key;
    lc.random32 = link_random;
    lc.write = link_write;
    lc.on_event = on_event;
    lc.user = b;
    lc.rto_jitter_pct = UPV_RTO_JITTER_PCT;
    rc = upv_link_init(&b->link, &lc);
    if (rc != UPV_OK) {
        return rc;
    }
    send_hello(b);
    return UPV_OK;
}

void board_rx(board_t *b, const uint8_t *data, size_t n, uint32_t now_ms)
{
    b->now = now_ms;
    upv_link_feed(&b->link, data, n, now_ms);
}

void board_tick(board_t *b, uint32_t now_ms)
{
    b->now = now_ms;
    if (!b->connected && (int32_t)(now_ms - b->hello_due) >= 0) {
        send_hello(b);
    }
    if (b->connected && b->heartbeat_ms && (int32_t)(now_ms - b->heartbeat_due) >= 0) {
        b->heartbeat_due = now_ms + b->heartbeat_ms;
        send_status(b);
    }
    if (b->state == UPV_STATE_AWAITING_PAYMENT && (int32_t)(now_ms - b->qr_expires) >= 0) {
        upv_msg_t m;
        memset(&m, 0, sizeof m);
        m.type = UPV_T_CANCEL;
        m.u.cancel.order_ref = upv_str(b->order_ref);
        m.u.cancel.reason = UPV_CANCEL_EXPIRED;
        send(b, &m);
        snprintf(b->text, sizeof b->text, "qr_expired order_ref=%s", b->order_ref);
        say(b, b->text);
        b->order_ref[0] = 0;
        (void)fire(b, EV_ORDER_CLOSED);
    }
    if (b->state == UPV_STATE_VENDING && b->plan != PLAN_HANG &&
        (int32_t)(now_ms - b->vend_done) >= 0) {
        finish_vend(b);
    }
    upv_link_poll(&b->link, now_ms);
}

uint32_t board_next_ms(const board_t *b, uint32_t now_ms)
{
    uint32_t next = now_ms + 50u, t;
    if (upv_link_next_timeout(&b->link, &t) && (int32_t)(t - next) < 0) {
        next = t;
    }
    return next;
}

int board_buy(board_t *b, const char *product, const char *options_csv, uint8_t quantity)
{
    upv_msg_t m;
    char *p;
    if (!b->connected || b->state != UPV_STATE_IDLE) {
        snprintf(b->text, sizeof b->text, "buy_refused state=%s connected=%u",
                 board_state_name(b->state), b->connected ? 1u : 0u);
        say(b, b->text);
        return UPV_E_ARG;
    }
    memset(&m, 0, sizeof m);
    m.type = UPV_T_ORDER_REQUEST;
    b->request_id = (uint16_t)(b->request_id + 1u);
    if (b->request_id == 0u) {
        b->request_id = 1; /* new for every request, wraps */
    }
    m.u.order_request.request_id = b->request_id;
    m.u.order_request.product = upv_str(product);
    m.u.order_request.quantity = quantity ? quantity : 1u;
    b->quantity = m.u.order_request.quantity;
    snprintf(b->text, sizeof b->text, "%s", options_csv ? options_csv : "");
    p = b->text;
    while (*p && m.u.order_request.options.count < UPV_LIST_MAX) {
        char *comma = strchr(p, ',');
        if (comma) {
            *comma = 0;
        }
        if (*p) {
            m.u.order_request.options.item[m.u.order_request.options.count++] = upv_str(p);
        }
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    (void)fire(b, EV_ORDER_SENT);
    send(b, &m); /* encodes into the link's slot: b->text may be reused after this */
    snprintf(b->text, sizeof b->text, "order_sent request_id=%u product=%s quantity=%u",
             b->request_id, product, b->quantity);
    say(b, b->text);
    return UPV_OK;
}

int board_cancel(board_t *b)
{
    upv_msg_t m;
    if (b->state != UPV_STATE_AWAITING_PAYMENT) {
        say(b, "cancel_refused");
        return UPV_E_ARG;
    }
    memset(&m, 0, sizeof m);
    m.type = UPV_T_CANCEL;
    m.u.cancel.order_ref = upv_str(b->order_ref);
    m.u.cancel.reason = UPV_CANCEL_CUSTOMER;
    send(b, &m);
    snprintf(b->text, sizeof b->text, "cancelled order_ref=%s", b->order_ref);
    say(b, b->text);
    b->order_ref[0] = 0;
    (void)fire(b, EV_ORDER_CLOSED);
    return UPV_OK;
}

void board_set_plan(board_t *b, board_plan_t plan)
{
    b->plan = plan;
}
