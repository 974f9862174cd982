/* Benchmark client: a burst of small requests (wl_region.add of one fixed rect) then one round trip; messages/s. */
#include "common.h"

static struct wl_compositor *compositor;

static void on_global(void *data, struct wl_registry *r, uint32_t name, const char *iface, uint32_t version) {
  (void)data, (void)version;
  if (strcmp(iface, wl_compositor_interface.name) == 0)
    compositor = wl_registry_bind(r, name, &wl_compositor_interface, 1);
}
static void on_global_remove(void *data, struct wl_registry *r, uint32_t name) { (void)data, (void)r, (void)name; }
static const struct wl_registry_listener registry_listener = {on_global, on_global_remove};

/* usage: burst [requests=200000] */
int main(int argc, char **argv) {
  long count = arg_long(argc, argv, 1, 200000);
  struct wl_display *d = connect_or_die();
  struct wl_registry *reg = wl_display_get_registry(d);
  wl_registry_add_listener(reg, &registry_listener, NULL);
  roundtrip_or_die(d);
  if (compositor == NULL) die("no wl_compositor global");
  /* The same 1x1 rect every time keeps the compositor's region a single box: the cost is the wire, not pixman. */
  struct wl_region *region = wl_compositor_create_region(compositor);
  for (int i = 0; i < 1000; i++) wl_region_add(region, 0, 0, 1, 1);
  roundtrip_or_die(d);
  ctl_ready();
  uint64_t t0 = now_ns();
  for (long i = 0; i < count; i++) {
    wl_region_add(region, 0, 0, 1, 1);
    /* 128 x 24-byte messages = 3 KiB: flush before libwayland's 4 KiB buffer would overflow. */
    if ((i & 127) == 127) flush_blocking(d);
  }
  flush_blocking(d);
  roundtrip_or_die(d);
  double s = (double)(now_ns() - t0) / 1e9;
  /* Requests plus the closing sync, done and delete_id. */
  long messages = count + 3;
  char out[256];
  snprintf(out, sizeof out, "{\"requests\":%ld,\"messages\":%ld,\"seconds\":%.6f,\"msgs_per_s\":%.1f}", count,
           messages, s, (double)messages / s);
  ctl_result(out);
  wl_region_destroy(region);
  wl_compositor_destroy(compositor);
  wl_registry_destroy(reg);
  wl_display_disconnect(d);
  return 0;
}
