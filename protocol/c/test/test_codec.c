/* test_codec.c - payload edge cases (every prefix, trailing bytes, bad values), the decoder's
 * limits, random garbage, and re-signed random mutations that reach the message decoder. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "testlink.h"
#include "upv_cobs.h"
#include "upv_mac.h"
#include "vectors.h"

#define NCONV (sizeof V_CONV / sizeof V_CONV[0])
#define NOW 1000u

/* Garbage never crashes and never delivers; re-signed random payload mutations reach the
 * decoder (valid MAC) and give a message or a typed invalid/unknown event, nothing else. */
static void test_garbage(void)
{
    static tl_t t;
    static uint8_t junk[4096], w[UPV_MAX_WIRE], frame[UPV_MAX_FRAME + 4];
    uint32_t r = 0xBADC0DEu;
    unsigned round, i, odd = 0;
    upv_hmac_key_t k;
    case_begin("garbage: random bytes deliver nothing; mutated re-signed payloads decode or fail typed");
    tl_init(&t, UPV_ROLE_BOARD, V_BOARD_ADDR, V_BOARD_EPOCH, V_BOARD_KEY.p);
    for (round = 0; round < 64u; round++) {
        for (i = 0; i < sizeof junk; i++) {
            r ^= r << 13; r ^= r >> 17; r ^= r << 5;
            junk[i] = (uint8_t)(r & 0xFFu) < 8u ? 0u : (uint8_t)(r >> 8); /* frequent delimiters */
        }
        upv_link_feed(&t.link, junk, sizeof junk, NOW);
        upv_link_poll(&t.link, NOW);
    }
    CHECK(t.messages == 0u);
    upv_hmac_key(&k, V_BOARD_KEY.p, V_BOARD_KEY.n);
    for (round = 0; round < 4000u; round++) {
        const v_conv_t *c;
        upv_header_t h;
        size_t n, plen;
        do {
            r ^= r << 13; r ^= r >> 17; r ^= r << 5;
            c = &V_CONV[r % NCONV];
        } while (c->to_hub || !c->has_msg);
        board_before(&t, (unsigned)c->index);
        h = c->header;
        upv_header_pack(&h, frame);
        plen = c->payload.n;
        memcpy(frame + 16, c->payload.p, plen);
        for (i = 0; i < 1u + r % 4u && plen; i++) {
            r ^= r << 13; r ^= r >> 17; r ^= r << 5;
            frame[16u + (r >> 8) % plen] = (uint8_t)r;
        }
        r ^= r << 13; r ^= r >> 17; r ^= r << 5;
        if (plen && (r & 3u) == 0u) {
            plen = (r >> 4) % plen; /* and sometimes cut short */
        }
        n = 16u + plen;
        memset(frame + n, 0, 4);
        frame[n] = (uint8_t)c->counter;
        upv_mac_tag(&k, frame, n + 4u, frame + n + 4u);
        n = upv_wire_encode(frame, n + 12u, w, sizeof w);
        upv_link_feed(&t.link, w, n, NOW);
        for (i = 0; i < t.nev; i++) {
            odd += t.ev[i].kind != UPV_EV_MESSAGE && t.ev[i].kind != UPV_EV_INVALID &&
                   t.ev[i].kind != UPV_EV_UNKNOWN;
        }
        odd += t.nev != 1u;
    }
    CHECK_MSG(odd == 0u, "each re-signed frame gives exactly one message or typed error");
    case_end();
}

