// Proxy commands turn off the event loop's idle-time metrics at start: the loop then sleeps in one syscall, not two.
import type { Logger } from "pino";
import { native } from "../native.ts";

/**
 * Called once by every long-running proxy command before it serves. The metrics only feed
 * performance.eventLoopUtilization(), which crossway never reads; with them on, each sleep of the loop costs an extra
 * empty epoll_pwait and two clock reads (native/src/event_loop.cc has the figures).
 */
export function stopLoopIdleMetrics(log: Logger): void {
  const stopped = native.stopLoopIdleMetrics();
  log.debug(
    { stopped },
    stopped ? "event loop idle-time metrics off" : "event loop idle-time metrics left as they are",
  );
}
