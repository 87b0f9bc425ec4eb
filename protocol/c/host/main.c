/* main.c - the host board program: board.c + the library on a pseudo-terminal or a tty.
 *
 *   upv-board --pty LINK  ...   create a pty, point the symlink LINK at its slave (the hub
 *                               opens LINK), act as the board on the master side
 *   upv-board --port PATH ...   open an existing tty (a pty slave, /dev/ttyUSB0) as the board
 *
 * Options: --uid HEX24  --master-key HEX | --key HEX64  --addr N  --baud N
 *          --products a,b,c  --fw TEXT  --vend-ms N  --hello-retry-ms N
 * stdin, one command a line: buy PRODUCT [OPT,OPT|-] [QTY] | plan ok|jam|partial|hang |
 *          cancel | reboot (power cycle: flash kept) | state | quit.
 * stdout: one event a line (see board.c), flushed per line.
 * POSIX lives here only; the library and board.c are plain C99.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "board.h"

typedef struct {
    int fd;         /* the board's end of the line */
    int slave_keep; /* --pty: our own handle on the slave, so a closing hub gives no EIO */
    int urandom;
    unsigned long dropped;
} host_t;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static uint32_t host_random(void *user)
{
    host_t *h = (host_t *)user;
    uint32_t v = 0;
    if (read(h->urandom, &v, sizeof v) != (ssize_t)sizeof v) {
        v = now_ms() * 2654435761u; /* never reached on Linux */
    }
    return v;
}

static void host_write(void *user, const uint8_t *data, size_t n)
{
    host_t *h = (host_t *)user;
    while (n) { /* a UART never blocks: bytes nobody takes are lost, as on a real line */
        ssize_t w = write(h->fd, data, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            h->dropped += n;
            return;
        }
        data += w;
        n -= (size_t)w;
    }
}

static void host_say(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

static int hexbytes(const char *hex, uint8_t *out, size_t n)
{
    size_t i;
    if (strlen(hex) != 2u * n) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2u * i, "%2x", &v) != 1) {
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

static int make_raw(int fd, uint32_t baud)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        return -1;
    }
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON |
                             IXOFF);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB);
    t.c_cflag |= CS8 | CREAD | CLOCAL;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (baud == 115200u) {
        cfsetispeed(&t, B115200);
        cfsetospeed(&t, B115200);
    } else if (baud == 9600u) {
        cfsetispeed(&t, B9600);
        cfsetospeed(&t, B9600);
    }
    return tcsetattr(fd, TCSANOW, &t);
}

static int open_pty(host_t *h, const char *link, uint32_t baud)
{
    char tmp[4096];
    const char *slave;
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || (slave = ptsname(m)) == NULL) {
        perror("upv-board: pty");
        return -1;
    }
    h->slave_keep = open(slave, O_RDWR | O_NOCTTY);
    if (h->slave_keep < 0 || make_raw(h->slave_keep, baud) != 0) { /* termios live on the slave */
        perror("upv-board: pty slave");
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", link, (long)getpid());
    unlink(tmp);
    if (symlink(slave, tmp) != 0 || rename(tmp, link) != 0) {
        perror("upv-board: symlink");
        return -1;
    }
    fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
    h->fd = m;
    printf("pty %s link=%s\n", slave, link);
    fflush(stdout);
    return 0;
}

static int open_port(host_t *h, const char *path, uint32_t baud)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 || make_raw(fd, baud) != 0) {
        perror("upv-board: port");
        return -1;
    }
    h->fd = fd;
    return 0;
}

