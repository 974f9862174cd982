// systemd socket activation: takes the listening fds passed in LISTEN_FDS/LISTEN_PID (as sd_listen_fds does).
import { CrosswayError } from "../errors.ts";
import { native } from "../native.ts";

/** The first inherited fd (SD_LISTEN_FDS_START in systemd's sd-daemon.h). */
export const LISTEN_FDS_START = 3;

/** One inherited listening socket: its fd and the name from LISTEN_FDNAMES ("unknown" when absent). */
export interface ListenFd {
  fd: number;
  name: string;
}

/**
 * Returns the fds systemd passed to this process, made non-blocking and close-on-exec, and removes LISTEN_PID,
 * LISTEN_FDS and LISTEN_FDNAMES from `env` so children don't inherit them (sd_listen_fds(unset_environment=1)).
 * Returns [] when LISTEN_PID is unset or names another process (the variables were meant for a parent).
 */
export function takeListenFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): ListenFd[] {
  const pidText = env.LISTEN_PID;
  const countText = env.LISTEN_FDS;
  const namesText = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pidText === undefined || countText === undefined) return [];
  if (!/^\d+$/.test(pidText)) {
    throw new CrosswayError("CW_LISTEN_FDS", `LISTEN_PID is not a pid: '${pidText}'`, { value: pidText });
  }
  if (Number(pidText) !== pid) return [];
  if (!/^\d+$/.test(countText) || Number(countText) > 1024) {
    throw new CrosswayError("CW_LISTEN_FDS", `LISTEN_FDS is not a count: '${countText}'`, {
      value: countText,
    });
  }
  const count = Number(countText);
  const names = namesText === undefined ? [] : namesText.split(":");
  const out: ListenFd[] = [];
  for (let i = 0; i < count; i++) {
    const fd = LISTEN_FDS_START + i;
    try {
      native.setNonblockCloexec(fd);
    } catch (err) {
      throw new CrosswayError(
        "CW_LISTEN_FDS",
        `LISTEN_FDS=${count} but fd ${fd} is not open`,
        { value: fd },
        {
          cause: err,
        },
      );
    }
    out.push({ fd, name: names[i] ?? "unknown" });
  }
  return out;
}
