// The filter's audit log: one structured pino line per refusal, naming connection, interface, method and reason.
import { componentLogger, type Logger } from "../../log.ts";

/** What the filter did about a message. */
export type AuditAction = "denied" | "substituted" | "stripped" | "disconnected" | "throttled";

/** One audit record (never payload bytes; pipewire.md §7.8 asks for a hexdump only under an explicit flag). */
export interface AuditRecord {
  readonly conn: string;
  readonly dir: "C->S" | "S->C";
  readonly iface: string;
  readonly method: string;
  readonly id: number;
  readonly seq: number;
  readonly reason: string;
  readonly action: AuditAction;
  readonly detail?: string;
}

/** Receives audit records; the default writes them to pino at warn level. Tests may pass their own sink. */
export type AuditSink = (rec: AuditRecord) => void;

const auditLog: Logger = componentLogger("pipewire-filter", { audit: true });

/** The default sink: `{"audit":true,"conn":...,"iface":...,"method":...,"reason":...,"action":...}`. */
export const pinoAuditSink: AuditSink = (rec) => {
  auditLog.warn(rec, `${rec.action} ${rec.iface}.${rec.method}: ${rec.reason}`);
};