static void command(board_t *b, char *line)
{
    char *cmd = strtok(line, " \t\r\n");
    if (cmd == NULL) {
        return;
    }
    if (strcmp(cmd, "buy") == 0) {
        char *product = strtok(NULL, " \t\r\n");
        char *opts = strtok(NULL, " \t\r\n");
        char *qty = strtok(NULL, " \t\r\n");
        if (product == NULL) {
            host_say(NULL, "usage: buy PRODUCT [OPT,OPT|-] [QTY]");
            return;
        }
        (void)board_buy(b, product, opts && strcmp(opts, "-") != 0 ? opts : "",
                        (uint8_t)(qty ? atoi(qty) : 1));
    } else if (strcmp(cmd, "plan") == 0) {
        char *p = strtok(NULL, " \t\r\n");
        board_set_plan(b, p && strcmp(p, "jam") == 0       ? PLAN_JAM
                          : p && strcmp(p, "partial") == 0 ? PLAN_PARTIAL
                          : p && strcmp(p, "hang") == 0    ? PLAN_HANG
                                                           : PLAN_OK);
        host_say(NULL, "plan_set");
    } else if (strcmp(cmd, "reboot") == 0) {
        host_say(NULL, "rebooting");
        if (board_boot(b, &b->cfg, now_ms()) != UPV_OK) {
            host_say(NULL, "reboot_failed");
        }
    } else if (strcmp(cmd, "cancel") == 0) {
        (void)board_cancel(b);
    } else if (strcmp(cmd, "state") == 0) {
        upv_link_stats_t s;
        char text[256];
        upv_link_get_stats(&b->link, &s);
        snprintf(text, sizeof text,
                 "state=%s connected=%u epoch=%08lx rx=%lu tx=%lu retransmits=%lu crc_errors=%lu "
                 "mac_failures=%lu", board_state_name(b->state), b->connected ? 1u : 0u,
                 (unsigned long)upv_link_epoch(&b->link), (unsigned long)s.frames_rx,
                 (unsigned long)s.frames_tx, (unsigned long)s.retransmits,
                 (unsigned long)s.crc_errors, (unsigned long)s.mac_failures);
        host_say(NULL, text);
    } else if (strcmp(cmd, "quit") == 0) {
        stop_flag = 1;
    } else {
        host_say(NULL, "unknown_command");
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: upv-board (--pty LINK | --port PATH) --uid HEX24 "
                    "(--master-key HEX | --key HEX64) [--addr N] [--baud N] [--products a,b] "
                    "[--fw TEXT] [--vend-ms N] [--hello-retry-ms N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static board_t board;
    static char products[512] = "espresso,latte,water";
    board_config_t cfg;
    host_t h;
    const char *pty_link = NULL, *port = NULL;
    uint8_t master[64];
    size_t master_len = 0;
    bool have_uid = false, have_key = false;
    char line[512];
    size_t line_n = 0;
    int i;
    char *tok;

    memset(&cfg, 0, sizeof cfg);
    memset(&h, 0, sizeof h);
    h.fd = h.slave_keep = -1;
    cfg.baud = 115200;
    cfg.fw_version = "c-ref-1.0";
    cfg.hello_retry_ms = 2000;
    cfg.vend_ms = 150;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            return usage();
        }
        i++;
        if (strcmp(a, "--pty") == 0) {
            pty_link = v;
        } else if (strcmp(a, "--port") == 0) {
            port = v;
        } else if (strcmp(a, "--uid") == 0) {
            have_uid = hexbytes(v, cfg.uid, UPV_UID_SIZE) == 0;
            if (!have_uid) {
                return usage();
            }
        } else if (strcmp(a, "--key") == 0) {
            have_key = hexbytes(v, cfg.key, UPV_KEY_SIZE) == 0;
            if (!have_key) {
                return usage();
            }
        } else if (strcmp(a, "--master-key") == 0) {
            master_len = strlen(v) / 2u;
            if (master_len > sizeof master || hexbytes(v, master, master_len) != 0) {
                return usage();
            }
        } else if (strcmp(a, "--addr") == 0) {
            cfg.addr = (uint8_t)atoi(v);
        } else if (strcmp(a, "--baud") == 0) {
            cfg.baud = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--products") == 0) {
            snprintf(products, sizeof products, "%s", v);
        } else if (strcmp(a, "--fw") == 0) {
            cfg.fw_version = v;
        } else if (strcmp(a, "--vend-ms") == 0) {
            cfg.vend_ms = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--hello-retry-ms") == 0) {
            cfg.hello_retry_ms = (uint32_t)strtoul(v, NULL, 10);
        } else {
            return usage();
        }
    }
    if ((pty_link == NULL) == (port == NULL) || !have_uid || (!have_key && master_len == 0u)) {
        return usage();
    }
    if (!have_key && upv_derive_board_key(master, master_len, cfg.uid, cfg.key) != UPV_OK) {
        fprintf(stderr, "upv-board: master key must be at least 16 bytes\n");
        return 2;
    }
    for (tok = strtok(products, ","); tok && cfg.nproducts < BOARD_PRODUCTS;
         tok = strtok(NULL, ",")) {
        cfg.products[cfg.nproducts++] = tok;
    }
    h.urandom = open("/dev/urandom", O_RDONLY);
    if (h.urandom < 0) {
        perror("upv-board: /dev/urandom");
        return 1;
    }
    if (pty_link ? open_pty(&h, pty_link, cfg.baud) : open_port(&h, port, cfg.baud)) {
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    cfg.random32 = host_random;
    cfg.write = host_write;
    cfg.say = host_say;
    cfg.user = &h;
    if (board_boot(&board, &cfg, now_ms()) != UPV_OK) {
        fprintf(stderr, "upv-board: bad configuration\n");
        return 2;
    }
    memset(master, 0, sizeof master);
    memset(cfg.key, 0, sizeof cfg.key);
    while (!stop_flag) {
        struct pollfd fds[2];
        uint32_t t = now_ms(), next = board_next_ms(&board, t);
        int timeout = (int32_t)(next - t) > 0 ? (int)(next - t) : 0;
        int nfd = 1;
        fds[0].fd = h.fd;
        fds[0].events = POLLIN;
        fds[1].fd = STDIN_FILENO;
        fds[1].events = POLLIN;
        nfd = 2;
        if (poll(fds, (nfds_t)nfd, timeout) < 0 && errno != EINTR) {
            perror("upv-board: poll");
            break;
        }
        if (fds[0].revents & POLLIN) {
            uint8_t buf[512];
            ssize_t n = read(h.fd, buf, sizeof buf);
            if (n > 0) {
                board_rx(&board, buf, (size_t)n, now_ms());
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            char c;
            ssize_t n = read(STDIN_FILENO, &c, 1);
            if (n <= 0) {
                stop_flag = 1; /* stdin closed: the operator is gone */
            } else if (c == '\n' || line_n + 1u >= sizeof line) {
                line[line_n] = 0;
                line_n = 0;
                command(&board, line);
            } else {
                line[line_n++] = c;
            }
        }
        board_tick(&board, now_ms());
    }
    if (pty_link) {
        unlink(pty_link);
    }
    host_say(NULL, "bye");
    return 0;
}
