/*
 * The test_hmm driver's user ABI (lib/test_hmm_uapi.h in Linux 7.3), stated
 * for dmirror. The layout is fixed by the kernel; the static asserts below
 * make any drift a compile error rather than a silent corruption.
 */
#ifndef DMIRROR_ABI_H
#define DMIRROR_ABI_H

#include <stddef.h>
#include <stdint.h>

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

/* _IOWR('H', nr, struct hmm_dmirror_cmd), spelled out so Swift can see it. */
#define DMIRROR_IOC_DIR_RW   3u
#define DMIRROR_IOC_TYPE     0x48u /* 'H' */
#define DMIRROR_IOWR(nr) \
	((DMIRROR_IOC_DIR_RW << 30) | ((uint32_t)sizeof(struct dmirror_cmd) << 16) | \
	 (DMIRROR_IOC_TYPE << 8) | (uint32_t)(nr))

/* Request numbers of Linux 7.3 (the newest generation). */
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

_Static_assert(DMIRROR_IOWR(DMIRROR_NR_READ) == 0xC0284800u, "READ request value");
_Static_assert(DMIRROR_IOWR(DMIRROR_NR_READ_UNLOCKED) == 0xC0284809u, "READ_UNLOCKED request value");

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

#endif /* DMIRROR_ABI_H */
