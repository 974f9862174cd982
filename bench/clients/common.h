/* Shared helpers of the benchmark clients: timing, the stdin/stdout control handshake, stats, fatal errors. */
#ifndef CROSSWAY_BENCH_COMMON_H
#define CROSSWAY_BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wayland-client.h>

/*
 * Control protocol with bench/lib/client.ts (one line each way, so the runner can sample the proxy's CPU time
 * exactly around the measured phase while the client is blocked and the proxy idle):
 *   client -> "ready\n"            set-up and warm-up are done; the client waits for one line on stdin
 *   runner -> "\n"                 start measuring
 *   client -> "result {json}\n"    measurement done; the client waits for one line on stdin
 *   runner -> "\n"                 disconnect and exit 0
 * Errors go to stderr as "error: ..." with exit status 1.
 */

static inline void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static inline void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Blocks until the runner writes a line (or closes stdin, which also means "go on"). */
static inline void wait_line(void) {
  char buf[64];
  if (fgets(buf, sizeof buf, stdin) == NULL && ferror(stdin)) die("reading stdin: %s", strerror(errno));
}

static inline void ctl_ready(void) {
  fputs("ready\n", stdout);
  fflush(stdout);
  wait_line();
}

/* Prints the result line, then waits for the runner's last line so the proxy is sampled before teardown. */
static inline void ctl_result(const char *json) {
  printf("result %s\n", json);
  fflush(stdout);
  wait_line();
}

static inline long arg_long(int argc, char **argv, int i, long def) {
  if (i >= argc) return def;
  char *end = NULL;
  long v = strtol(argv[i], &end, 10);
  if (end == argv[i] || *end != '\0' || v < 0) die("argument %d: expected a non-negative integer, got '%s'", i, argv[i]);
  return v;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Writes {"n":..,"median":..,"p99":..,"mean":..,"min":..,"max":..} of `v` (sorted in place) into `out`. */
static inline void stats_json(double *v, size_t n, char *out, size_t cap) {
  if (n == 0) {
    snprintf(out, cap, "{\"n\":0}");
    return;
  }
  qsort(v, n, sizeof *v, cmp_double);
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += v[i];
  /* Nearest-rank percentiles. */
  size_t p50 = (n - 1) / 2, p99 = (size_t)((double)n * 0.99);
  if (p99 >= n) p99 = n - 1;
  double median = n % 2 ? v[p50] : (v[p50] + v[p50 + 1]) / 2;
  snprintf(out, cap, "{\"n\":%zu,\"median\":%.3f,\"p99\":%.3f,\"mean\":%.3f,\"min\":%.3f,\"max\":%.3f}", n, median,
           v[p99], sum / (double)n, v[0], v[n - 1]);
}

static inline struct wl_display *connect_or_die(void) {
  struct wl_display *d = wl_display_connect(NULL);
  if (d == NULL) die("wl_display_connect(%s): %s", getenv("WAYLAND_DISPLAY"), strerror(errno));
  return d;
}

static inline void roundtrip_or_die(struct wl_display *d) {
  if (wl_display_roundtrip(d) < 0) die("wl_display_roundtrip: %s", strerror(wl_display_get_error(d)));
}

/*
 * Flushes, waiting for POLLOUT on EAGAIN instead of letting libwayland's 4 KiB output buffer overflow, which
 * libwayland 1.21 turns into a fatal display error (connection.c, wl_connection_write -> wl_connection_flush).
 */
static inline void flush_blocking(struct wl_display *d) {
  while (wl_display_flush(d) < 0) {
    if (errno != EAGAIN) die("wl_display_flush: %s", strerror(errno));
    struct pollfd p = {.fd = wl_display_get_fd(d), .events = POLLOUT};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) die("poll: %s", strerror(errno));
  }
}

#endif
