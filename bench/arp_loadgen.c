/* ARP / NDP load generator for bench/arp.py: paced who-has requests (or IPv6 Neighbor
 * Solicitations) from one AF_PACKET socket, replies matched and timed on another.
 *
 * usage: arp_loadgen IFACE arp|ndp SENDER_IP TARGET_IP RATE SECONDS RUN_ID [GRACE_S]
 *
 * Every request carries its own sender hardware address 02:RUN:SEQ(32 bit) (Ethernet
 * source and ARP sha / NS source-link-layer option): both responders send the reply to
 * that MAC, so the reply's Ethernet destination names the request it answers. The
 * sender IP stays fixed, so the responder's kernel keeps a single neighbour entry.
 * Single thread, pinned by the caller. Sends are paced by spinning on CLOCK_MONOTONIC;
 * when descheduled for more than REBASE_NS the schedule shifts (a pause, counted)
 * instead of bursting the backlog at the responder. Replies are read non-blocking
 * between sends; RTT = send() time -> the reply's kernel receive timestamp
 * (SO_TIMESTAMPNS, CLOCK_REALTIME mapped to CLOCK_MONOTONIC), so our own scheduling
 * delay does not count; the user-space recv-return RTT is reported too. Replies later
 * than GRACE_S after the last send count as lost. Prints one JSON object on stdout,
 * including our schedstat run_delay (time runnable but not running).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define REBASE_NS 200000 /* late by more than this: shift the schedule instead of bursting */

/* Time this task spent runnable but not running (descheduled), from schedstat. */
static uint64_t run_delay_ns(void) {
    unsigned long long on_cpu = 0, delay = 0;
    FILE *f = fopen("/proc/self/schedstat", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &on_cpu, &delay) != 2) delay = 0;
        fclose(f);
    }
    return delay;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(const uint64_t *v, size_t n, double p) {
    if (n == 0) return -1;
    size_t k = (size_t)((double)(n - 1) * p / 100.0 + 0.5);
    return (double)v[k] / 1000.0;
}

