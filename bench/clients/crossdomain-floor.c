/*
 * The native floor of the cross-domain message pattern: what any guest and VMM pair pays per Wayland message when
 * both halves are C that parses nothing. It speaks the emulated device's framing (src/crossdomain/device-protocol.ts)
 * and the cross-domain commands (INIT v1, POLL, SEND, RECEIVE with 28 identifier slots), so its guest half also runs
 * against the real `crossway device`, and the benchmark can tell the guest's JavaScript from the pattern's cost.
 *
 * Per round trip it makes exactly what crossway makes: the guest SUBMITs a SEND with the POLL riding on it (one
 * SUBMIT; channel.ts), the device writes the answer into the channel ring (a store into the mapped guest memory, as a
 * VMM does) and signals the POLL fence, the guest reads the ring. A POLL goes alone when the RECEIVE filled the
 * host's buffer, or when no SEND came within a millisecond. Only fd-less traffic is carried (a client that sends an fd is disconnected):
 * the round-trip, burst and connect benchmarks need no more.
 *
 * The device half also answers what `crossway guest` asks when it opens a channel (GET_PARAMS, GET_CAPS, image
 * requirements on the query ring, and the identifier-layout probe, which a 28-slot host rejects), so crossway's own
 * guest can be measured against a native VMM stand-in: the figure a VM with a native VMM would see.
 *
 * usage: crossdomain-floor guest LISTEN_PATH DEVICE_SOCKET
 *        crossdomain-floor device LISTEN_PATH COMPOSITOR_SOCKET
 * Prints "ready" once listening; runs until killed. One device connection (one virtio-gpu context) per client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* device-protocol.ts frame types and header size. */
enum { GET_PARAMS = 1, GET_CAPS = 2, CONTEXT_INIT = 3, CREATE_BLOB = 4, CLOSE_RESOURCE = 5, SUBMIT = 6 };
enum { REPLY = 100, FENCE = 101, HOST_ERROR = 102 };
#define FRAME_HDR 16
/* protocol.ts: commands, 28 identifier slots, rutabaga's 4096-byte receive buffer, ring flag of a SUBMIT. */
enum { CMD_INIT = 1, CMD_GET_IMAGE_REQUIREMENTS = 2, CMD_POLL = 3, CMD_SEND = 4, CMD_RECEIVE = 5 };
#define IDS 28
#define SR_HDR (16 + 12 * IDS)
#define MAX_DATA (4096 - SR_HDR)
#define RING_SIZE 4096
#define RING_FLAG 4
#define CHANNEL_RING 1
#define BLOB_MEM_GUEST 1
#define CAPSET_CROSS_DOMAIN 5
#define MAX_CONN 1024
#define INBUF (1 << 17)

