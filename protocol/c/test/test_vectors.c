/* test_vectors.c - every item of docs/protocol_vectors.json, both directions. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "testlink.h"
#include "upv_cobs.h"
#include "upv_crc32.h"
#include "upv_mac.h"
#include "vectors.h"

#define NCONV (sizeof V_CONV / sizeof V_CONV[0])
#define NNEG (sizeof V_NEG / sizeof V_NEG[0])
#define NOW 1000u

static bool bytes_eq(const uint8_t *a, size_t na, upv_bytes_t b)
{
    return na == b.n && (na == 0u || memcmp(a, b.p, na) == 0);
}

static void test_crc(void)
{
    unsigned i;
    uint8_t buf[64];
    case_begin("crc check value");
    H.vectors++;
    CHECK(upv_crc32(V_CRC_CHECK_INPUT.p, V_CRC_CHECK_INPUT.n) == V_CRC_CHECK_VALUE);
    CHECK(V_CRC_CHECK_VALUE == UPV_CRC_CHECK);
    /* the residue: CRC over data || its CRC (LE) */
    memcpy(buf, V_CRC_CHECK_INPUT.p, V_CRC_CHECK_INPUT.n);
    (void)upv_wire_encode(buf, V_CRC_CHECK_INPUT.n, buf + 20, 40);
    CHECK(upv_crc32(buf, V_CRC_CHECK_INPUT.n + 4u) == UPV_CRC_RESIDUE);
    /* continuing a CRC in two parts gives the same */
    CHECK(upv_crc32_update(upv_crc32(V_CRC_CHECK_INPUT.p, 4), V_CRC_CHECK_INPUT.p + 4,
                           V_CRC_CHECK_INPUT.n - 4u) == V_CRC_CHECK_VALUE);
    case_end();
    for (i = 0; i < sizeof V_CRC / sizeof V_CRC[0]; i++) {
        case_begin("crc sample");
        H.vectors++;
        CHECK(upv_crc32(V_CRC[i].data.p, V_CRC[i].data.n) == V_CRC[i].crc);
        case_end();
    }
}

static void test_cobs(void)
{
    unsigned i;
    static uint8_t out[2048];
    for (i = 0; i < sizeof V_COBS / sizeof V_COBS[0]; i++) {
        const v_cobs_t *v = &V_COBS[i];
        size_t n;
        long m;
        case_begin("cobs pair");
        H.vectors++;
        n = upv_cobs_encode(v->raw.p, v->raw.n, out, sizeof out);
        CHECK_MSG(bytes_eq(out, n, v->encoded), "encode gives the vector's encoding");
        CHECK(n <= UPV_COBS_MAX(v->raw.n));
        CHECK(upv_cobs_encode(v->raw.p, v->raw.n, out, n - 1u) == 0u); /* one byte short */
        m = upv_cobs_decode(v->encoded.p, v->encoded.n, out);
        CHECK_MSG(m >= 0 && bytes_eq(out, (size_t)m, v->raw), "decode gives the raw bytes");
        memcpy(out, v->encoded.p, v->encoded.n); /* and in place */
        m = upv_cobs_decode(out, v->encoded.n, out);
        CHECK_MSG(m >= 0 && bytes_eq(out, (size_t)m, v->raw), "in-place decode");
        case_end();
    }
}

static void test_keys(void)
{
    uint8_t key[UPV_KEY_SIZE];
    case_begin("board key derivation");
    H.vectors++;
    CHECK(upv_derive_board_key(V_MASTER_KEY.p, V_MASTER_KEY.n, V_UID.p, key) == UPV_OK);
    CHECK(bytes_eq(key, sizeof key, V_BOARD_KEY));
    CHECK(upv_derive_board_key(V_MASTER_KEY.p, 15, V_UID.p, key) == UPV_E_ARG);
    case_end();
}

