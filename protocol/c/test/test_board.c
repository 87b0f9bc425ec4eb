/* test_board.c - host/board.c (the board firmware logic) against an in-memory hub link:
 * HELLO/HELLO_ACK/STATUS, STATUS_REQUEST answered, a purchase, an approval accepted only once,
 * an unknown order never vended, and a reset mid-vend reported as FAILED after the next boot. */
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "harness.h"
#include "testlink.h"
#include "vectors.h"

#define HUB_EPOCH 0x4B1D0777u

typedef struct {
    uint8_t wire[8192];
    size_t n;
    char lines[64][160];
    unsigned nlines;
    uint32_t rng;
} io_t;

static io_t io;
static board_t board;
static tl_t hub;
static uint32_t now = 5000;

static void b_write(void *user, const uint8_t *d, size_t n)
{
    io_t *x = (io_t *)user;
    if (x->n + n <= sizeof x->wire) {
        memcpy(x->wire + x->n, d, n);
        x->n += n;
    }
}
static void b_say(void *user, const char *line)
{
    io_t *x = (io_t *)user;
    if (x->nlines < 64u) {
        snprintf(x->lines[x->nlines++], sizeof x->lines[0], "%s", line);
    }
}
static uint32_t b_rand(void *user)
{
    io_t *x = (io_t *)user;
    x->rng = x->rng * 1664525u + 1013904223u;
    return x->rng;
}

static unsigned said(const char *prefix)
{
    unsigned i, k = 0;
    for (i = 0; i < io.nlines; i++) {
        k += strncmp(io.lines[i], prefix, strlen(prefix)) == 0;
    }
    return k;
}

/* Move bytes both ways until the line is quiet. */
static void exchange(void)
{
    unsigned rounds;
    for (rounds = 0; rounds < 20u; rounds++) {
        size_t bn = io.n, hn;
        if (bn) {
            static uint8_t tmp[8192];
            memcpy(tmp, io.wire, bn);
            io.n = 0;
            upv_link_feed(&hub.link, tmp, bn, now);
            if (hub.nev && hub.ev[0].kind == UPV_EV_MESSAGE && hub.ev[0].msg_type == UPV_T_HELLO) {
                upv_link_set_key(&hub.link, V_BOARD_KEY.p);
            }
        }
        upv_link_poll(&hub.link, now);
        hn = hub.out_n;
        if (hn) {
            static uint8_t tmp2[16384];
            memcpy(tmp2, hub.out, hn);
            hub.out_n = 0;
            board_rx(&board, tmp2, hn, now);
        }
        board_tick(&board, now);
        if (!bn && !hn && !io.n) {
            return;
        }
    }
}

static bool hub_got(uint8_t type, unsigned *index)
{
    unsigned i;
    for (i = 0; i < hub.nev; i++) {
        if (hub.ev[i].kind == UPV_EV_MESSAGE && hub.ev[i].msg_type == type) {
            if (index) {
                *index = i;
            }
            return true;
        }
    }
    return false;
}

static void hub_send(const upv_msg_t *m)
{
    tl_clear(&hub);
    CHECK(upv_link_send(&hub.link, m, 0, now) == UPV_OK);
    exchange();
}

static void boot(void)
{
    board_config_t c;
    memset(&c, 0, sizeof c);
    memcpy(c.uid, V_UID.p, UPV_UID_SIZE);
    memcpy(c.key, V_BOARD_KEY.p, UPV_KEY_SIZE);
    c.addr = V_BOARD_ADDR;
    c.baud = 115200;
    c.fw_version = "test-fw";
    c.products[0] = "espresso";
    c.nproducts = 1;
    c.hello_retry_ms = 1000;
    c.vend_ms = 100;
    c.random32 = b_rand;
    c.write = b_write;
    c.say = b_say;
    c.user = &io;
    CHECK(board_boot(&board, &c, now) == UPV_OK);
}

static void hello_ack(void)
{
    upv_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = UPV_T_HELLO_ACK;
    m.u.hello_ack.version = 1;
    m.u.hello_ack.in_service = true;
    hub_send(&m);
}

