// SIGHUP reload: re-read a command's policy file; a bad file is refused with its error and the old policy stays.

/** What a reload reports: the new generation, or the refusal. */
export type ReloadOutcome =
  | { readonly ok: true; readonly generation: number }
  | { readonly ok: false; readonly error: string; readonly generation: number };

/**
 * A policy that can be replaced at run time. `load` reads and validates the file (throwing a CrosswayError that
 * names the file and the problem); `apply` installs the result for connections accepted from now on.
 */
export class Reloadable<T> {
  #current: T;
  #generation = 1;

  constructor(
    initial: T,
    private readonly load: () => T,
    private readonly apply: (value: T, generation: number) => void = () => {},
  ) {
    this.#current = initial;
  }

  get current(): T {
    return this.#current;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Loads the file again; on success installs it with the next generation, on failure keeps the current one. */
  reload(): ReloadOutcome {
    let next: T;
    try {
      next = this.load();
    } catch (err) {
      return {
        ok: false,
        error: err instanceof Error ? err.message : String(err),
        generation: this.#generation,
      };
    }
    this.#current = next;
    this.#generation++;
    this.apply(next, this.#generation);
    return { ok: true, generation: this.#generation };
  }
}

/**
 * Calls `reload` on every SIGHUP and reports each outcome on stdout/stderr in one line (the line a test or an
 * operator waits for: `<command>: reloaded <file> (generation N)` or `<command>: reload refused: <error>`).
 * Returns a function that removes the handler.
 */
export function reloadOnSighup(command: string, file: string, reload: () => ReloadOutcome): () => void {
  const onHup = (): void => {
    const r = reload();
    if (r.ok) process.stdout.write(`crossway ${command}: reloaded ${file} (generation ${r.generation})\n`);
    else
      process.stderr.write(
        `crossway ${command}: reload refused, keeping generation ${r.generation}: ${r.error}\n`,
      );
  };
  process.on("SIGHUP", onHup);
  return () => process.off("SIGHUP", onHup);
}