static void test_payloads(void)
{
    unsigned i;
    static uint8_t buf[UPV_MAX_BODY + 8];
    upv_msg_t m;
    case_begin("payloads: every strict prefix is truncated, appended bytes are ignored");
    for (i = 0; i < NCONV; i++) {
        const v_conv_t *c = &V_CONV[i];
        size_t n;
        if (!c->has_msg) {
            continue;
        }
        for (n = 0; n < c->payload.n; n++) {
            CHECK_MSG(upv_msg_decode(c->msg.type, c->payload.p, n, &m) == UPV_E_TRUNCATED,
                      "prefix decodes as truncated");
        }
        memcpy(buf, c->payload.p, c->payload.n);
        buf[c->payload.n] = 0xAB;
        buf[c->payload.n + 1u] = 0xCD;
        CHECK(upv_msg_decode(c->msg.type, buf, c->payload.n + 2u, &m) == UPV_OK);
        CHECK(msg_equal(&m, &c->msg));
    }
    case_end();

    case_begin("payloads: bad bool, bad enum, bad UTF-8, non-ASCII currency");
    {
        const v_conv_t *ha = &V_CONV[1], *rej = &V_CONV[12], *qr = &V_CONV[14];
        memcpy(buf, ha->payload.p, ha->payload.n);
        buf[5] = 2; /* time_synced */
        CHECK(upv_msg_decode(UPV_T_HELLO_ACK, buf, ha->payload.n, &m) == UPV_E_BAD_VALUE);
        memcpy(buf, rej->payload.p, rej->payload.n);
        buf[2] = 9; /* RejectReason 9 */
        CHECK(upv_msg_decode(UPV_T_ORDER_REJECTED, buf, rej->payload.n, &m) == UPV_E_BAD_VALUE);
        buf[2] = 3;
        buf[4] = 0xFF; /* message text */
        CHECK(upv_msg_decode(UPV_T_ORDER_REJECTED, buf, rej->payload.n, &m) == UPV_E_BAD_UTF8);
        memcpy(buf, qr->payload.p, qr->payload.n);
        buf[13] = 0xC9; /* currency "INR" -> non-ASCII */
        CHECK(upv_msg_decode(UPV_T_PAYMENT_QR, buf, qr->payload.n, &m) == UPV_E_BAD_UTF8);
        CHECK(upv_msg_decode(0x7E, buf, 4, &m) == UPV_E_UNKNOWN_TYPE);
    }
    {
        static const uint8_t bad[][4] = {{0xC0, 0x80}, {0xED, 0xA0, 0x80}, {0xF4, 0x90, 0x80, 0x80},
                                         {0xE2, 0x82}, {0x80}};
        static const uint8_t badn[] = {2, 3, 4, 2, 1};
        static const uint8_t good[] = {0x24, 0xC2, 0xA2, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80};
        for (i = 0; i < sizeof badn; i++) {
            CHECK(!upv_utf8_valid(bad[i], badn[i]));
        }
        CHECK(upv_utf8_valid(good, sizeof good));
    }
    case_end();

    case_begin("decoder: too long, too short, non-canonical COBS, leading delimiters");
    {
        static uint8_t rx[UPV_MAX_ENCODED], raw[300], enc[320];
        upv_decoder_t d;
        const uint8_t *f;
        size_t k, got = 0, n;
        long dn;
        upv_decoder_init(&d, rx, sizeof rx);
        for (k = 0; k < 3000u; k++) {
            got += upv_decoder_push(&d, 0x55, &f);
        }
        got += upv_decoder_push(&d, 0, &f);
        CHECK(got == 0u && d.stats.too_long == 1u && !d.discarding);
        got += upv_decoder_push(&d, 0x05, &f); /* a short valid piece */
        got += upv_decoder_push(&d, 0, &f);
        CHECK(got == 0u && d.stats.cobs_errors == 1u);
        for (k = 0; k < 254u; k++) {
            raw[k] = (uint8_t)(k + 1u);
        }
        n = upv_cobs_encode(raw, 254, enc, sizeof enc);
        CHECK(n == 255u);
        enc[n++] = 0x01; /* non-canonical: an extra empty block */
        dn = upv_cobs_decode(enc, n, raw + 0);
        CHECK(dn == 254);
        got = 0;
        for (k = 0; k < 5u; k++) {
            got += upv_decoder_push(&d, 0, &f); /* leading delimiters are ignored */
        }
        CHECK(got == 0u && d.stats.cobs_errors == 1u && d.stats.too_short == 0u);
    }
    case_end();
}

void run_codec_tests(void)
{
    test_payloads();
    test_garbage();
}
