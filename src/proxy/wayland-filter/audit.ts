// The Wayland filter's audit log: one pino line per refusal, naming the VM, client, object, message and rule.
import { componentLogger, type Logger } from "../../log.ts";

/** What the filter did: refused a request (dropped, the client goes on), ended the connection, or slowed it. */
export type WlAuditAction = "dropped" | "disconnected" | "throttled";

/** One audit record. Never payload bytes: strings a client sent (titles, mime types) are not logged either. */
export interface WlAuditRecord {
  readonly vm: string;
  readonly client: string;
  /** `interface@id` of the object the message was sent to. */
  readonly object: string;
  /** The request's name (e.g. `bind`, `set_selection`). */
  readonly message: string;
  /** The policy rule that refused it, e.g. `globals`, `clipboard`, `quotas.objects`, `protocol`. */
  readonly rule: string;
  readonly action: WlAuditAction;
  /** Why, with the figures (limits, versions), never the payload. */
  readonly detail: string;
}

/** Receives audit records; the default writes them to pino at warn level (so they show with the default level). */
export type WlAuditSink = (rec: WlAuditRecord) => void;

const auditLog: Logger = componentLogger("wayland-filter", { audit: true });

/** The default sink: `{"audit":true,"vm":...,"client":...,"object":...,"message":...,"rule":...,"action":...}`. */
export const pinoWlAuditSink: WlAuditSink = (rec) => {
  auditLog.warn(rec, `${rec.action} ${rec.object}.${rec.message}: ${rec.rule}`);
};