static void fail(const char *what) {
  fprintf(stderr, "error: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static int listen_at(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) fail("socket path too long");
  strcpy(a.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fail("socket");
  unlink(path);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) fail("bind");
  if (listen(fd, 128) < 0) fail("listen");
  return fd;
}

static int connect_to(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) return -1;
  strcpy(a.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Writes all of `len` bytes (the sockets are blocking on the write side: a floor never queues), with an fd. */
static int send_all(int fd, const void *buf, size_t len, int pass_fd) {
  size_t off = 0;
  while (off < len) {
    struct iovec iov = {(char *)buf + off, len - off};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    char cbuf[CMSG_SPACE(sizeof(int))];
    if (off == 0 && pass_fd >= 0) {
      m.msg_control = cbuf;
      m.msg_controllen = sizeof cbuf;
      struct cmsghdr *c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    off += (size_t)n;
  }
  return 0;
}

/* Buffered frame reader: bytes and the fds that came with them (one fd at most is ever expected). */
struct reader {
  uint8_t buf[INBUF];
  size_t len;
  int fd_fifo[16];
  int nfds;
};

/* One recvmsg into the reader; 0 on EOF or error, 1 otherwise (including EAGAIN). */
static int reader_fill(int fd, struct reader *r, int flags) {
  char cbuf[CMSG_SPACE(sizeof(int) * 16)];
  struct iovec iov = {r->buf + r->len, INBUF - r->len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | flags);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < k; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (r->nfds < 16) r->fd_fifo[r->nfds++] = got;
      else close(got);
    }
  }
  if (n == 0) return 0;
  r->len += (size_t)n;
  return 1;
}

/* The next whole frame at the head of the reader, or NULL. */
static const uint8_t *reader_frame(struct reader *r, uint32_t *type, uint32_t *plen) {
  if (r->len < FRAME_HDR) return NULL;
  uint32_t len = get32(r->buf + 8);
  if (len > INBUF - FRAME_HDR) {
    errno = EMSGSIZE;
    fail("frame too large");
  }
  if (r->len < FRAME_HDR + len) return NULL;
  *type = get32(r->buf);
  *plen = len;
  return r->buf + FRAME_HDR;
}

static void reader_consume(struct reader *r, uint32_t plen) {
  size_t used = FRAME_HDR + plen;
  memmove(r->buf, r->buf + used, r->len - used);
  r->len -= used;
}

static int reader_take_fd(struct reader *r) {
  if (r->nfds == 0) return -1;
  int fd = r->fd_fifo[0];
  memmove(r->fd_fifo, r->fd_fifo + 1, (size_t)(--r->nfds) * sizeof(int));
  return fd;
}

static void frame_header(uint8_t *p, uint32_t type, uint32_t serial, uint32_t plen, uint32_t nfds) {
  put32(p, type);
  put32(p + 4, serial);
  put32(p + 8, plen);
  put32(p + 12, nfds);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Guest half: one context per client, a SEND per client read, a POLL re-armed after each ring message.          */

struct gconn {
  int client, dev;
  uint8_t *rings[2];
  uint32_t fence;
  /* The POLL after a short RECEIVE rides on the next SEND, or goes alone at `ride_until` (crossway's channel.ts). */
  int riding;
  int rider; /* index in g_riders while riding */
  struct timespec ride_until;
  struct reader in;
};

#define POLL_RIDE_NS 1000000L /* channel.ts POLL_RIDE_MS */

static struct gconn *g_by_fd[65536];
static struct gconn *g_riders[MAX_CONN];
static int g_nriders;

static void ride_stop(struct gconn *c) {
  if (!c->riding) return;
  c->riding = 0;
  g_riders[c->rider] = g_riders[--g_nriders];
  g_riders[c->rider]->rider = c->rider;
}

/* A blocking request on a fresh context during setup: the reply's payload (status checked) is copied to `out`. */
static int g_request(struct gconn *c, uint32_t type, uint32_t serial, const uint32_t *fields, int nf, int pass_fd,
                     uint8_t *out, size_t outlen, int *reply_fd) {
  uint8_t f[FRAME_HDR + 64];
  frame_header(f, type, serial, (uint32_t)nf * 4, pass_fd >= 0 ? 1 : 0);
  for (int i = 0; i < nf; i++) put32(f + FRAME_HDR + 4 * i, fields[i]);
  if (send_all(c->dev, f, FRAME_HDR + (size_t)nf * 4, pass_fd) < 0) return -1;
  for (;;) {
    uint32_t t, plen;
    const uint8_t *p = reader_frame(&c->in, &t, &plen);
    if (p == NULL) {
      if (!reader_fill(c->dev, &c->in, 0)) return -1;
      continue;
    }
    if (t == HOST_ERROR) {
      fprintf(stderr, "device: %.*s\n", (int)plen, (const char *)p);
      reader_consume(&c->in, plen);
      continue;
    }
    if (t != REPLY || get32(p) != 0) return -1;
    if (out != NULL) memcpy(out, p + 4, plen - 4 < outlen ? plen - 4 : outlen);
    if (reply_fd != NULL) *reply_fd = reader_take_fd(&c->in);
    reader_consume(&c->in, plen);
    return 0;
  }
}

static int g_submit(struct gconn *c, const uint8_t *cmd, size_t len, int ring, uint32_t fence) {
  static uint8_t f[FRAME_HDR + 12 + 4096 + 16];
  frame_header(f, SUBMIT, 0, (uint32_t)(12 + len), 0);
  put32(f + FRAME_HDR, ring >= 0 ? RING_FLAG : 0);
  put32(f + FRAME_HDR + 4, ring >= 0 ? (uint32_t)ring : 0);
  put32(f + FRAME_HDR + 8, fence);
  memcpy(f + FRAME_HDR + 12, cmd, len);
  return send_all(c->dev, f, FRAME_HDR + 12 + len, -1);
}

static const uint8_t POLL_CMD[16] = {CMD_POLL, 0, 16, 0};

static int g_poll(struct gconn *c) {
  ride_stop(c);
  return g_submit(c, POLL_CMD, sizeof POLL_CMD, CHANNEL_RING, ++c->fence);
}

static int g_setup(struct gconn *c) {
  const uint32_t init[3] = {CAPSET_CROSS_DOMAIN, 2, 1u << CHANNEL_RING};
  if (g_request(c, CONTEXT_INIT, 1, init, 3, -1, NULL, 0, NULL) < 0) return -1;
  uint32_t res[2];
  for (int i = 0; i < 2; i++) {
    /* Sealed against any change of size, as crossway's emulated guest seals its guest blobs (guest RAM never
       shrinks): a device may then map the ring instead of writing it with pwrite, as it does for crossway's guest. */
    int mem = memfd_create("crossdomain-floor-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mem < 0 || ftruncate(mem, RING_SIZE) < 0) return -1;
    if (fcntl(mem, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) return -1;
    c->rings[i] = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
    const uint32_t blob[6] = {BLOB_MEM_GUEST, 1, RING_SIZE, 0, 0, 0};
    uint8_t reply[4];
    int rc = g_request(c, CREATE_BLOB, 2 + (uint32_t)i, blob, 6, mem, reply, sizeof reply, NULL);
    close(mem);
    if (rc < 0 || c->rings[i] == MAP_FAILED) return -1;
    res[i] = get32(reply);
  }
  uint8_t init_cmd[20] = {CMD_INIT, 0, 20, 0};
  put32(init_cmd + 8, res[0]);
  put32(init_cmd + 12, res[1]);
  put32(init_cmd + 16, 1); /* wayland */
  if (g_submit(c, init_cmd, sizeof init_cmd, -1, 0) < 0) return -1;
  return g_poll(c);
}

static void g_close(int ep, struct gconn *c) {
  ride_stop(c);
  epoll_ctl(ep, EPOLL_CTL_DEL, c->client, NULL);
  epoll_ctl(ep, EPOLL_CTL_DEL, c->dev, NULL);
  g_by_fd[c->client] = g_by_fd[c->dev] = NULL;
  close(c->client);
  close(c->dev);
  for (int i = 0; i < 2; i++)
    if (c->rings[i] != NULL && c->rings[i] != MAP_FAILED) munmap(c->rings[i], RING_SIZE);
  free(c);
}

/* The client wrote: one recvmsg, one SEND. 0 when the connection is done. */
static int g_from_client(struct gconn *c) {
  static uint8_t cmd[4096 + 16];
  char cbuf[CMSG_SPACE(sizeof(int) * 28)];
  struct iovec iov = {cmd + SR_HDR, MAX_DATA};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  ssize_t n = recvmsg(c->client, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (CMSG_FIRSTHDR(&m) != NULL) {
    /* The floor carries no fds: close what came and end this client. */
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h != NULL; h = CMSG_NXTHDR(&m, h)) {
      int k = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < k; i++) {
        int got;
        memcpy(&got, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
        close(got);
      }
    }
    return 0;
  }
  if (n == 0) return 0;
  memset(cmd, 0, SR_HDR);
  cmd[0] = CMD_SEND;
  cmd[2] = (uint8_t)((SR_HDR + n) & 0xff);
  cmd[3] = (uint8_t)((SR_HDR + n) >> 8);
  put32(cmd + 12, (uint32_t)n);
  if (c->riding) {
    /* SEND and the waiting POLL in one SUBMIT, its fence on the channel ring. */
    memcpy(cmd + SR_HDR + n, POLL_CMD, sizeof POLL_CMD);
    ride_stop(c);
    return g_submit(c, cmd, SR_HDR + (size_t)n + sizeof POLL_CMD, CHANNEL_RING, ++c->fence) == 0;
  }
  return g_submit(c, cmd, SR_HDR + (size_t)n, -1, 0) == 0;
}

/* Frames from the device: a FENCE means the channel ring holds a RECEIVE. 0 when the connection is done. */
static int g_from_device(struct gconn *c) {
  if (!reader_fill(c->dev, &c->in, MSG_DONTWAIT)) return 0;
  uint32_t t, plen;
  const uint8_t *p;
  while ((p = reader_frame(&c->in, &t, &plen)) != NULL) {
    if (t == HOST_ERROR) fprintf(stderr, "device: %.*s\n", (int)plen, (const char *)p);
    reader_consume(&c->in, plen);
    if (t != FENCE) continue;
    const uint8_t *ring = c->rings[CHANNEL_RING];
    if (ring[0] != CMD_RECEIVE) return 0;
    uint32_t len = get32(ring + 12);
    if (len == 0 || len > MAX_DATA || get32(ring + 8) != 0) return 0; /* host EOF, or fds the floor cannot carry */
    if (send_all(c->client, ring + SR_HDR, len, -1) < 0) return 0;
    if (len == MAX_DATA) {
      if (g_poll(c) < 0) return 0; /* the host's buffer was full: more is waiting */
    } else if (!c->riding && g_nriders < MAX_CONN) {
      c->riding = 1;
      c->rider = g_nriders;
      g_riders[g_nriders++] = c;
      clock_gettime(CLOCK_MONOTONIC, &c->ride_until);
      c->ride_until.tv_nsec += POLL_RIDE_NS;
      if (c->ride_until.tv_nsec >= 1000000000L) {
        c->ride_until.tv_sec++;
        c->ride_until.tv_nsec -= 1000000000L;
      }
    }
  }
  return 1;
}

/* Sends the riding POLLs whose time is up; returns the epoll timeout (ms) until the next, or -1 for none. */
static int g_ride_timeouts(int ep) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int timeout = -1;
  for (int i = g_nriders - 1; i >= 0; i--) {
    struct gconn *c = g_riders[i];
    long left_ns = (c->ride_until.tv_sec - now.tv_sec) * 1000000000L + (c->ride_until.tv_nsec - now.tv_nsec);
    if (left_ns <= 0) {
      if (g_poll(c) < 0) g_close(ep, c);
      continue;
    }
    int ms = (int)((left_ns + 999999) / 1000000);
    if (timeout < 0 || ms < timeout) timeout = ms;
  }
  return timeout;
}

__attribute__((noreturn)) static void run_guest(const char *listen_path, const char *device_path) {
  int lfd = listen_at(listen_path), ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  printf("ready\n");
  fflush(stdout);
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, g_nriders > 0 ? g_ride_timeouts(ep) : -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("epoll_wait");
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) continue;
        struct gconn *c = calloc(1, sizeof *c);
        c->client = cfd;
        c->dev = connect_to(device_path);
        if (c->dev < 0 || c->dev >= 65536 || cfd >= 65536 || g_setup(c) < 0) {
          fprintf(stderr, "client setup failed: %s\n", strerror(errno));
          if (c->dev >= 0) close(c->dev);
          close(cfd);
          free(c);
          continue;
        }
        g_by_fd[cfd] = g_by_fd[c->dev] = c;
        struct epoll_event e1 = {.events = EPOLLIN, .data.fd = cfd}, e2 = {.events = EPOLLIN, .data.fd = c->dev};
        epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &e1);
        epoll_ctl(ep, EPOLL_CTL_ADD, c->dev, &e2);
        continue;
      }
      struct gconn *c = g_by_fd[fd];
      if (c == NULL) continue;
      int ok = fd == c->client ? g_from_client(c) : g_from_device(c);
      if (!ok) g_close(ep, c);
    }
  }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Device half: the VMM's side of one context. The compositor socket is watched only while a POLL fence waits.   */

