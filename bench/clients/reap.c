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

/*
 * The runner stops a peer by signalling its whole process group, so the command gets SIGTERM directly; the reaper
 * only has to survive it to reap what is left. It must not forward the signal: a second SIGTERM would kill a
 * command that handles the first one and then restores the default action (crossway guest/device do), before it
 * has exited cleanly (and, with --cpu-prof, written its profile). A handler rather than SIG_IGN, because an
 * ignored disposition would survive exec into the command.
 */
static void ignore(int sig) { (void)sig; }

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: reap COMMAND [ARGS...]\n");
    return 2;
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) perror("reap: prctl(PR_SET_CHILD_SUBREAPER)");
  struct sigaction sa = {.sa_handler = ignore};
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
