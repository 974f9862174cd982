// Structured logging through pino: quiet by default, never payload bytes unless CROSSWAY_LOG_PAYLOAD=1.
import pino, { type Logger } from "pino";

/** Level from CROSSWAY_LOG (trace|debug|info|warn|error|fatal|silent); "warn" by default so a proxy is quiet. */
const level = process.env.CROSSWAY_LOG ?? "warn";

/** True when the operator explicitly asked for payload bytes in logs. */
export const logPayloads = process.env.CROSSWAY_LOG_PAYLOAD === "1";

/** The root logger, writing JSON lines to stderr so stdout stays free for command output. */
export const rootLogger: Logger = pino({ level, base: { pid: process.pid } }, pino.destination(2));

/** A child logger for one component (`component` is e.g. "guest", "device", "pipewire-filter"). */
export function componentLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ component, ...bindings });
}

export type { Logger };
