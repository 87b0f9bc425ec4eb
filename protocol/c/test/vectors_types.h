/* vectors_types.h - the shapes of the generated vectors.h (tools/gen_vectors.py). */
#ifndef UPV_VECTORS_TYPES_H
#define UPV_VECTORS_TYPES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upv_link.h"
#include "upv_msg.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} upv_bytes_t;

typedef struct {
    upv_bytes_t data;
    uint32_t crc;
} v_crc_t;

typedef struct {
    upv_bytes_t raw, encoded;
} v_cobs_t;

typedef struct {
    int index;
    bool to_hub;
    upv_header_t header;
    bool has_msg;
    upv_msg_t msg;
    upv_bytes_t payload;
    bool has_mac;
    uint32_t counter;
    upv_bytes_t tag, frame, crc, wire;
} v_conv_t;

typedef struct {
    size_t offset; /* into upv_link_stats_t */
    uint32_t amount;
} v_stat_t;

typedef struct {
    const char *name;
    upv_bytes_t wire;
    bool delivered;
    int event;         /* upv_event_kind_t, 0 = none */
    uint8_t msg_type, version;
    const char *reason; /* spec reason name or NULL */
    int acked;          /* -1 not stated, 0 / 1 */
    unsigned nstats;
    v_stat_t stats[8];
    unsigned nany;
    v_stat_t any_of[8];
} v_neg_t;

#endif