struct dconn {
  int guest, host;
  uint32_t ring_res[2];
  int res_fd[8];
  uint8_t *res_map[8];
  int nres;
  uint8_t *channel_ring, *query_ring;
  uint32_t templates; /* image-requirements template ids handed out */
  uint32_t pending_fence; /* 0: none */
  int host_watched;
  struct reader in;
};

static struct dconn *d_by_fd[65536];
static const char *d_compositor;
static int d_ep;

static void d_watch_host(struct dconn *c, int on) {
  if (c->host < 0 || c->host_watched == on) return;
  struct epoll_event e = {.events = on ? EPOLLIN : 0, .data.fd = c->host};
  epoll_ctl(d_ep, EPOLL_CTL_MOD, c->host, &e);
  c->host_watched = on;
}

static void d_close(struct dconn *c) {
  epoll_ctl(d_ep, EPOLL_CTL_DEL, c->guest, NULL);
  d_by_fd[c->guest] = NULL;
  close(c->guest);
  if (c->host >= 0) {
    epoll_ctl(d_ep, EPOLL_CTL_DEL, c->host, NULL);
    d_by_fd[c->host] = NULL;
    close(c->host);
  }
  for (int i = 0; i < c->nres; i++) {
    munmap(c->res_map[i], RING_SIZE);
    close(c->res_fd[i]);
  }
  free(c);
}

