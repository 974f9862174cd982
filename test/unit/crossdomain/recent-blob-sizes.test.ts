// RecentBlobSizes (src/crossdomain/recent-blob-sizes.ts): the widths a new channel asks ahead, most recent first.
import { describe, expect, it } from "vitest";
import { RecentBlobSizes } from "../../../src/crossdomain/recent-blob-sizes.ts";

describe("RecentBlobSizes", () => {
  it("keeps distinct widths, most recent first, four at most, and counts what was asked and used", () => {
    const s = new RecentBlobSizes();
    expect(s.widths()).toEqual([]);
    for (const w of [65536, 131072, 65536, 1 << 20, 2 << 20, 3 << 20]) s.note(w);
    // 65536 came again after 131072 (moved to the front, not repeated); six notes of five widths keep the last four.
    expect(s.widths()).toEqual([3 << 20, 2 << 20, 1 << 20, 65536]);
    s.note(1 << 20);
    expect(s.widths()).toEqual([1 << 20, 3 << 20, 2 << 20, 65536]);
    s.note(1 << 20);
    expect(s.widths()).toEqual([1 << 20, 3 << 20, 2 << 20, 65536]);
    s.countAsked();
    s.countAsked();
    s.countUsed();
    expect(s.status()).toEqual({ asked: 2, used: 1, widths: [1 << 20, 3 << 20, 2 << 20, 65536] });
    // The status is a copy: what a reader holds does not change under it.
    const st = s.status();
    s.note(4096);
    expect(st.widths).toEqual([1 << 20, 3 << 20, 2 << 20, 65536]);
  });
});
