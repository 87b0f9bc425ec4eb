/* testlink.h - a link under test: captured output, recorded events, expected message checks. */
#ifndef UPV_TESTLINK_H
#define UPV_TESTLINK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upv_link.h"

#define TL_MAX_EVENTS 64u

typedef struct {
    upv_link_t link;
    uint8_t out[16384];
    size_t out_n;
    unsigned out_writes;
    upv_event_t ev[TL_MAX_EVENTS]; /* copies; ev[i].msg is NOT valid after the callback */
    unsigned nev;
    unsigned messages;             /* UPV_EV_MESSAGE events */
    const upv_msg_t *expect;       /* when set: each delivered message must equal it */
    unsigned expect_mismatch;
    uint32_t rng;
} tl_t;

int tl_init(tl_t *t, upv_role_t role, uint8_t addr, uint32_t epoch, const uint8_t *key);
void tl_clear(tl_t *t);
/* Field-by-field equality of two messages. */
bool msg_equal(const upv_msg_t *a, const upv_msg_t *b);
/* Decode the first frame of a captured wire (for tests that read our own output). Returns the
 * frame length (0 = none) and copies the frame into out. */
size_t first_frame(const uint8_t *wire, size_t n, uint8_t *out, size_t cap);
uint32_t tl_random(tl_t *t);
/* A keyed board link that has received the hub's conversation frames before entry `upto`
 * (and sent nothing), its output and events cleared. */
void board_before(tl_t *t, unsigned upto);

#endif
