/*
 * Reference proxy: a trivial single-threaded Unix-socket relay that forwards bytes and SCM_RIGHTS fds both ways
 * without parsing anything. It is the floor for any proxy hop (one extra recvmsg+sendmsg per direction); the
 * figure issue 7 quotes for such a relay is 27.5 µs per round trip pinned, vs 11.7 µs direct.
 * usage: relay LISTEN_PATH TARGET_PATH   (prints "ready" once listening; runs until killed)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONN 512
#define MAX_FDS 253 /* SCM_MAX_FD */

static int peer_of[2 * MAX_CONN + 8];
static struct pollfd pfds[2 * MAX_CONN + 1];
static int npfds;

static void fail(const char *what) {
  fprintf(stderr, "error: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int unix_addr(const char *path, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a->sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(a->sun_path, path);
  return 0;
}

static void drop(int i) {
  int fd = pfds[i].fd;
  close(fd);
  pfds[i] = pfds[--npfds];
}

/* Closes both ends of the pair that `fd` belongs to. */
static void close_pair(int fd) {
  int other = peer_of[fd];
  for (int i = npfds - 1; i >= 1; i--)
    if (pfds[i].fd == fd || pfds[i].fd == other) drop(i);
}

/* Moves one recvmsg worth of bytes and fds from `from` to `to`; returns 0 when `from` is done. */
static int forward(int from, int to) {
  static char data[65536];
  static char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  struct iovec iov = {data, sizeof data};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  ssize_t n = recvmsg(from, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 1;
  if (n <= 0) return 0;
  int fds[MAX_FDS], nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    memcpy(fds + nfds, CMSG_DATA(c), (size_t)k * sizeof(int));
    nfds += k;
  }
  size_t off = 0;
  int ok = 1;
  while (off < (size_t)n) {
    struct iovec out = {data + off, (size_t)n - off};
    struct msghdr o = {.msg_iov = &out, .msg_iovlen = 1};
    char ocbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    if (off == 0 && nfds > 0) {
      /* The fds go with the first byte of the chunk they came with, so they never arrive after their message. */
      o.msg_control = ocbuf;
      o.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&o);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t w = sendmsg(to, &o, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        /* Wait for the peer to read: the relay is a benchmark floor, not a robust proxy. */
        struct pollfd p = {.fd = to, .events = POLLOUT};
        poll(&p, 1, -1);
        continue;
      }
      ok = 0;
      break;
    }
    off += (size_t)w;
  }
  /* Our copies of the passed fds are no longer needed once sent (or on failure). */
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int *p = (int *)CMSG_DATA(c);
    for (int i = 0; i < k; i++) close(p[i]);
  }
  return ok;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: relay LISTEN_PATH TARGET_PATH\n");
    return 2;
  }
  struct sockaddr_un la, ta;
  if (unix_addr(argv[1], &la) < 0 || unix_addr(argv[2], &ta) < 0) fail("socket path");
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) fail("socket");
  unlink(argv[1]);
  if (bind(lfd, (struct sockaddr *)&la, sizeof la) < 0) fail("bind");
  if (listen(lfd, 128) < 0) fail("listen");
  puts("ready");
  fflush(stdout);
  pfds[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
  npfds = 1;
  for (;;) {
    if (poll(pfds, (nfds_t)npfds, -1) < 0) {
      if (errno == EINTR) continue;
      fail("poll");
    }
    if (pfds[0].revents & POLLIN) {
      int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      if (c >= 0) {
        int t = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (t < 0 || connect(t, (struct sockaddr *)&ta, sizeof ta) < 0 || npfds + 2 > 2 * MAX_CONN + 1 ||
            t >= (int)(sizeof peer_of / sizeof *peer_of) || c >= (int)(sizeof peer_of / sizeof *peer_of)) {
          fprintf(stderr, "relay: dropping a connection: %s\n", strerror(errno));
          close(c);
          if (t >= 0) close(t);
        } else {
          peer_of[c] = t;
          peer_of[t] = c;
          pfds[npfds++] = (struct pollfd){.fd = c, .events = POLLIN};
          pfds[npfds++] = (struct pollfd){.fd = t, .events = POLLIN};
        }
      }
    }
    for (int i = 1; i < npfds; i++) {
      if (pfds[i].revents == 0) continue;
      int fd = pfds[i].fd;
      pfds[i].revents = 0;
      if (!forward(fd, peer_of[fd])) {
        close_pair(fd);
        i = 0; /* the array changed: rescan; handled fds have revents cleared */
      }
    }
  }
}
