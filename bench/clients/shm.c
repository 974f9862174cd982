/*
 * Benchmark client: a 1920x1080 ARGB8888 xdg_toplevel with 3 buffers in one memfd pool, paced by wl_buffer.release
 * (no frame callbacks). Mode "full" rewrites every byte of the buffer each frame; mode "damage" changes a 64x64
 * square that moves each frame and damages only that square. Frames/s, MB/s changed, and release counts (so a
 * compositor that silently stops processing commits is an error, not a fast result).
 */
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>

#include "xdg-shell-client-protocol.h"

#define NBUF 3
#define SQ 64

static struct wl_compositor *compositor;
static struct wl_shm *shm;
static struct xdg_wm_base *wm_base;
static int configured;
static int busy[NBUF];
static uint64_t releases;

static void on_global(void *data, struct wl_registry *r, uint32_t name, const char *iface, uint32_t version) {
  (void)data;
  /* wl_surface.damage_buffer needs wl_compositor v4. */
  if (strcmp(iface, wl_compositor_interface.name) == 0 && version >= 4)
    compositor = wl_registry_bind(r, name, &wl_compositor_interface, 4);
  else if (strcmp(iface, wl_shm_interface.name) == 0)
    shm = wl_registry_bind(r, name, &wl_shm_interface, 1);
  else if (strcmp(iface, xdg_wm_base_interface.name) == 0)
    wm_base = wl_registry_bind(r, name, &xdg_wm_base_interface, 1);
}
static void on_global_remove(void *data, struct wl_registry *r, uint32_t name) { (void)data, (void)r, (void)name; }
static const struct wl_registry_listener registry_listener = {on_global, on_global_remove};

static void on_ping(void *data, struct xdg_wm_base *b, uint32_t serial) {
  (void)data;
  xdg_wm_base_pong(b, serial);
}
static const struct xdg_wm_base_listener wm_base_listener = {on_ping};

static void on_xdg_configure(void *data, struct xdg_surface *s, uint32_t serial) {
  (void)data;
  xdg_surface_ack_configure(s, serial);
  configured = 1;
}
static const struct xdg_surface_listener xdg_surface_listener = {on_xdg_configure};

static void on_top_configure(void *data, struct xdg_toplevel *t, int32_t w, int32_t h, struct wl_array *states) {
  (void)data, (void)t, (void)w, (void)h, (void)states;
}
static void on_top_close(void *data, struct xdg_toplevel *t) { (void)data, (void)t; }
static const struct xdg_toplevel_listener toplevel_listener = {.configure = on_top_configure, .close = on_top_close};

static void on_release(void *data, struct wl_buffer *b) {
  (void)b;
  busy[(intptr_t)data] = 0;
  releases++;
}
static const struct wl_buffer_listener buffer_listener = {on_release};

/* Reads and dispatches events, waiting at most `ms`; returns 0 on timeout. Flushes first, like wl_display_dispatch. */
static int dispatch_timeout(struct wl_display *d, int ms) {
  while (wl_display_prepare_read(d) != 0) wl_display_dispatch_pending(d);
  flush_blocking(d);
  struct pollfd p = {.fd = wl_display_get_fd(d), .events = POLLIN};
  int r = poll(&p, 1, ms);
  if (r <= 0) {
    wl_display_cancel_read(d);
    if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    return r == 0 ? 0 : 1;
  }
  if (wl_display_read_events(d) < 0) die("wl_display_read_events: %s", strerror(errno));
  if (wl_display_dispatch_pending(d) < 0) die("wl_display_dispatch_pending: %s", strerror(wl_display_get_error(d)));
  return 1;
}

static int width = 1920, height = 1080, stride = 1920 * 4;
static uint8_t *pool_mem;
static size_t buf_size;

static void sq_pos(long n, int *x, int *y) {
  *x = (int)((n * 37) % (width - SQ));
  *y = (int)((n * 23) % (height - SQ));
}

static void fill_rect(uint8_t *base, int x, int y, uint32_t color) {
  for (int row = 0; row < SQ; row++) {
    uint32_t *p = (uint32_t *)(base + (size_t)(y + row) * (size_t)stride) + x;
    for (int col = 0; col < SQ; col++) p[col] = color;
  }
}

static uint32_t sq_color(long n) { return 0xff000000u | ((uint32_t)(n * 2654435761u) & 0xffffffu); }

/*
 * Draws frame n into buffer b. Full: every byte gets the value n mod 256, which differs from the value written
 * NBUF frames earlier. Damage: the buffer last showed frame n-NBUF, so the squares of the frames in between are
 * repainted too (the content is then correct), but only frame n's square is damaged, as a real client would.
 */
static void draw(int mode_full, int b, long n) {
  uint8_t *base = pool_mem + (size_t)b * buf_size;
  if (mode_full) {
    memset(base, (int)(n & 0xff), buf_size);
    return;
  }
  for (long k = n - NBUF + 1; k <= n; k++) {
    if (k < 1) continue;
    int x, y;
    sq_pos(k, &x, &y);
    fill_rect(base, x, y, sq_color(k));
  }
}

/*
 * usage: shm full|damage [max_frames=300] [max_ms=2000] [warmup_frames=10] [sealed=0]
 * sealed=1 seals the pool with F_SEAL_SHRINK, which lets a proxy map it without risking SIGBUS (crossway's guest
 * then copies from a mapping instead of with pread).
 */