/* Build the frame of a conversation entry from its fields; compare every byte string. */
static void check_encode(const v_conv_t *c)
{
    static uint8_t frame[UPV_MAX_FRAME + 4], wire[UPV_MAX_WIRE];
    upv_hmac_key_t k;
    size_t plen = 0, n, w;
    upv_header_pack(&c->header, frame);
    if (c->has_msg) {
        CHECK(upv_msg_encode(&c->msg, frame + UPV_HEADER_SIZE, UPV_MAX_BODY, &plen) == UPV_OK);
    }
    CHECK_MSG(bytes_eq(frame + UPV_HEADER_SIZE, plen, c->payload), "payload from fields");
    n = UPV_HEADER_SIZE + plen;
    if (c->has_mac) {
        upv_hmac_key(&k, V_BOARD_KEY.p, V_BOARD_KEY.n);
        frame[n] = (uint8_t)c->counter;
        frame[n + 1] = (uint8_t)(c->counter >> 8);
        frame[n + 2] = (uint8_t)(c->counter >> 16);
        frame[n + 3] = (uint8_t)(c->counter >> 24);
        upv_mac_tag(&k, frame, n + 4, frame + n + 4);
        CHECK_MSG(bytes_eq(frame + n + 4, 8, c->tag), "MAC tag under the board key");
        n += UPV_TRAILER_SIZE;
    }
    CHECK_MSG(bytes_eq(frame, n, c->frame), "frame = header || payload || trailer");
    w = upv_wire_encode(frame, n, wire, sizeof wire);
    CHECK_MSG(bytes_eq(frame + n, 4, c->crc), "CRC bytes");
    CHECK_MSG(bytes_eq(wire, w, c->wire), "wire bytes");
    CHECK(w <= UPV_WIRE_MAX_FOR(n));
    {   /* decode direction, standalone: wire -> frame -> header and message */
        uint8_t got[UPV_MAX_FRAME];
        upv_header_t h;
        upv_msg_t m;
        size_t fl = first_frame(c->wire.p, c->wire.n, got, sizeof got);
        CHECK_MSG(bytes_eq(got, fl, c->frame), "wire decodes to the frame");
        upv_header_unpack(got, &h);
        CHECK(memcmp(&h, &c->header, sizeof h) == 0 ||
              (h.version == c->header.version && h.type == c->header.type &&
               h.flags == c->header.flags && h.addr == c->header.addr &&
               h.epoch == c->header.epoch && h.peer_epoch == c->header.peer_epoch &&
               h.seq == c->header.seq && h.ack == c->header.ack));
        if (c->has_msg) {
            CHECK(upv_msg_decode(h.type, c->payload.p, c->payload.n, &m) == UPV_OK);
            CHECK_MSG(msg_equal(&m, &c->msg), "payload decodes to the fields");
        }
    }
}

static char conv_err[2][64][96]; /* [role][entry]: first failure in the link replay */

static void conv_fail(int role, unsigned i, const char *what)
{
    if (i < 64u && !conv_err[role][i][0]) {
        snprintf(conv_err[role][i], sizeof conv_err[role][i], "%s", what);
    }
}

/* Play one side of the conversation through a real link: feed the peer's wires, send our
 * messages at the points the vectors send them, and compare what our link writes byte for byte.
 * Consecutive peer frames form one batch (no poll in between), as a UART read would. */
static void replay(int role_hub, tl_t *t, size_t upto, bool send_own)
{
    unsigned i;
    tl_init(t, role_hub ? UPV_ROLE_HUB : UPV_ROLE_BOARD, role_hub ? V_HUB_ADDR : V_BOARD_ADDR,
            role_hub ? V_HUB_EPOCH : V_BOARD_EPOCH, role_hub ? NULL : V_BOARD_KEY.p);
    for (i = 0; i < upto; i++) {
        const v_conv_t *c = &V_CONV[i];
        bool peer = c->to_hub == (role_hub != 0);
        bool next_peer = i + 1u < upto && V_CONV[i + 1u].to_hub == (role_hub != 0);
        if (peer) {
            tl_clear(t);
            t->expect = c->has_msg ? &c->msg : NULL;
            upv_link_feed(&t->link, c->wire.p, c->wire.n, NOW);
            if (c->has_msg) {
                if (t->messages != 1u || t->nev != 1u) {
                    conv_fail(role_hub, i, "not delivered as exactly one message");
                } else if (t->expect_mismatch) {
                    conv_fail(role_hub, i, "delivered fields differ from the vector");
                } else if (t->ev[0].authenticated != c->has_mac) {
                    conv_fail(role_hub, i, "authenticated flag differs from the MAC");
                }
                if (role_hub && c->msg.type == UPV_T_HELLO) {
                    upv_link_set_key(&t->link, V_BOARD_KEY.p); /* the hub keys after HELLO */
                }
            } else if (t->nev != 0u) {
                conv_fail(role_hub, i, "a pure ACK produced events");
            }
            if (t->out_n) {
                conv_fail(role_hub, i, "link wrote while receiving a batch");
            }
            if (!next_peer && send_own && i + 1u < upto && !V_CONV[i + 1u].has_msg) {
                tl_clear(t);
                upv_link_poll(&t->link, NOW); /* our pure ACK is next */
                if (!bytes_eq(t->out, t->out_n, V_CONV[i + 1u].wire)) {
                    conv_fail(role_hub, i + 1u, "our pure ACK differs from the vector");
                }
                i++;
            }
            continue;
        }
        if (!send_own) {
            continue;
        }
        if (!c->has_msg) {
            continue; /* handled right after the peer's batch */
        }
        tl_clear(t);
        if (upv_link_send(&t->link, &c->msg, (uint32_t)i, NOW) != UPV_OK) {
            conv_fail(role_hub, i, "send refused");
        } else if (!bytes_eq(t->out, t->out_n, c->wire)) {
            conv_fail(role_hub, i, "our link's wire differs from the vector");
        }
        if (!next_peer) {
            tl_clear(t);
            upv_link_poll(&t->link, NOW);
            if (t->out_n) {
                conv_fail(role_hub, i, "pure ACK sent though a data frame carried the ACK");
            }
        }
    }
}

