/* test_link.c - beyond the vectors: streaming, junk, bit flips, replays, forged frames, the
 * transport's window and timers, give-up and peer restarts, payload edge cases. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "testlink.h"
#include "upv_cobs.h"
#include "upv_crc32.h"
#include "upv_mac.h"
#include "vectors.h"

#define NCONV (sizeof V_CONV / sizeof V_CONV[0])
#define NOW 1000u


static unsigned hub_frames(void)
{
    unsigned i, n = 0;
    for (i = 0; i < NCONV; i++) {
        n += !V_CONV[i].to_hub && V_CONV[i].has_msg;
    }
    return n;
}

/* Same hub stream three ways: whole, byte by byte, random splits with junk in between. */
static void test_streaming(void)
{
    static tl_t t;
    static uint8_t stream[16384];
    size_t n = 0, i, at;
    unsigned k, mode;
    uint32_t r = 0xC0FFEEu;
    case_begin("streaming: whole, byte by byte, random splits, junk between frames");
    for (mode = 0; mode < 3u; mode++) {
        n = 0;
        for (k = 0; k < NCONV; k++) {
            if (V_CONV[k].to_hub) {
                continue;
            }
            if (mode == 2u) { /* junk: a reboot banner and random bytes, zeros included */
                const char *banner = "\r\nBOOT v1.0 junk\r\n";
                memcpy(stream + n, banner, strlen(banner));
                n += strlen(banner);
                for (i = 0; i < 37u; i++) {
                    r = r * 1103515245u + 12345u;
                    stream[n++] = (uint8_t)(r >> 16);
                }
                stream[n++] = 0; /* the junk ends at a delimiter (the frame's own leading 00) */
            }
            memcpy(stream + n, V_CONV[k].wire.p, V_CONV[k].wire.n);
            n += V_CONV[k].wire.n;
        }
        tl_init(&t, UPV_ROLE_BOARD, V_BOARD_ADDR, V_BOARD_EPOCH, V_BOARD_KEY.p);
        at = 0;
        while (at < n) {
            size_t step = mode == 0u ? n : 1u;
            if (mode == 2u) {
                r = r * 1103515245u + 12345u;
                step = 1u + (r >> 16) % 97u;
            }
            if (step > n - at) {
                step = n - at;
            }
            upv_link_feed(&t.link, stream + at, step, NOW);
            at += step;
        }
        CHECK_MSG(t.messages == hub_frames(), "every hub message delivered once");
        CHECK(t.link.stats.mac_failures == 0u && t.link.stats.duplicates == 0u);
        if (mode == 2u) {
            upv_link_stats_t s;
            upv_link_get_stats(&t.link, &s);
            CHECK(s.junk_bytes > 0u);
        }
    }
    case_end();
}

/* Every single-bit flip of a VEND_APPROVED on the wire is dropped; the good frame after it
 * is still delivered, once. */
static void test_bit_flips(void)
{
    static tl_t t;
    static uint8_t buf[UPV_MAX_WIRE + 2];
    const v_conv_t *va = &V_CONV[8];
    size_t byte;
    unsigned bit, bad = 0, lost = 0;
    case_begin("bit flips: every single-bit error of a VEND_APPROVED is dropped");
    CHECK(va->msg.type == UPV_T_VEND_APPROVED);
    for (byte = 0; byte < va->wire.n; byte++) {
        for (bit = 0; bit < 8u; bit++) {
            board_before(&t, 8);
            memcpy(buf, va->wire.p, va->wire.n);
            buf[byte] ^= (uint8_t)(1u << bit);
            buf[va->wire.n] = 0;
            upv_link_feed(&t.link, buf, va->wire.n + 1u, NOW);
            bad += t.messages;
            t.expect = &va->msg;
            upv_link_feed(&t.link, va->wire.p, va->wire.n, NOW);
            lost += t.messages != 1u || t.expect_mismatch != 0u;
        }
    }
    CHECK_MSG(bad == 0u, "a corrupted frame was delivered");
    CHECK_MSG(lost == 0u, "the good frame after a corrupted one was lost");
    case_end();
}

/* Re-sign a hub frame of the conversation with other fields (the test has the key). */
static size_t hub_frame(const v_conv_t *c, uint16_t seq, uint32_t counter, uint32_t peer_epoch,
                        bool flip_tag, uint8_t *wire, size_t cap)
{
    static uint8_t frame[UPV_MAX_FRAME + 4];
    upv_header_t h = c->header;
    upv_hmac_key_t k;
    size_t n;
    h.seq = seq;
    h.peer_epoch = peer_epoch;
    upv_header_pack(&h, frame);
    memcpy(frame + UPV_HEADER_SIZE, c->payload.p, c->payload.n);
    n = UPV_HEADER_SIZE + c->payload.n;
    frame[n] = (uint8_t)counter;
    frame[n + 1] = (uint8_t)(counter >> 8);
    frame[n + 2] = (uint8_t)(counter >> 16);
    frame[n + 3] = (uint8_t)(counter >> 24);
    upv_hmac_key(&k, V_BOARD_KEY.p, V_BOARD_KEY.n);
    upv_mac_tag(&k, frame, n + 4, frame + n + 4);
    if (flip_tag) {
        frame[n + 11] ^= 0x01u;
    }
    return upv_wire_encode(frame, n + UPV_TRAILER_SIZE, wire, cap);
}

