/* Benchmark client: connects, binds wl_compositor and wl_shm, creates a surface, then stays idle until told to exit. */
#include "common.h"

static struct wl_compositor *compositor;
static struct wl_shm *shm;

static void on_global(void *data, struct wl_registry *r, uint32_t name, const char *iface, uint32_t version) {
  (void)data, (void)version;
  if (strcmp(iface, wl_compositor_interface.name) == 0)
    compositor = wl_registry_bind(r, name, &wl_compositor_interface, 1);
  else if (strcmp(iface, wl_shm_interface.name) == 0)
    shm = wl_registry_bind(r, name, &wl_shm_interface, 1);
}
static void on_global_remove(void *data, struct wl_registry *r, uint32_t name) { (void)data, (void)r, (void)name; }
static const struct wl_registry_listener registry_listener = {on_global, on_global_remove};

/* usage: idle   (prints "ready" once connected, exits after one line or EOF on stdin) */
int main(void) {
  struct wl_display *d = connect_or_die();
  struct wl_registry *reg = wl_display_get_registry(d);
  wl_registry_add_listener(reg, &registry_listener, NULL);
  roundtrip_or_die(d);
  if (compositor == NULL || shm == NULL) die("missing wl_compositor or wl_shm");
  struct wl_surface *surface = wl_compositor_create_surface(compositor);
  roundtrip_or_die(d);
  fputs("ready\n", stdout);
  fflush(stdout);
  wait_line();
  wl_surface_destroy(surface);
  wl_display_disconnect(d);
  return 0;
}
