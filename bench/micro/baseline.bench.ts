// Machine baselines that bound the shm path: memory copy of a 1080p frame and of a 64x64 region of it.
import { defineMicro } from "./define.ts";

const WIDTH = 1920;
const HEIGHT = 1080;
const STRIDE = WIDTH * 4;
const FRAME = STRIDE * HEIGHT;
const SQ = 64;

// Allocated and touched once: fresh mappings cost ~1.7 µs per 4 KiB page in faults (issue 7), not what we measure.
const src = Buffer.alloc(FRAME, 1);
const dst = Buffer.alloc(FRAME, 2);
let x = 0;

export default defineMicro({
  name: "baseline",
  cases: {
    "copy 1080p ARGB frame (8.3 MB)": () => src.copy(dst, 0, 0, FRAME),
    "copy 64x64 ARGB rect out of a 1080p frame": () => {
      // One row at a time, as a damage-limited copy does; the rect moves so it is not always cache-hot.
      x = (x + 37) % (WIDTH - SQ);
      const base = ((x * 7) % (HEIGHT - SQ)) * STRIDE + x * 4;
      let n = 0;
      for (let row = 0; row < SQ; row++) {
        const off = base + row * STRIDE;
        n += src.copy(dst, off, off, off + SQ * 4);
      }
      return n;
    },
  },
});