static void test_replays(void)
{
    static tl_t t;
    static uint8_t w[UPV_MAX_WIRE];
    const v_conv_t *va = &V_CONV[8];
    size_t n;
    case_begin("replay: the same VEND_APPROVED byte for byte is refused as a replay, not acked");
    board_before(&t, 8);
    upv_link_feed(&t.link, va->wire.p, va->wire.n, NOW);
    CHECK(t.messages == 1u);
    upv_link_poll(&t.link, NOW);
    tl_clear(&t);
    upv_link_feed(&t.link, va->wire.p, va->wire.n, NOW);
    CHECK(t.messages == 0u && t.link.stats.replays == 1u && t.link.stats.duplicates == 0u);
    upv_link_poll(&t.link, NOW);
    CHECK_MSG(t.out_n == 0u, "a replay is not acknowledged");
    case_end();

    case_begin("retransmission whose ACK was lost: fresh counter, same seq: duplicate, re-acked");
    board_before(&t, 8);
    upv_link_feed(&t.link, va->wire.p, va->wire.n, NOW);
    upv_link_poll(&t.link, NOW);
    tl_clear(&t);
    n = hub_frame(va, va->header.seq, va->counter + 1u, V_BOARD_EPOCH, false, w, sizeof w);
    upv_link_feed(&t.link, w, n, NOW);
    CHECK(t.messages == 0u && t.link.stats.duplicates == 1u && t.link.stats.replays == 0u);
    upv_link_poll(&t.link, NOW);
    CHECK_MSG(t.out_n == UPV_ACK_WIRE, "a duplicate is answered with a pure ACK");
    case_end();

    case_begin("replay: valid MAC with an old counter and a fresh seq is refused");
    board_before(&t, 8);
    n = hub_frame(va, va->header.seq, va->counter - 1u, V_BOARD_EPOCH, false, w, sizeof w);
    upv_link_feed(&t.link, w, n, NOW);
    CHECK(t.messages == 0u && t.link.stats.replays == 1u);
    CHECK(t.nev == 1u && t.ev[0].kind == UPV_EV_AUTH_FAILED && t.ev[0].msg_type == va->msg.type);
    upv_link_poll(&t.link, NOW);
    CHECK_MSG(t.out_n == 0u, "a replay is not acknowledged");
    case_end();

    case_begin("forged frame with a huge counter moves no replay state (INVARIANTS 13)");
    board_before(&t, 8);
    n = hub_frame(va, va->header.seq, 0xFFFFFFF0u, V_BOARD_EPOCH, true, w, sizeof w);
    upv_link_feed(&t.link, w, n, NOW);
    CHECK(t.messages == 0u && t.link.stats.mac_failures == 1u);
    t.expect = &va->msg;
    upv_link_feed(&t.link, va->wire.p, va->wire.n, NOW);
    CHECK_MSG(t.messages == 1u && t.expect_mismatch == 0u, "the genuine frame still accepted");
    CHECK(t.nev >= 1u && t.ev[t.nev - 1u].authenticated);
    case_end();

    case_begin("an out-of-order frame does not commit its counter");
    board_before(&t, 8);
    n = hub_frame(va, (uint16_t)(va->header.seq + 1u), va->counter + 5u, V_BOARD_EPOCH, false, w,
                  sizeof w);
    upv_link_feed(&t.link, w, n, NOW);
    CHECK(t.messages == 0u && t.link.stats.out_of_order == 1u);
    upv_link_feed(&t.link, va->wire.p, va->wire.n, NOW);
    CHECK_MSG(t.messages == 1u, "the in-sequence frame with a lower counter is taken");
    case_end();

    case_begin("money without a MAC is never delivered, keyed or not");
    {
        static uint8_t frame[UPV_MAX_FRAME + 4];
        upv_header_t h = va->header;
        unsigned keyed;
        for (keyed = 0; keyed < 2u; keyed++) {
            tl_init(&t, UPV_ROLE_BOARD, V_BOARD_ADDR, V_BOARD_EPOCH, keyed ? V_BOARD_KEY.p : NULL);
            h.flags = (uint8_t)(h.flags & ~UPV_F_MAC);
            h.seq = 1;
            upv_header_pack(&h, frame);
            memcpy(frame + UPV_HEADER_SIZE, va->payload.p, va->payload.n);
            n = upv_wire_encode(frame, UPV_HEADER_SIZE + va->payload.n, w, sizeof w);
            upv_link_feed(&t.link, w, n, NOW);
            CHECK(t.messages == 0u && t.nev == 1u && t.ev[0].kind == UPV_EV_AUTH_FAILED);
            CHECK(t.link.stats.mac_failures == 1u);
        }
    }
    case_end();
}