int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "full") != 0 && strcmp(argv[1], "damage") != 0)) die("usage: shm full|damage ...");
  int mode_full = strcmp(argv[1], "full") == 0;
  long max_frames = arg_long(argc, argv, 2, 300), max_ms = arg_long(argc, argv, 3, 2000);
  long warmup = arg_long(argc, argv, 4, 10);
  int sealed = arg_long(argc, argv, 5, 0) != 0;

  struct wl_display *d = connect_or_die();
  struct wl_registry *reg = wl_display_get_registry(d);
  wl_registry_add_listener(reg, &registry_listener, NULL);
  roundtrip_or_die(d);
  if (compositor == NULL || shm == NULL || wm_base == NULL) die("missing wl_compositor v4, wl_shm or xdg_wm_base");
  xdg_wm_base_add_listener(wm_base, &wm_base_listener, NULL);

  buf_size = (size_t)stride * (size_t)height;
  size_t pool_size = buf_size * NBUF;
  int fd = memfd_create("crossway-bench-shm", MFD_CLOEXEC | (sealed ? MFD_ALLOW_SEALING : 0));
  if (fd < 0) die("memfd_create: %s", strerror(errno));
  if (ftruncate(fd, (off_t)pool_size) < 0) die("ftruncate: %s", strerror(errno));
  if (sealed && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) die("F_ADD_SEALS: %s", strerror(errno));
  pool_mem = mmap(NULL, pool_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (pool_mem == MAP_FAILED) die("mmap: %s", strerror(errno));
  /* Fault every page in now: a fresh mapping costs ~1.7 µs per 4 KiB page, which is not what we measure. */
  memset(pool_mem, 0, pool_size);
  struct wl_shm_pool *pool = wl_shm_create_pool(shm, fd, (int32_t)pool_size);
  struct wl_buffer *bufs[NBUF];
  for (intptr_t i = 0; i < NBUF; i++) {
    bufs[i] = wl_shm_pool_create_buffer(pool, (int32_t)((size_t)i * buf_size), width, height, stride,
                                        WL_SHM_FORMAT_ARGB8888);
    wl_buffer_add_listener(bufs[i], &buffer_listener, (void *)i);
  }

  struct wl_surface *surface = wl_compositor_create_surface(compositor);
  struct xdg_surface *xs = xdg_wm_base_get_xdg_surface(wm_base, surface);
  xdg_surface_add_listener(xs, &xdg_surface_listener, NULL);
  struct xdg_toplevel *top = xdg_surface_get_toplevel(xs);
  xdg_toplevel_add_listener(top, &toplevel_listener, NULL);
  xdg_toplevel_set_title(top, "crossway bench shm");
  /* The initial commit without a buffer asks for a configure; a toplevel is only mapped after it is acked. */
  wl_surface_commit(surface);
  while (!configured)
    if (dispatch_timeout(d, 5000) == 0) die("no xdg_surface.configure within 5 s");

  long n = 0;
  uint64_t commits = 0;
  uint64_t start = 0, deadline = 0;
  long measured = 0;
  int measuring = 0;
  for (;;) {
    if (!measuring && n == warmup) {
      /* Let the warm-up frames drain so the measured phase starts from an idle pipeline. */
      while (releases + 1 < commits)
        if (dispatch_timeout(d, 5000) == 0) die("frames do not flow: %lu commits, %lu releases", commits, releases);
      ctl_ready();
      measuring = 1;
      start = now_ns();
      deadline = start + (uint64_t)max_ms * 1000000u;
    }
    if (measuring && (measured >= max_frames || (measured >= 10 && now_ns() >= deadline))) break;
    int b = -1;
    for (;;) {
      for (int i = 0; i < NBUF; i++)
        if (!busy[i]) {
          b = i;
          break;
        }
      if (b >= 0) break;
      if (dispatch_timeout(d, 5000) == 0)
        die("frames do not flow: no wl_buffer.release in 5 s (%lu commits, %lu releases)", commits, releases);
    }
    draw(mode_full, b, n);
    wl_surface_attach(surface, bufs[b], 0, 0);
    if (mode_full || n == 0) {
      wl_surface_damage_buffer(surface, 0, 0, width, height);
    } else {
      int x, y;
      sq_pos(n, &x, &y);
      wl_surface_damage_buffer(surface, x, y, SQ, SQ);
    }
    wl_surface_commit(surface);
    busy[b] = 1;
    commits++;
    flush_blocking(d);
    n++;
    if (measuring) measured++;
  }
  /* Every committed buffer but the last must come back before the clock stops. */
  while (releases + 1 < commits)
    if (dispatch_timeout(d, 5000) == 0) die("frames do not flow: %lu commits, %lu releases", commits, releases);
  double s = (double)(now_ns() - start) / 1e9;
  double bytes = mode_full ? (double)buf_size : (double)(SQ * SQ * 4);
  char out[512];
  snprintf(out, sizeof out,
           "{\"mode\":\"%s\",\"sealed\":%d,\"frames\":%ld,\"seconds\":%.6f,\"fps\":%.2f,\"mb_per_s\":%.2f,\"bytes_per_frame\":%.0f,"
           "\"commits\":%lu,\"releases\":%lu}",
           argv[1], sealed, measured, s, (double)measured / s, bytes * (double)measured / s / 1e6, bytes, commits, releases);
  ctl_result(out);
  for (int i = 0; i < NBUF; i++) wl_buffer_destroy(bufs[i]);
  wl_shm_pool_destroy(pool);
  xdg_toplevel_destroy(top);
  xdg_surface_destroy(xs);
  wl_surface_destroy(surface);
  xdg_wm_base_destroy(wm_base);
  wl_shm_destroy(shm);
  wl_compositor_destroy(compositor);
  wl_registry_destroy(reg);
  wl_display_disconnect(d);
  munmap(pool_mem, pool_size);
  close(fd);
  return 0;
}
