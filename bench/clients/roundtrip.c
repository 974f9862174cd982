/* Benchmark client: wl_display_roundtrip (wl_display.sync -> wl_callback.done) repeated; µs each. */
#include "common.h"

/* usage: roundtrip [iterations=20000] [warmup=1000] [max_ms=5000] */
int main(int argc, char **argv) {
  long iters = arg_long(argc, argv, 1, 20000), warmup = arg_long(argc, argv, 2, 1000);
  long max_ms = arg_long(argc, argv, 3, 5000);
  if (iters < 1) die("iterations must be >= 1");
  double *us = calloc((size_t)iters, sizeof *us);
  if (us == NULL) die("out of memory");
  struct wl_display *d = connect_or_die();
  for (long i = 0; i < warmup; i++) roundtrip_or_die(d);
  ctl_ready();
  uint64_t start = now_ns(), deadline = start + (uint64_t)max_ms * 1000000u;
  long n = 0;
  while (n < iters && (n < 100 || now_ns() < deadline)) {
    uint64_t t0 = now_ns();
    roundtrip_or_die(d);
    us[n++] = (double)(now_ns() - t0) / 1e3;
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  char st[256], out[512];
  stats_json(us, (size_t)n, st, sizeof st);
  /* Each round trip is 3 messages: wl_display.sync, wl_callback.done, wl_display.delete_id. */
  snprintf(out, sizeof out, "{\"us\":%s,\"seconds\":%.6f,\"messages\":%ld}", st, elapsed, n * 3);
  ctl_result(out);
  wl_display_disconnect(d);
  free(us);
  return 0;
}
