// Waits for SIGINT or SIGTERM, the way every long-running subcommand ends (then it closes what it serves).

/** Resolves on the first SIGINT or SIGTERM and removes both handlers, so a second signal kills as usual. */
export function waitForStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
