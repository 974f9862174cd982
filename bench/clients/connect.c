/* Benchmark client: connect + wl_display.get_registry + one round trip + disconnect, repeated; µs each. */
#include "common.h"

static void on_global(void *data, struct wl_registry *r, uint32_t name, const char *iface, uint32_t version) {
  (void)r, (void)name, (void)iface, (void)version;
  (*(unsigned *)data)++;
}
static void on_global_remove(void *data, struct wl_registry *r, uint32_t name) { (void)data, (void)r, (void)name; }
static const struct wl_registry_listener registry_listener = {on_global, on_global_remove};

/* One connection's life; returns the number of globals seen (0 means the compositor sent none: an error). */
static unsigned connect_once(void) {
  struct wl_display *d = connect_or_die();
  struct wl_registry *reg = wl_display_get_registry(d);
  unsigned globals = 0;
  wl_registry_add_listener(reg, &registry_listener, &globals);
  roundtrip_or_die(d);
  wl_registry_destroy(reg);
  wl_display_disconnect(d);
  if (globals == 0) die("no globals advertised");
  return globals;
}

/* usage: connect [max_iterations=200] [max_ms=1500] [warmup=5] */
int main(int argc, char **argv) {
  long max_iter = arg_long(argc, argv, 1, 200), max_ms = arg_long(argc, argv, 2, 1500);
  long warmup = arg_long(argc, argv, 3, 5);
  if (max_iter < 1) die("max_iterations must be >= 1");
  double *us = calloc((size_t)max_iter, sizeof *us);
  if (us == NULL) die("out of memory");
  unsigned globals = 0;
  for (long i = 0; i < warmup; i++) globals = connect_once();
  ctl_ready();
  uint64_t start = now_ns(), deadline = start + (uint64_t)max_ms * 1000000u;
  long n = 0;
  /* At least 5 samples even past the deadline, so a slow path still gets a median. */
  while (n < max_iter && (n < 5 || now_ns() < deadline)) {
    uint64_t t0 = now_ns();
    globals = connect_once();
    us[n++] = (double)(now_ns() - t0) / 1e3;
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  char st[256], out[512];
  stats_json(us, (size_t)n, st, sizeof st);
  snprintf(out, sizeof out, "{\"us\":%s,\"seconds\":%.6f,\"globals\":%u}", st, elapsed, globals);
  ctl_result(out);
  free(us);
  return 0;
}