static void own_msg_log(upv_msg_t *m, const char *text)
{
    memset(m, 0, sizeof *m);
    m->type = UPV_T_LOG;
    m->u.log.level = 20;
    m->u.log.code = 1;
    m->u.log.text = upv_str(text);
}

static unsigned frames_in(const uint8_t *p, size_t n)
{
    upv_decoder_t d;
    static uint8_t buf[UPV_MAX_ENCODED];
    unsigned k = 0;
    size_t i;
    upv_decoder_init(&d, buf, sizeof buf);
    for (i = 0; i < n; i++) {
        const uint8_t *f;
        k += upv_decoder_push(&d, p[i], &f) != 0u;
    }
    return k;
}

static void test_transport(void)
{
    static tl_t t;
    upv_msg_t m;
    uint32_t when = 0, now = NOW, old_epoch, prev = NOW;
    unsigned i, resends = 0;
    uint8_t first_tag[8], f[UPV_MAX_FRAME];
    size_t fl;

    case_begin("rto0 follows section 8.4 (115200: ~155 ms, 9600: ~1310 ms)");
    CHECK(upv_rto0_ms(115200, 136) >= 155u && upv_rto0_ms(115200, 136) <= 156u);
    CHECK(upv_rto0_ms(9600, 136) >= 1310u && upv_rto0_ms(9600, 136) <= 1311u);
    case_end();

    case_begin("window: at most 4 frames in flight, the rest queued until ACKed");
    board_before(&t, 8); /* keyed, knows the hub's epoch; the hub has acked nothing of ours */
    own_msg_log(&m, "w");
    for (i = 0; i < 6u; i++) {
        CHECK(upv_link_send(&t.link, &m, i, NOW) == UPV_OK);
    }
    CHECK(frames_in(t.out, t.out_n) == UPV_WINDOW);
    CHECK(upv_link_pending(&t.link) == 6u);
    for (; i < UPV_TX_SLOTS; i++) {
        CHECK(upv_link_send(&t.link, &m, i, NOW) == UPV_OK);
    }
    CHECK(upv_link_send(&t.link, &m, 99, NOW) == UPV_E_QUEUE_FULL);
    case_end();

    case_begin("retransmission: rto doubles to 8x, fresh MAC counter each time, then give-up");
    board_before(&t, 8);
    own_msg_log(&m, "r");
    CHECK(upv_link_send(&t.link, &m, 7, NOW) == UPV_OK);
    fl = first_frame(t.out, t.out_n, f, sizeof f);
    CHECK(fl > 8u);
    memcpy(first_tag, f + fl - 8u, 8);
    old_epoch = upv_link_epoch(&t.link);
    CHECK(upv_link_next_timeout(&t.link, &when));
    {
        uint32_t rto0 = when - NOW;
        for (i = 0; i < UPV_MAX_RETRIES + 1u; i++) {
            uint32_t expect = rto0 * (i < 3u ? (1u << i) : 8u);
            CHECK(upv_link_next_timeout(&t.link, &when));
            CHECK_MSG(when - prev == expect, "timeout k is rto0 * min(2^k, 8)");
            tl_clear(&t);
            upv_link_poll(&t.link, when - 1u);
            CHECK_MSG(t.out_n == 0u, "nothing before the deadline");
            now = when;
            prev = when;
            upv_link_poll(&t.link, now);
            if (i < UPV_MAX_RETRIES) {
                resends += frames_in(t.out, t.out_n);
                fl = first_frame(t.out, t.out_n, f, sizeof f);
                CHECK_MSG(fl > 8u && memcmp(f + fl - 8u, first_tag, 8) != 0,
                          "a retransmission carries a new counter and tag");
            }
        }
    }
    CHECK(resends == UPV_MAX_RETRIES);
    CHECK_MSG(t.nev == 1u && t.ev[0].kind == UPV_EV_SEND_FAILED && t.ev[0].tag == 7u,
              "SendFailed after 6 transmissions");
    CHECK_MSG(upv_link_epoch(&t.link) != old_epoch && upv_link_epoch(&t.link) != 0u,
              "a give-up draws a new own epoch");
    CHECK(upv_link_pending(&t.link) == 0u && !upv_link_next_timeout(&t.link, &when));
    case_end();

    case_begin("an ACK from an old session never acknowledges a frame of the new one");
    {   /* after the give-up above: hub frame 12 acks seq 6 but names the old board epoch */
        const v_conv_t *c = &V_CONV[12];
        CHECK(upv_link_send(&t.link, &m, 8, now) == UPV_OK);
        tl_clear(&t);
        upv_link_feed(&t.link, c->wire.p, c->wire.n, now); /* peer_epoch = old: stale */
        CHECK(upv_link_pending(&t.link) == 1u);
        CHECK(t.messages == 0u && t.link.stats.stale_frames >= 1u);
        upv_link_poll(&t.link, now);
        fl = first_frame(t.out, t.out_n, f, sizeof f);
        CHECK_MSG(fl == UPV_HEADER_SIZE && f[1] == UPV_T_ACK, "answered with a pure ACK");
    }
    case_end();

    case_begin("peer restart: a new hub epoch fails what is pending and restarts both streams");
    {
        static uint8_t w[UPV_MAX_WIRE], frame[UPV_MAX_FRAME + 4];
        const v_conv_t *c = &V_CONV[1]; /* HELLO_ACK, re-signed from a new hub epoch */
        upv_header_t h = c->header;
        upv_hmac_key_t k;
        size_t n;
        board_before(&t, 8);
        CHECK(upv_link_send(&t.link, &m, 5, NOW) == UPV_OK);
        tl_clear(&t);
        h.epoch = 0x0BADF00Du;
        h.seq = 1;
        h.ack = 0;
        h.flags = (uint8_t)(h.flags & ~UPV_F_ACK);
        upv_header_pack(&h, frame);
        memcpy(frame + 16, c->payload.p, c->payload.n);
        n = 16u + c->payload.n;
        memset(frame + n, 0, 4);
        frame[n] = 1;
        upv_hmac_key(&k, V_BOARD_KEY.p, V_BOARD_KEY.n);
        upv_mac_tag(&k, frame, n + 4u, frame + n + 4u);
        n = upv_wire_encode(frame, n + 12u, w, sizeof w);
        upv_link_feed(&t.link, w, n, NOW);
        CHECK(t.nev == 3u);
        CHECK(t.nev == 3u && t.ev[0].kind == UPV_EV_SEND_FAILED && t.ev[0].tag == 5u);
        CHECK(t.nev == 3u && t.ev[1].kind == UPV_EV_PEER_RESTARTED &&
              t.ev[1].old_epoch == V_HUB_EPOCH && t.ev[1].new_epoch == 0x0BADF00Du);
        CHECK(t.nev == 3u && t.ev[2].kind == UPV_EV_MESSAGE && t.ev[2].authenticated);
        CHECK(upv_link_peer_epoch(&t.link) == 0x0BADF00Du);
        tl_clear(&t); /* the old hub epoch is retired: its frames are stale now */
        upv_link_feed(&t.link, V_CONV[8].wire.p, V_CONV[8].wire.n, NOW);
        CHECK(t.messages == 0u && t.link.stats.stale_frames == 1u);
        own_msg_log(&m, "after");
        tl_clear(&t);
        CHECK(upv_link_send(&t.link, &m, 6, NOW) == UPV_OK);
        fl = first_frame(t.out, t.out_n, f, sizeof f);
        CHECK_MSG(fl > 16u && f[12] == 1u && f[13] == 0u, "our stream restarts at seq 1");
        CHECK_MSG(fl > 16u && f[14] == 1u, "and acknowledges the new stream's seq 1");
    }
    case_end();

    case_begin("send refuses money without a key, oversize payloads and bad fields");
    tl_init(&t, UPV_ROLE_HUB, 3, V_HUB_EPOCH, NULL);
    CHECK(upv_link_send(&t.link, &V_CONV[8].msg, 0, NOW) == UPV_E_NO_KEY);
    {
        static char big[UPV_TX_PAYLOAD_MAX + 8];
        memset(big, 'x', sizeof big - 1u);
        big[sizeof big - 1u] = 0;
        own_msg_log(&m, big);
        m.u.log.text.len = 255;
        CHECK(upv_link_send(&t.link, &m, 0, NOW) == (UPV_TX_PAYLOAD_MAX >= 258u ? UPV_OK
                                                                            : UPV_E_NO_ROOM));
        m.u.log.text.len = 256;
        CHECK(upv_link_send(&t.link, &m, 0, NOW) == UPV_E_RANGE);
        own_msg_log(&m, "\xC3\x28");
        CHECK(upv_link_send(&t.link, &m, 0, NOW) == UPV_E_BAD_UTF8);
    }
    case_end();
}



void run_link_tests(void)
{
    test_streaming();
    test_bit_flips();
    test_replays();
    test_transport();
}