static void test_conversation(void)
{
    static tl_t t;
    unsigned i;
    replay(0, &t, NCONV, true);
    CHECK(upv_link_pending(&t.link) == 0u); /* the hub acknowledged every board frame */
    replay(1, &t, NCONV, true);
    CHECK(upv_link_pending(&t.link) == 0u);
    for (i = 0; i < NCONV; i++) {
        char name[64];
        snprintf(name, sizeof name, "conversation[%u]", i);
        case_begin(name);
        H.vectors++;
        check_encode(&V_CONV[i]);
        CHECK_MSG(!conv_err[0][i][0], conv_err[0][i]);
        CHECK_MSG(!conv_err[1][i][0], conv_err[1][i]);
        case_end();
    }
}

static uint32_t stat_at(const upv_link_stats_t *s, size_t off)
{
    uint32_t v;
    memcpy(&v, (const uint8_t *)s + off, sizeof v);
    return v;
}

static void test_negative(void)
{
    static tl_t t;
    unsigned i, k;
    for (i = 0; i < NNEG; i++) {
        const v_neg_t *v = &V_NEG[i];
        upv_link_stats_t before, after;
        uint8_t f[UPV_MAX_FRAME];
        size_t fl;
        upv_header_t sent, ackh;
        char name[80];
        snprintf(name, sizeof name, "negative %s", v->name);
        case_begin(name);
        H.vectors++;
        replay(1, &t, NCONV, false); /* a hub link that received every board frame */
        upv_link_poll(&t.link, NOW);
        upv_link_get_stats(&t.link, &before);
        tl_clear(&t);
        upv_link_feed(&t.link, v->wire.p, v->wire.n, NOW);
        upv_link_poll(&t.link, NOW);
        upv_link_get_stats(&t.link, &after);
        CHECK_MSG((t.messages == 1u) == v->delivered, "delivered as expected");
        if (v->event == 0) {
            CHECK_MSG(t.nev == 0u, "silently dropped (no event)");
        } else {
            CHECK_MSG(t.nev == 1u && (int)t.ev[0].kind == v->event, "the expected event");
            CHECK(t.nev == 0u || t.ev[0].msg_type == v->msg_type);
            if (v->event == UPV_EV_UNKNOWN) {
                CHECK(t.nev == 0u || t.ev[0].version == (v->version ? v->version : 1u));
            }
            if (v->reason) {
                CHECK_MSG(t.nev == 1u && strcmp(upv_err_name(t.ev[0].reason), v->reason) == 0,
                          "invalid-message reason");
            }
        }
        for (k = 0; k < v->nstats; k++) {
            CHECK_MSG(stat_at(&after, v->stats[k].offset) - stat_at(&before, v->stats[k].offset) ==
                          v->stats[k].amount, "a stats counter moved by the stated amount");
        }
        if (v->nany) {
            bool any = false;
            for (k = 0; k < v->nany; k++) {
                any = any || stat_at(&after, v->any_of[k].offset) > stat_at(&before, v->any_of[k].offset);
            }
            CHECK_MSG(any, "one of stats_any_of moved");
        }
        if (v->acked >= 0) {
            bool covered = false;
            fl = first_frame(v->wire.p, v->wire.n, f, sizeof f);
            CHECK(fl >= UPV_HEADER_SIZE);
            if (fl >= UPV_HEADER_SIZE) {
                upv_header_unpack(f, &sent);
                fl = first_frame(t.out, t.out_n, f, sizeof f);
                if (fl >= UPV_HEADER_SIZE) {
                    upv_header_unpack(f, &ackh);
                    covered = (ackh.flags & UPV_F_ACK) && (uint16_t)(ackh.ack - sent.seq) < 0x8000u;
                }
            }
            CHECK_MSG(covered == (v->acked == 1), "our ACK covers the frame's seq as expected");
        }
        case_end();
    }
}

void run_vector_tests(void)
{
    test_crc();
    test_cobs();
    test_keys();
    test_conversation();
    test_negative();
}