static int d_reply(struct dconn *c, uint32_t serial, const uint32_t *fields, int nf) {
  uint8_t f[FRAME_HDR + 4 + 32];
  frame_header(f, REPLY, serial, 4 + (uint32_t)nf * 4, 0);
  put32(f + FRAME_HDR, 0);
  for (int i = 0; i < nf; i++) put32(f + FRAME_HDR + 4 + 4 * i, fields[i]);
  return send_all(c->guest, f, FRAME_HDR + 4 + (size_t)nf * 4, -1);
}

static int d_reply_error(struct dconn *c, uint32_t serial, uint32_t err) {
  uint8_t f[FRAME_HDR + 4];
  frame_header(f, REPLY, serial, 4, 0);
  put32(f + FRAME_HDR, err);
  return send_all(c->guest, f, sizeof f, -1);
}

/* The 64-byte image-requirements reply (codec.ts layout): one linear plane, a fresh template id each time. */
static void d_image_requirements(struct dconn *c, const uint8_t *cmd) {
  uint32_t width = get32(cmd + 8), height = get32(cmd + 12), format = get32(cmd + 16);
  uint32_t bpp = format == 0x20203852 ? 1 : 4; /* R8, else 32-bit formats */
  uint32_t stride = (width * bpp + 63) & ~63u;
  uint64_t size = ((uint64_t)stride * height + 4095) & ~(uint64_t)4095;
  uint8_t *r = c->query_ring;
  memset(r, 0, 64);
  put32(r, stride);
  memcpy(r + 40, &size, 8);
  put32(r + 48, ++c->templates);
  put32(r + 52, 1); /* map_info CACHED */
}

