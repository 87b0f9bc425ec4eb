/* board.h - a vending-machine board's firmware logic on top of upv_link (docs/protocol.md 11).
 *
 * Portable C99 (no POSIX): the host program (main.c) supplies the tick, the UART bytes, a random
 * source and a line printer; on an STM32 the same calls come from the main loop and the ISRs.
 * The board states move only through the one table in board.c.
 */
#ifndef UPV_BOARD_H
#define UPV_BOARD_H
#include <stdbool.h>
#include <stdint.h>

#include "upv_link.h"

#define BOARD_REF_MAX 64u     /* longest order_ref kept */
#define BOARD_AUTHS 16u       /* used auth values remembered ("flash") */
#define BOARD_PRODUCTS 16u
#define BOARD_TEXT 64u

/* How the motors behave: all items, none (jam), one short, or never finish (reset it). */
typedef enum { PLAN_OK = 0, PLAN_JAM, PLAN_PARTIAL, PLAN_HANG } board_plan_t;

typedef struct {
    uint8_t uid[UPV_UID_SIZE];
    uint8_t key[UPV_KEY_SIZE];
    uint8_t addr;
    uint32_t baud;
    const char *fw_version;
    const char *products[BOARD_PRODUCTS];
    uint8_t nproducts;
    uint32_t hello_retry_ms;  /* HELLO again when HELLO_ACK does not come */
    uint32_t vend_ms;         /* how long the motors run */
    uint32_t (*random32)(void *user);
    void (*write)(void *user, const uint8_t *data, size_t n);
    void (*say)(void *user, const char *line); /* one event line for the operator / test */
    void *user;
} board_config_t;

/* What survives a reset (11.4). */
typedef struct {
    char last_order[BOARD_REF_MAX];
    uint8_t last_outcome, last_dispensed;
    uint8_t auths[BOARD_AUTHS][UPV_AUTH_SIZE];
    uint8_t nauths, next_auth;
    uint32_t vends_ok, vends_failed;
} board_flash_t;

typedef struct {
    board_config_t cfg;
    upv_link_t link;
    board_flash_t flash;
    uint8_t state;            /* upv_board_state_t */
    bool connected;           /* HELLO_ACK with in_service seen in this session */
    uint32_t boot_ms, now;
    uint32_t hello_due;       /* resend HELLO at this tick (when not connected) */
    uint32_t heartbeat_ms, heartbeat_due;
    uint16_t request_id;
    char order_ref[BOARD_REF_MAX];
    uint8_t quantity;
    uint32_t qr_expires;      /* tick */
    uint32_t vend_done;       /* tick the motors stop */
    board_plan_t plan;
    char text[BOARD_TEXT * 4];
} board_t;

/* Power on (again): RAM state is lost, b->flash survives; a new epoch, then HELLO. */
int board_boot(board_t *b, const board_config_t *cfg, uint32_t now_ms);
/* Bytes from the UART. */
void board_rx(board_t *b, const uint8_t *data, size_t n, uint32_t now_ms);
/* Timers: call after board_rx and whenever board_next_ms() passes. */
void board_tick(board_t *b, uint32_t now_ms);
uint32_t board_next_ms(const board_t *b, uint32_t now_ms);

/* The customer. Each returns UPV_OK or a negative code with a line said. */
int board_buy(board_t *b, const char *product, const char *options_csv, uint8_t quantity);
int board_cancel(board_t *b);
void board_set_plan(board_t *b, board_plan_t plan);
const char *board_state_name(uint8_t state);

#endif
