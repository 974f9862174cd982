/* A PipeWire video source that allocates its own buffers (PW_STREAM_FLAG_ALLOC_BUFFERS, one memfd per buffer), for
 * the guest proxy's client-allocated buffer tests. It drives the graph at 30 fps and fills every frame with one RGBx
 * colour, so a consumer can check what arrived. Prints "memfd buffer N" when it allocates and "daemon buffer N" when
 * the daemon did (then nothing of ours crosses), and "frames N" every 10 frames, on stderr.
 *
 *   pw-alloc-source NODE_NAME R G B     (PIPEWIRE_REMOTE picks the daemon, as for any client)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <pipewire/pipewire.h>
#include <spa/param/video/format-utils.h>
#include <spa/pod/builder.h>

#define WIDTH 64
#define HEIGHT 48
#define BPP 4
#define N_BUFFERS 4

struct source {
  struct pw_main_loop *loop;
  struct pw_stream *stream;
  struct spa_source *timer;
  uint8_t rgb[3];
  uint32_t frames;
  int memfd_buffers;
};

static void on_add_buffer(void *data, struct pw_buffer *b) {
  struct source *s = data;
  struct spa_data *d = &b->buffer->datas[0];
  /* When the daemon asks us to allocate, type is the mask of types it accepts; otherwise it is the type it made. */
  if ((d->type & (1u << SPA_DATA_MemFd)) == 0) {
    fprintf(stderr, "daemon buffer %d\n", s->memfd_buffers);
    return;
  }
  size_t size = WIDTH * HEIGHT * BPP;
  int fd = memfd_create("pw-alloc-source", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
    fprintf(stderr, "memfd: %s\n", strerror(errno));
    pw_main_loop_quit(s->loop);
    return;
  }
  void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    fprintf(stderr, "mmap: %s\n", strerror(errno));
    close(fd);
    pw_main_loop_quit(s->loop);
    return;
  }
  d->type = SPA_DATA_MemFd;
  d->flags = SPA_DATA_FLAG_READWRITE;
  d->fd = fd;
  d->mapoffset = 0;
  d->maxsize = (uint32_t)size;
  d->data = map;
  fprintf(stderr, "memfd buffer %d\n", s->memfd_buffers++);
}

static void on_remove_buffer(void *data, struct pw_buffer *b) {
  (void)data;
  struct spa_data *d = &b->buffer->datas[0];
  if (d->type != SPA_DATA_MemFd || d->fd < 0) return;
  if (d->data != NULL) munmap(d->data, d->maxsize);
  close((int)d->fd);
  d->data = NULL;
  d->fd = -1;
}

static void on_process(void *data) {
  struct source *s = data;
  struct pw_buffer *b = pw_stream_dequeue_buffer(s->stream);
  if (b == NULL) return;
  struct spa_data *d = &b->buffer->datas[0];
  if (d->data != NULL) {
    uint8_t *p = d->data;
    for (size_t i = 0; i < WIDTH * HEIGHT; i++) {
      p[i * BPP] = s->rgb[0];
      p[i * BPP + 1] = s->rgb[1];
      p[i * BPP + 2] = s->rgb[2];
      p[i * BPP + 3] = 0xff;
    }
    d->chunk->offset = 0;
    d->chunk->size = WIDTH * HEIGHT * BPP;
    d->chunk->stride = WIDTH * BPP;
  }
  pw_stream_queue_buffer(s->stream, b);
  if (++s->frames % 10 == 0) fprintf(stderr, "frames %u\n", s->frames);
}

static void on_param_changed(void *data, uint32_t id, const struct spa_pod *param) {
  struct source *s = data;
  if (param == NULL || id != SPA_PARAM_Format) return;
  uint8_t buf[1024];
  struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buf, sizeof(buf));
  const struct spa_pod *params[1];
  params[0] = spa_pod_builder_add_object(
      &b, SPA_TYPE_OBJECT_ParamBuffers, SPA_PARAM_Buffers, SPA_PARAM_BUFFERS_buffers,
      SPA_POD_CHOICE_RANGE_Int(N_BUFFERS, 2, 8), SPA_PARAM_BUFFERS_blocks, SPA_POD_Int(1), SPA_PARAM_BUFFERS_size,
      SPA_POD_Int(WIDTH * HEIGHT * BPP), SPA_PARAM_BUFFERS_stride, SPA_POD_Int(WIDTH * BPP),
      SPA_PARAM_BUFFERS_dataType, SPA_POD_CHOICE_FLAGS_Int(1 << SPA_DATA_MemFd));
  pw_stream_update_params(s->stream, params, 1);
}

