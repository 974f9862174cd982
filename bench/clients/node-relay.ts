// The JavaScript floor of a proxy hop: crossway's own Unix-socket relay (src/trace/socket-relay.ts, the one under
// `crossway trace`) with no observer, so bytes and fds are forwarded and nothing is parsed. Its loop is tuned as
// crossway's proxies tune theirs (idle-time metrics off, src/commands/loop-metrics.ts), so the floor stays a floor.
// usage: node --import tsx bench/clients/node-relay.ts LISTEN_PATH TARGET_PATH  (prints "ready"; runs until killed)
import { native } from "../../src/native.ts";
import { SocketRelay } from "../../src/trace/socket-relay.ts";

const [listenPath, targetPath] = process.argv.slice(2);
if (listenPath === undefined || targetPath === undefined) {
  process.stderr.write("usage: node-relay LISTEN_PATH TARGET_PATH\n");
  process.exit(2);
}
native.stopLoopIdleMetrics();
new SocketRelay(listenPath, targetPath);
process.stdout.write("ready\n");
