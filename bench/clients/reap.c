/*
 * Runs a command as a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so that grandchildren orphaned when a peer is
 * stopped (waypipe's per-connection forks, weston's shell clients) are reaped here instead of becoming zombies of
 * PID 1, which does not reap on these VMs. Exits with the command's status once no descendant is left.
 * usage: reap COMMAND [ARGS...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child;

/* SIGTERM/SIGINT aimed at this process alone go on to the command; the handler is reset by exec in the child. */
static void forward(int sig) {
  if (child > 0) kill(child, sig);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: reap COMMAND [ARGS...]\n");
    return 2;
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) perror("reap: prctl(PR_SET_CHILD_SUBREAPER)");
  struct sigaction sa = {.sa_handler = forward};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("reap: fork");
    return 1;
  }
  if (pid == 0) {
    execvp(argv[1], argv + 1);
    fprintf(stderr, "reap: %s: %s\n", argv[1], strerror(errno));
    _exit(127);
  }
  child = pid;
  int status = 0, main_status = 0;
  for (;;) {
    pid_t w = wait(&status);
    if (w < 0) {
      if (errno == EINTR) continue;
      break; /* ECHILD: nothing left */
    }
    if (w == pid) main_status = status;
  }
  if (WIFEXITED(main_status)) return WEXITSTATUS(main_status);
  return 128 + WTERMSIG(main_status);
}