static void on_state_changed(void *data, enum pw_stream_state old, enum pw_stream_state state, const char *error) {
  struct source *s = data;
  (void)old;
  fprintf(stderr, "state %s%s%s\n", pw_stream_state_as_string(state), error ? ": " : "", error ? error : "");
  if (state == PW_STREAM_STATE_ERROR) pw_main_loop_quit(s->loop);
  /* As the graph's driver, we pace it: a frame per timer tick while streaming. */
  struct timespec first = {0, 1}, every = {0, 1000000000 / 30};
  pw_loop_update_timer(pw_main_loop_get_loop(s->loop), s->timer, state == PW_STREAM_STATE_STREAMING ? &first : NULL,
                       &every, false);
}

static void on_timer(void *data, uint64_t expirations) {
  struct source *s = data;
  (void)expirations;
  pw_stream_trigger_process(s->stream);
}

static const struct pw_stream_events events = {
    PW_VERSION_STREAM_EVENTS,
    .state_changed = on_state_changed,
    .param_changed = on_param_changed,
    .add_buffer = on_add_buffer,
    .remove_buffer = on_remove_buffer,
    .process = on_process,
};

static void on_signal(void *data, int sig) {
  (void)sig;
  pw_main_loop_quit(((struct source *)data)->loop);
}

int main(int argc, char *argv[]) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s NODE_NAME R G B\n", argv[0]);
    return 2;
  }
  struct source s = {0};
  s.rgb[0] = (uint8_t)atoi(argv[2]);
  s.rgb[1] = (uint8_t)atoi(argv[3]);
  s.rgb[2] = (uint8_t)atoi(argv[4]);
  pw_init(&argc, &argv);
  s.loop = pw_main_loop_new(NULL);
  struct pw_loop *loop = pw_main_loop_get_loop(s.loop);
  pw_loop_add_signal(loop, SIGINT, on_signal, &s);
  pw_loop_add_signal(loop, SIGTERM, on_signal, &s);
  s.timer = pw_loop_add_timer(loop, on_timer, &s);
  s.stream = pw_stream_new_simple(
      loop, "pw-alloc-source",
      pw_properties_new(PW_KEY_MEDIA_TYPE, "Video", PW_KEY_MEDIA_CATEGORY, "Source", PW_KEY_MEDIA_ROLE, "Camera",
                        PW_KEY_NODE_NAME, argv[1], PW_KEY_MEDIA_CLASS, "Video/Source", NULL),
      &events, &s);
  uint8_t buf[1024];
  struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buf, sizeof(buf));
  const struct spa_pod *params[1];
  params[0] = spa_pod_builder_add_object(
      &b, SPA_TYPE_OBJECT_Format, SPA_PARAM_EnumFormat, SPA_FORMAT_mediaType, SPA_POD_Id(SPA_MEDIA_TYPE_video),
      SPA_FORMAT_mediaSubtype, SPA_POD_Id(SPA_MEDIA_SUBTYPE_raw), SPA_FORMAT_VIDEO_format,
      SPA_POD_Id(SPA_VIDEO_FORMAT_RGBx), SPA_FORMAT_VIDEO_size, SPA_POD_Rectangle(&SPA_RECTANGLE(WIDTH, HEIGHT)),
      SPA_FORMAT_VIDEO_framerate, SPA_POD_Fraction(&SPA_FRACTION(30, 1)));
  pw_stream_connect(s.stream, PW_DIRECTION_OUTPUT, PW_ID_ANY,
                    PW_STREAM_FLAG_DRIVER | PW_STREAM_FLAG_ALLOC_BUFFERS | PW_STREAM_FLAG_MAP_BUFFERS, params, 1);
  fprintf(stderr, "connecting\n");
  pw_main_loop_run(s.loop);
  pw_stream_destroy(s.stream);
  pw_main_loop_destroy(s.loop);
  pw_deinit();
  return 0;
}
