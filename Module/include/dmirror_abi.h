/*
 * The user ABI dmirror speaks, stated in C so the compiler checks it:
 * test_hmm's ioctl interface (lib/test_hmm_uapi.h in Linux 7.3) and the
 * Linux UAPI values the Swift side passes to the kernel (mmap, madvise,
 * mremap, gup_test), taken from the system headers. Swift reads every
 * number from here; the static asserts make any drift a compile error.
 */
#ifndef DMIRROR_ABI_H
#define DMIRROR_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/mman.h>
#include <linux/mman.h>

/* The one argument every dmirror ioctl takes (40 bytes, no padding). */
struct dmirror_cmd {
	uint64_t addr;   /* in: page-aligned user address the "device" touches */
	uint64_t ptr;    /* in: user buffer for data, or 1 byte per page for SNAPSHOT */
	uint64_t npages; /* in: page count; HMM_DMIRROR_FLAGS passes its flag word here */
	uint64_t cpages; /* out: pages copied, migrated or snapshotted */
	uint64_t faults; /* out: device fault rounds */
};

_Static_assert(sizeof(struct dmirror_cmd) == 40, "hmm_dmirror_cmd is 40 bytes");
_Static_assert(_Alignof(struct dmirror_cmd) == 8, "hmm_dmirror_cmd is 8-byte aligned");
_Static_assert(offsetof(struct dmirror_cmd, addr) == 0, "addr at 0");
_Static_assert(offsetof(struct dmirror_cmd, ptr) == 8, "ptr at 8");
_Static_assert(offsetof(struct dmirror_cmd, npages) == 16, "npages at 16");
_Static_assert(offsetof(struct dmirror_cmd, cpages) == 24, "cpages at 24");
_Static_assert(offsetof(struct dmirror_cmd, faults) == 32, "faults at 32");

/* _IOWR('H', nr, struct hmm_dmirror_cmd), as asm-generic/ioctl.h composes it. */
static inline uint32_t dmirror_iowr(uint32_t nr)
{
	return (3u << 30) | ((uint32_t)sizeof(struct dmirror_cmd) << 16) | (0x48u << 8) | nr;
}

/* The request numbers (nr) of Linux 7.3, the newest generation. Older
 * generations are stated relative to these in Swift (ABIGeneration). */
enum {
	DMIRROR_NR_READ            = 0x00,
	DMIRROR_NR_WRITE           = 0x01,
	DMIRROR_NR_MIGRATE_TO_DEV  = 0x02,
	DMIRROR_NR_MIGRATE_TO_SYS  = 0x03,
	DMIRROR_NR_SNAPSHOT        = 0x04,
	DMIRROR_NR_EXCLUSIVE       = 0x05,
	DMIRROR_NR_CHECK_EXCLUSIVE = 0x06,
	DMIRROR_NR_RELEASE         = 0x07,
	DMIRROR_NR_FLAGS           = 0x08,
	DMIRROR_NR_READ_UNLOCKED   = 0x09,
};

/* HMM_DMIRROR_MIGRATE_ON_FAULT_TO_DEV of the migrate-on-fault series, which no
 * release carries. Its RFC renumbered the table (inserting at 0x03); rebased on
 * 7.3 and appended, it would be the next free number. Only the simulator's
 * migrate-on-fault variants answer it; every released driver says EINVAL. */
enum {
	DMIRROR_NR_PROPOSED_MIGRATE_ON_FAULT_TO_DEV = 0x0a,
};

/* The numbering before v6.0 inserted MIGRATE_TO_SYS at 0x03. */
enum {
	DMIRROR_NR_V5_MIGRATE         = 0x02,
	DMIRROR_NR_V5_SNAPSHOT        = 0x03,
	DMIRROR_NR_V5_EXCLUSIVE       = 0x04,
	DMIRROR_NR_V5_CHECK_EXCLUSIVE = 0x05,
};