/* Accept ARP replies and ICMPv6 type 136 (NA); everything else stays in the kernel. */
static struct sock_filter rx_code[] = {
    {0x28, 0, 0, 12},     /* 0: ldh [12]           ethertype        */
    {0x15, 0, 2, 0x0806}, /* 1: jeq ARP   ? 2 : 4                    */
    {0x28, 0, 0, 20},     /* 2: ldh [20]           ARP op           */
    {0x15, 5, 6, 2},      /* 3: jeq reply ? 9 : 10                   */
    {0x15, 0, 5, 0x86dd}, /* 4: jeq IPv6  ? 5 : 10                   */
    {0x30, 0, 0, 20},     /* 5: ldb [20]           next header      */
    {0x15, 0, 3, 58},     /* 6: jeq ICMPv6 ? 7 : 10                  */
    {0x30, 0, 0, 54},     /* 7: ldb [54]           ICMPv6 type      */
    {0x15, 0, 1, 136},    /* 8: jeq NA    ? 9 : 10                   */
    {0x06, 0, 0, 0x40000},/* 9: accept */
    {0x06, 0, 0, 0},      /* 10: reject */
};

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s) {
    for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
    return s;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s IFACE arp|ndp SENDER_IP TARGET_IP RATE SECONDS RUN_ID [GRACE_S]\n",
                argv[0]);
        return 2;
    }
    const char *ifname = argv[1];
    int ndp = strcmp(argv[2], "ndp") == 0;
    double rate = atof(argv[5]), seconds = atof(argv[6]);
    uint8_t run = (uint8_t)atoi(argv[7]);
    double grace = argc > 8 ? atof(argv[8]) : 0.5;
    uint8_t sip[16], tip[16];
    int af = ndp ? AF_INET6 : AF_INET;
    if (inet_pton(af, argv[3], sip) != 1 || inet_pton(af, argv[4], tip) != 1 || rate <= 0) {
        fprintf(stderr, "bad address or rate\n");
        return 2;
    }
    int ifindex = (int)if_nametoindex(ifname);
    if (!ifindex) { perror("if_nametoindex"); return 1; }

    /* Request template; the 6 stamp bytes go to `mac_at` (and `mac_at2`). */
    uint8_t frame[128] = {0};
    size_t flen, mac_at, mac_at2;
    uint16_t proto;
    if (!ndp) {
        proto = ETH_P_ARP;
        memset(frame, 0xff, 6);
        uint8_t hdr[] = {0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1};
        memcpy(frame + 12, hdr, sizeof hdr);
        memcpy(frame + 28, sip, 4);
        memcpy(frame + 38, tip, 4);
        flen = 60; /* 42 + padding, as real senders transmit */
        mac_at = 6; mac_at2 = 22;
    } else {
        proto = ETH_P_IPV6;
        uint8_t group[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, tip[13], tip[14], tip[15]};
        uint8_t dmac[6] = {0x33, 0x33, 0xff, tip[13], tip[14], tip[15]};
        memcpy(frame, dmac, 6);
        frame[12] = 0x86; frame[13] = 0xdd;
        frame[14] = 0x60; frame[18] = 0; frame[19] = 32; frame[20] = 58; frame[21] = 255;
        memcpy(frame + 22, sip, 16);
        memcpy(frame + 38, group, 16);
        frame[54] = 135; /* NS, code 0, checksum at 56, reserved 58..61 */
        memcpy(frame + 62, tip, 16);
        frame[78] = 1; frame[79] = 1; /* source link-layer address option */
        flen = 86;
        mac_at = 6; mac_at2 = 80;
    }

    int tx = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: receives nothing */
    int rx = socket(AF_PACKET, SOCK_RAW, 0);
    if (tx < 0 || rx < 0) { perror("socket"); return 1; }
    struct sock_fprog prog = {sizeof rx_code / sizeof rx_code[0], rx_code};
    int one = 1, buf = 32 << 20;
    if (setsockopt(rx, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) { perror("filter"); return 1; }
    setsockopt(rx, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    setsockopt(rx, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    if (setsockopt(rx, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0)
        setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(tx, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                             .sll_ifindex = ifindex};
    if (bind(rx, (struct sockaddr *)&ll, sizeof ll) < 0) { perror("bind"); return 1; }
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_protocol = htons(proto),
                             .sll_ifindex = ifindex, .sll_halen = 6};
    memcpy(to.sll_addr, frame, 6);
    /* drain anything queued between bind and now (e.g. gratuitous replies) */
    uint8_t rbuf[256];
    while (recv(rx, rbuf, sizeof rbuf, MSG_DONTWAIT) > 0) {}
    struct tpacket_stats st; socklen_t sl = sizeof st;
    getsockopt(rx, SOL_PACKET, PACKET_STATISTICS, &st, &sl); /* reset */

    uint64_t total = (uint64_t)(rate * seconds + 0.5);
    uint64_t *sent_at = calloc(total ? total : 1, sizeof *sent_at);
    uint64_t *rtt = calloc(total ? total : 1, sizeof *rtt);
    uint64_t *urtt = calloc(total ? total : 1, sizeof *urtt);
    uint8_t *seen = calloc(total ? total : 1, 1);
    if (!sent_at || !rtt || !urtt || !seen) { perror("calloc"); return 1; }
    memset(sent_at, 1, total * sizeof *sent_at); /* fault the pages in before timing */
    memset(rtt, 1, total * sizeof *rtt);
    memset(urtt, 1, total * sizeof *urtt);
    memset(seen, 1, total);
    memset(seen, 0, total);
    uint64_t sent = 0, got = 0, dup = 0, other = 0, bad = 0, send_err = 0, max_lag = 0;
    uint64_t pauses = 0, paused_ns = 0;
    double interval = 1e9 / rate;
    /* ICMPv6 checksum: pseudo-header + message, minus the stamped option bytes. */
    uint32_t base = 0;
    if (ndp) base = sum16(frame + 22, 32, 0) + 32 + 58 + sum16(frame + 54, 32, 0);
    /* Kernel receive stamps are CLOCK_REALTIME: map them to CLOCK_MONOTONIC. */
    struct timespec r0, r1;
    clock_gettime(CLOCK_REALTIME, &r0);
    uint64_t m0 = now_ns();
    clock_gettime(CLOCK_REALTIME, &r1);
    int64_t rt_off = (int64_t)((r0.tv_sec + r1.tv_sec) * 500000000ll) +
                     (r0.tv_nsec + r1.tv_nsec) / 2 - (int64_t)m0;
    char cbuf[256];
    struct iovec iov = {rbuf, sizeof rbuf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf};
    uint64_t delay0 = run_delay_ns();
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t start = now_ns() + 1000000, end_send = 0, deadline = UINT64_MAX;

    for (;;) {
        uint64_t t = now_ns();
        for (int burst = 0; sent < total && burst < 64; burst++) {
            uint64_t due = start + (uint64_t)((double)sent * interval);
            if (due > t) break;
            if (t - due > max_lag) max_lag = t - due;
            if (t - due > REBASE_NS) { /* we were descheduled: shift, never burst */
                pauses++;
                paused_ns += t - due;
                start += t - due;
            }
            uint8_t stamp[6] = {0x02, run, sent >> 24, sent >> 16, sent >> 8, sent};
            memcpy(frame + mac_at, stamp, 6);
            memcpy(frame + mac_at2, stamp, 6);
            if (ndp) {
                uint32_t s = base + sum16(stamp, 6, 0);
                while (s >> 16) s = (s & 0xffff) + (s >> 16);
                uint16_t c = (uint16_t)~s;
                frame[56] = c >> 8; frame[57] = c & 0xff;
            }
            t = now_ns();
            sent_at[sent] = t;
            if (sendto(tx, frame, flen, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)flen)
                send_err++;
            sent++;
        }
        if (sent == total && !end_send) {
            end_send = now_ns();
            deadline = end_send + (uint64_t)(grace * 1e9);
        }
        for (;;) {
            msg.msg_controllen = sizeof cbuf;
            ssize_t n = recvmsg(rx, &msg, MSG_DONTWAIT);
            if (n < 0) break;
            uint64_t r = now_ns(), k = r;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    k = (uint64_t)((int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec - rt_off);
                }
            if (n < 42 || rbuf[0] != 0x02 || rbuf[1] != run) { other++; continue; }
            uint64_t seq = (uint64_t)rbuf[2] << 24 | rbuf[3] << 16 | rbuf[4] << 8 | rbuf[5];
            int ok = ndp ? (n >= 78 && memcmp(rbuf + 62, tip, 16) == 0)
                         : (memcmp(rbuf + 28, tip, 4) == 0 && memcmp(rbuf + 32, rbuf, 6) == 0);
            if (!ok || seq >= sent) { bad++; continue; }
            if (seen[seq]) { dup++; continue; }
            seen[seq] = 1;
            rtt[got] = k > sent_at[seq] ? k - sent_at[seq] : 0;
            urtt[got++] = r - sent_at[seq];
        }
        if (now_ns() >= deadline || got == total) break;
    }
    if (!end_send) end_send = now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    uint64_t delay = run_delay_ns() - delay0;
    sl = sizeof st;
    getsockopt(rx, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
    qsort(rtt, got, sizeof *rtt, cmp_u64);
    qsort(urtt, got, sizeof *urtt, cmp_u64);
    double elapsed = (double)(end_send - start + paused_ns) / 1e9, sum = 0;
    for (uint64_t i = 0; i < got; i++) sum += (double)rtt[i];
    printf("{\"mode\": \"%s\", \"target_rate\": %.0f, \"seconds\": %.3f, \"sent\": %lu, "
           "\"received\": %lu, \"dup\": %lu, \"other\": %lu, \"bad\": %lu, \"send_errors\": %lu, "
           "\"achieved_rate\": %.1f, \"max_send_lag_us\": %.1f, \"pauses\": %lu, "
           "\"paused_ms\": %.3f, \"run_delay_ms\": %.3f, \"involuntary_switches\": %ld, "
           "\"rx_sock_packets\": %u, \"rx_sock_drops\": %u, ",
           ndp ? "ndp" : "arp", rate, elapsed, sent, got, dup, other, bad, send_err,
           elapsed > 0 ? (double)sent / elapsed : 0, (double)max_lag / 1000.0, pauses,
           (double)paused_ns / 1e6, (double)delay / 1e6, ru1.ru_nivcsw - ru0.ru_nivcsw,
           st.tp_packets, st.tp_drops);
    printf("\"rtt_us\": {\"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"p999\": %.2f, "
           "\"max\": %.2f, \"mean\": %.2f}, \"user_rtt_us\": {\"p50\": %.2f, \"p99\": %.2f, "
           "\"max\": %.2f}}\n",
           pct_us(rtt, got, 50), pct_us(rtt, got, 90), pct_us(rtt, got, 99),
           pct_us(rtt, got, 99.9), got ? (double)rtt[got - 1] / 1000.0 : -1,
           got ? sum / (double)got / 1000.0 : -1, pct_us(urtt, got, 50), pct_us(urtt, got, 99),
           got ? (double)urtt[got - 1] / 1000.0 : -1);
    return 0;
}
