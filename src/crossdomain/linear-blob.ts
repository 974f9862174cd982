// A host blob used as a plain byte array (an R8 image of N x 1, crossdomain.md §6.5), created and mapped in one step.
import { CrosswayError } from "../errors.ts";
import type { CrossDomainChannel, HostBlob } from "./channel.ts";
import { DrmFormat } from "./protocol.ts";
import type { RecentBlobSizes } from "./recent-blob-sizes.ts";
import type { BlobMapping } from "./virtgpu.ts";

/** Host blobs are requested in size buckets so that hosts, which never free image templates, see few sizes. */
export function linearBlobBucket(size: number): number {
  const KiB64 = 64 * 1024;
  const MiB = 1024 * 1024;
  if (size <= MiB) return Math.ceil(size / KiB64) * KiB64;
  return Math.ceil(size / MiB) * MiB;
}

/**
 * A host blob of at least `size` bytes (the bucket's, see {@link linearBlobBucket}), not mapped: for callers that
 * map only the windows they use (wl_shm pools, see HostBlob.map). `sizes` remembers the bucket, for channels that ask
 * its requirements ahead of their clients.
 */
export async function createUnmappedLinearBlob(
  channel: CrossDomainChannel,
  size: number,
  sizes?: RecentBlobSizes,
): Promise<HostBlob> {
  const bucket = linearBlobBucket(size);
  sizes?.note(bucket);
  // §6.5: an R8 image of size x 1 is a linear byte array on every host allocator.
  const reqs = await channel.imageRequirements(bucket, 1, DrmFormat.R8);
  if (reqs.size < size) {
    throw new CrosswayError(
      "CW_GUEST_HOST_PROTOCOL",
      `host blob of ${reqs.size} bytes is smaller than the ${size} needed`,
    );
  }
  return channel.createHostBlob(reqs);
}

/**
 * A mapped host blob of at least `size` bytes (its capacity is the bucket's, see {@link linearBlobBucket}): what the
 * guest writes into the mapping is what the host's fd of the blob reads, and the other way round. Used for wl_shm
 * pools and for PipeWire buffers a guest client allocated itself.
 */
export async function createLinearBlob(
  channel: CrossDomainChannel,
  size: number,
): Promise<{ blob: HostBlob; mapping: BlobMapping }> {
  const blob = await createUnmappedLinearBlob(channel, size);
  try {
    return { blob, mapping: await blob.map() };
  } catch (err) {
    blob.close();
    throw err;
  }
}