/* HMM_DMIRROR_FLAGS bits (passed in npages). */
#define DMIRROR_FLAG_FAIL_ALLOC (1ull << 0)

/* One byte per page from HMM_DMIRROR_SNAPSHOT. The high nibble is a kind, not bits. */
enum {
	DMIRROR_PROT_ERROR               = 0xFF,
	DMIRROR_PROT_NONE                = 0x00,
	DMIRROR_PROT_READ                = 0x01,
	DMIRROR_PROT_WRITE               = 0x02,
	DMIRROR_PROT_PMD                 = 0x04,
	DMIRROR_PROT_PUD                 = 0x08,
	DMIRROR_PROT_ZERO                = 0x10,
	DMIRROR_PROT_DEV_PRIVATE_LOCAL   = 0x20,
	DMIRROR_PROT_DEV_PRIVATE_REMOTE  = 0x30,
	DMIRROR_PROT_DEV_COHERENT_LOCAL  = 0x40,
	DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50,
};

/* Linux UAPI values from the system headers, under names Swift can import
 * (some are missing from Swift's Glibc overlay, a few from older headers). */
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* asm-generic/mman-common.h, Linux 6.1 */
#endif
enum {
	DMIRROR_UAPI_PROT_READ            = PROT_READ,
	DMIRROR_UAPI_PROT_WRITE           = PROT_WRITE,
	DMIRROR_UAPI_PROT_EXEC            = PROT_EXEC,
	DMIRROR_UAPI_MAP_SHARED           = MAP_SHARED,
	DMIRROR_UAPI_MAP_PRIVATE          = MAP_PRIVATE,
	DMIRROR_UAPI_MAP_FIXED            = MAP_FIXED,
	DMIRROR_UAPI_MAP_ANONYMOUS        = MAP_ANONYMOUS,
	DMIRROR_UAPI_MAP_POPULATE         = MAP_POPULATE,
	DMIRROR_UAPI_MAP_HUGETLB          = MAP_HUGETLB,
	DMIRROR_UAPI_MAP_FIXED_NOREPLACE  = MAP_FIXED_NOREPLACE,
	DMIRROR_UAPI_MADV_DONTNEED        = MADV_DONTNEED,
	DMIRROR_UAPI_MADV_FREE            = MADV_FREE,
	DMIRROR_UAPI_MADV_HUGEPAGE        = MADV_HUGEPAGE,
	DMIRROR_UAPI_MADV_NOHUGEPAGE      = MADV_NOHUGEPAGE,
	DMIRROR_UAPI_MADV_COLLAPSE        = MADV_COLLAPSE,
	DMIRROR_UAPI_MREMAP_MAYMOVE       = MREMAP_MAYMOVE,
	DMIRROR_UAPI_MREMAP_FIXED         = MREMAP_FIXED,
	DMIRROR_UAPI_MREMAP_DONTUNMAP     = MREMAP_DONTUNMAP,
};

/* O_TMPFILE needs _GNU_SOURCE, which only the shim's own file has. */
extern const int dmirror_UAPI_O_TMPFILE;

/* gup_test (mm/gup_test.h): the operations hmm_gup_test uses, and the
 * FOLL_* bits hmm-tests.c copies locally (they are kernel-internal). */
enum {
	DMIRROR_GUP_FAST_BENCHMARK     = 1,
	DMIRROR_PIN_FAST_BENCHMARK     = 2,
	DMIRROR_PIN_LONGTERM_BENCHMARK = 3,
	DMIRROR_GUP_BASIC_TEST         = 4,
	DMIRROR_FOLL_WRITE             = 0x01,
	DMIRROR_FOLL_LONGTERM          = 0x100,
	/* Before v6.2 the FOLL_* flags were #defines in linux/mm.h, and
	 * FOLL_LONGTERM was 0x10000 (0x100 was FOLL_HWPOISON there). */
	DMIRROR_FOLL_LONGTERM_PRE_6_2  = 0x10000,
};

#endif /* DMIRROR_ABI_H */
