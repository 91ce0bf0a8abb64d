//! Block sizes and memory budgets, one constant per meaning, shared by the native front and the
//! Python application (`ocistore._core.*`), so that the two doors into the core hold the same
//! amount of memory per request and read in the same pieces.

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// A request body is written into its upload in blocks of this size: large enough that hashing
/// and writing run in parallel inside the upload's `write`. An upload receiving a body holds at
/// most three in the front (one written, one waiting, one filling), two in the application.
pub const UPLOAD_BLOCK: usize = 4 * MIB;
/// The blocks of bodies beyond `UPLOAD_LARGE_BODIES_MAX` (still hashed and written in parallel).
pub const UPLOAD_SMALL_BLOCK: usize = 256 * KIB;
/// Bodies received in `UPLOAD_BLOCK`s at the same time, per front and per application worker;
/// the ones beyond use `UPLOAD_SMALL_BLOCK`s, so a burst of pushes holds at most 64 x 12 MiB
/// plus 768 KiB for each further one, instead of 12 MiB each (and the front's spare blocks,
/// `UPLOAD_SPARE_BLOCKS_MAX`, between bodies).
pub const UPLOAD_LARGE_BODIES_MAX: usize = 64;
/// Blocks are written to a file in pieces of at most this size. The kernel sizes the page-cache
/// folios of a buffered write by the write's length, and only folios of up to 32 KiB (order 3,
/// `PAGE_ALLOC_COSTLY_ORDER`) come from the per-CPU lists of recently freed pages. Larger ones
/// are split from the buddy allocator's high-order blocks, which a VM balloon with free page
/// reporting (Firecracker's, for one) hands back to the host as soon as they are free, so every
/// page copied into them faults on the host: the page-cache copy then costs several times the
/// CPU per byte (docs/performance.md). zot writes in 32 KiB pieces too (Go's `io.Copy`).
pub const FILE_WRITE_PIECE: usize = 32 * KIB;
/// A body of at most this many bytes is received whole and written in one call.
pub const UPLOAD_INLINE_MAX: usize = 64 * KIB;
/// Body blocks kept by the front between requests, in bytes of capacity. A block of a MiB or
/// more comes fresh from the allocator, which hands such sizes back to the kernel on free, so
/// every page of it faulted in anew: more of a push's CPU than copying the bytes into it.
pub const UPLOAD_SPARE_BLOCKS_MAX: usize = 16 * MIB;

/// A blob GET reads the blob in blocks of this size, one kept ahead of the socket (the size
/// measured fastest on two cores; 1, 4 and 8 MiB and two blocks ahead were slower).
pub const GET_READ_BLOCK: usize = 2 * MIB;
/// A blob GET (or range) of at most this many bytes is read in one piece on the front's own
/// thread, not on a blocking thread: on two cores the hand-off to the blocking pool and back
/// (two thread wake-ups) costs more CPU than the copy out of the page cache. A read that has
/// to wait for the disk holds that thread meanwhile (the front's other thread takes its
/// queued work); larger GETs keep their reads on the blocking pool, one block ahead.
pub const GET_READ_INLINE_MAX: usize = GET_READ_BLOCK;
/// A ranged read of at most this many bytes is read in one piece (the common 1 MiB range GET).
pub const RANGE_READ_ONCE_MAX: usize = MIB;

/// Reads of a local source file being ingested (`write_from`, `read_from`): large enough that
/// hashing and writing run in parallel.
pub const INGEST_READ_BLOCK: usize = 8 * MIB;
/// Buffers at least this large are hashed on the calling thread while another writes them.
pub const PARALLEL_WRITE_MIN: usize = 256 * KIB;

/// A proxied blob GET from a plain-HTTP object store moves its body through a pipe of this
/// capacity (`front::splice`): the most Linux lets an unprivileged process ask for
/// (`/proc/sys/fs/pipe-max-size`), so one splice(2) moves up to this much.
pub const SPLICE_PIPE: usize = MIB;
/// Proxied GETs of at least this many bytes are spliced: below it the presigned URL and the
/// store connection of their own cost more than the copies they save.
pub const SPLICE_MIN: u64 = MIB as u64;

/// The most an object-store reader fetches in one ranged GET.
pub const OBJECT_READ_BLOCK: usize = 8 * MIB;