/* The compositor wrote while a POLL waits: RECEIVE into the ring, then the fence. 0 when done. */
static int d_from_host(struct dconn *c) {
  if (c->pending_fence == 0) {
    d_watch_host(c, 0); /* lazily: no fence waits, leave the bytes in the socket */
    return 1;
  }
  uint8_t *ring = c->channel_ring;
  ssize_t n = recv(c->host, ring + SR_HDR, MAX_DATA, MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  memset(ring, 0, SR_HDR);
  ring[0] = CMD_RECEIVE;
  put32(ring + 12, (uint32_t)n);
  uint8_t f[FRAME_HDR + 4];
  frame_header(f, FENCE, 0, 4, 0);
  put32(f + FRAME_HDR, c->pending_fence);
  c->pending_fence = 0;
  if (send_all(c->guest, f, sizeof f, -1) < 0) return 0;
  return n > 0;
}

static int d_submit(struct dconn *c, const uint8_t *p, uint32_t plen) {
  if (plen < 12) return 0;
  uint32_t flags = get32(p), ring = get32(p + 4), fence = get32(p + 8);
  /* A bad command skips the rest of the buffer; the fence is still signalled (submit_cmd returning Err). */
  for (uint32_t off = 12; off + 8 <= plen;) {
    const uint8_t *cmd = p + off;
    uint32_t size = (uint32_t)cmd[2] | ((uint32_t)cmd[3] << 8);
    if (size < 8 || off + size > plen) break;
    if (cmd[0] == CMD_INIT && size >= 20) {
      uint32_t query = get32(cmd + 8), chan = get32(cmd + 12);
      for (int i = 0; i < c->nres; i++) {
        if ((uint32_t)(i + 1) == chan) c->channel_ring = c->res_map[i];
        if ((uint32_t)(i + 1) == query) c->query_ring = c->res_map[i];
      }
      if (c->channel_ring == NULL || c->query_ring == NULL || c->host >= 0) return 0;
      c->host = connect_to(d_compositor);
      if (c->host < 0 || c->host >= 65536) return 0;
      d_by_fd[c->host] = c;
      struct epoll_event e = {.events = 0, .data.fd = c->host};
      epoll_ctl(d_ep, EPOLL_CTL_ADD, c->host, &e);
    } else if (cmd[0] == CMD_GET_IMAGE_REQUIREMENTS && size >= 24 && c->query_ring != NULL) {
      d_image_requirements(c, cmd);
    } else if (cmd[0] == CMD_SEND) {
      if (size < SR_HDR) break; /* truncated for 28 slots: the layout probe's SEND */
      uint32_t len = get32(cmd + 12);
      if (c->host < 0 || get32(cmd + 8) != 0 || len > size - SR_HDR) return 0;
      if (send_all(c->host, cmd + SR_HDR, len, -1) < 0) return 0;
    } else if (cmd[0] != CMD_POLL) {
      break;
    }
    off += size;
  }
  if (fence != 0 && (flags & RING_FLAG) && ring == CHANNEL_RING) {
    c->pending_fence = fence;
    d_watch_host(c, 1);
  } else if (fence != 0) {
    uint8_t f[FRAME_HDR + 4];
    frame_header(f, FENCE, 0, 4, 0);
    put32(f + FRAME_HDR, fence);
    return send_all(c->guest, f, sizeof f, -1) == 0;
  }
  return 1;
}

static int d_from_guest(struct dconn *c) {
  if (!reader_fill(c->guest, &c->in, MSG_DONTWAIT)) return 0;
  uint32_t t, plen;
  const uint8_t *p;
  while ((p = reader_frame(&c->in, &t, &plen)) != NULL) {
    uint32_t serial = get32(c->in.buf + 4);
    int ok = 1;
    if (t == GET_PARAMS) {
      const uint32_t params[6] = {1, 1, 1, 1, 1u << CAPSET_CROSS_DOMAIN, RING_SIZE};
      ok = d_reply(c, serial, params, 6) == 0;
    } else if (t == GET_CAPS) {
      /* version 1, the wayland channel (bit 1), no dmabuf, no external memory */
      const uint32_t caps[4] = {1, 1u << 1, 0, 0};
      uint32_t want = plen >= 12 ? get32(p + 8) / 4 : 0;
      ok = d_reply(c, serial, caps, want < 4 ? (int)want : 4) == 0;
    } else if (t == CONTEXT_INIT) {
      ok = d_reply(c, serial, NULL, 0) == 0;
    } else if (t == CLOSE_RESOURCE) {
      ok = 1; /* rings live as long as the context */
    } else if (t == CREATE_BLOB) {
      int mem = reader_take_fd(&c->in);
      if (mem < 0 || plen < 24 || get32(p) != BLOB_MEM_GUEST || get32(p + 8) != RING_SIZE || c->nres == 8) {
        /* Only ring-sized guest blobs: host memory (wl_shm pools) is beyond a floor. */
        if (mem >= 0) close(mem);
        ok = d_reply_error(c, serial, EINVAL) == 0;
        reader_consume(&c->in, plen);
        if (!ok) return 0;
        continue;
      }
      uint8_t *map = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
      if (map == MAP_FAILED) {
        close(mem);
        return 0;
      }
      c->res_fd[c->nres] = mem;
      c->res_map[c->nres++] = map;
      const uint32_t out[4] = {(uint32_t)c->nres, RING_SIZE, 0, 1};
      ok = d_reply(c, serial, out, 4) == 0;
    } else if (t == SUBMIT) {
      ok = d_submit(c, p, plen);
    } else {
      ok = 0;
    }
    reader_consume(&c->in, plen);
    if (!ok) return 0;
  }
  return 1;
}

__attribute__((noreturn)) static void run_device(const char *listen_path, const char *compositor) {
  d_compositor = compositor;
  int lfd = listen_at(listen_path);
  d_ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(d_ep, EPOLL_CTL_ADD, lfd, &ev);
  printf("ready\n");
  fflush(stdout);
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(d_ep, evs, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("epoll_wait");
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int gfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (gfd < 0) continue;
        if (gfd >= 65536) {
          close(gfd);
          continue;
        }
        struct dconn *c = calloc(1, sizeof *c);
        c->guest = gfd;
        c->host = -1;
        d_by_fd[gfd] = c;
        struct epoll_event e = {.events = EPOLLIN, .data.fd = gfd};
        epoll_ctl(d_ep, EPOLL_CTL_ADD, gfd, &e);
        continue;
      }
      struct dconn *c = d_by_fd[fd];
      if (c == NULL) continue;
      int ok = fd == c->guest ? d_from_guest(c) : d_from_host(c);
      if (!ok) d_close(c);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s guest LISTEN DEVICE_SOCKET | device LISTEN COMPOSITOR_SOCKET\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[1], "guest") == 0) run_guest(argv[2], argv[3]);
  if (strcmp(argv[1], "device") == 0) run_device(argv[2], argv[3]);
  fprintf(stderr, "unknown role %s\n", argv[1]);
  return 2;
}