static void approve(const char *ref, uint8_t auth0)
{
    upv_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = UPV_T_VEND_APPROVED;
    m.u.vend_approved.order_ref = upv_str(ref);
    memset(m.u.vend_approved.auth, auth0, UPV_AUTH_SIZE);
    m.u.vend_approved.quantity = 1;
    m.u.vend_approved.deadline_s = 30;
    hub_send(&m);
}

static void show_qr(const char *ref)
{
    upv_msg_t m;
    unsigned i = 0;
    memset(&m, 0, sizeof m);
    CHECK(hub_got(UPV_T_ORDER_REQUEST, &i));
    m.type = UPV_T_PAYMENT_QR;
    m.u.payment_qr.request_id = board.request_id;
    m.u.payment_qr.order_ref = upv_str(ref);
    m.u.payment_qr.amount_paise = 2000;
    memcpy(m.u.payment_qr.currency, "INR", 3);
    m.u.payment_qr.expires_in_s = 60;
    m.u.payment_qr.upi_uri = upv_str("upi://pay?tr=X");
    hub_send(&m);
}

void run_board_tests(void)
{
    upv_msg_t m;
    unsigned i = 0;
    memset(&io, 0, sizeof io);
    io.rng = 7;
    tl_init(&hub, UPV_ROLE_HUB, V_BOARD_ADDR, HUB_EPOCH, NULL);

    case_begin("board: HELLO, HELLO_ACK -> STATUS at once; STATUS_REQUEST answered");
    boot();
    exchange();
    CHECK(hub_got(UPV_T_HELLO, NULL));
    hello_ack();
    CHECK(board.connected && board.state == UPV_STATE_IDLE);
    CHECK(hub_got(UPV_T_STATUS, NULL));
    memset(&m, 0, sizeof m);
    m.type = UPV_T_STATUS_REQUEST;
    hub_send(&m);
    CHECK(said("status_request") == 1u && hub_got(UPV_T_STATUS, &i));
    CHECK(hub.ev[i].authenticated);
    case_end();

    case_begin("board: a purchase, and the same approval accepted only once");
    CHECK(board_buy(&board, "espresso", "sugar,milk", 1) == UPV_OK);
    tl_clear(&hub);
    exchange();
    CHECK(hub_got(UPV_T_ORDER_REQUEST, &i));
    show_qr("ORD1");
    CHECK(board.state == UPV_STATE_AWAITING_PAYMENT && said("qr ") == 1u);
    approve("ORD1", 0xA1);
    CHECK(hub_got(UPV_T_VEND_STARTED, NULL) && board.state == UPV_STATE_VENDING);
    now += 150;
    tl_clear(&hub);
    exchange();
    CHECK(hub_got(UPV_T_VEND_RESULT, &i));
    CHECK(board.flash.vends_ok == 1u && board.state == UPV_STATE_IDLE);
    approve("ORD1", 0xA1); /* the same approval again (a fresh MAC counter: not a link replay) */
    CHECK(said("vend_started") == 1u && board.flash.vends_ok == 1u);
    CHECK(hub_got(UPV_T_VEND_RESULT, NULL)); /* answered by repeating its result */
    approve("ORD9", 0xB2); /* an order the board never showed */
    CHECK(said("vend_started") == 1u && said("vend_refused reason=unknown_order") == 1u);
    case_end();

    case_begin("board: reset mid-vend is reported FAILED (never resumed) after the next HELLO_ACK");
    CHECK(board_buy(&board, "espresso", "", 1) == UPV_OK);
    tl_clear(&hub);
    exchange();
    show_qr("ORD2");
    approve("ORD2", 0xC3);
    CHECK(board.state == UPV_STATE_VENDING);
    boot(); /* power cut: RAM gone, flash kept, new epoch */
    tl_clear(&hub);
    exchange();
    CHECK(hub.link.stats.peer_restarts == 1u && hub_got(UPV_T_HELLO, NULL));
    upv_link_set_key(&hub.link, V_BOARD_KEY.p);
    hello_ack();
    CHECK(hub_got(UPV_T_STATUS, &i));
    CHECK(board.flash.last_outcome == UPV_OUTCOME_FAILED && strcmp(board.flash.last_order, "ORD2") == 0);
    approve("ORD2", 0xC3); /* a late approval for the interrupted vend: never dispensed again */
    CHECK(said("vend_started") == 2u);
    case_end();
}
