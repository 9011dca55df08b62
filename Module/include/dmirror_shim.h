/*
 * Thin wrappers for the calls Swift cannot make directly. Each returns the
 * kernel's result, or -errno on failure; none of them carries policy.
 */
#ifndef DMIRROR_SHIM_H
#define DMIRROR_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "dmirror_abi.h"

/* ioctl(2) with a dmirror command; ioctl is variadic, so Swift cannot call it. */
int dmirror_shim_ioctl_cmd(int fd, unsigned long request, struct dmirror_cmd *cmd);

/* ioctl(2) with an arbitrary pointer argument (gup_test, userfaultfd). */
int dmirror_shim_ioctl_ptr(int fd, unsigned long request, void *arg);

/* mremap(2), variadic in glibc. Returns the new address, or -errno cast to intptr_t. */
intptr_t dmirror_shim_mremap(void *old_address, size_t old_size, size_t new_size,
			     int flags, void *new_address);

/* userfaultfd(2): there is no glibc wrapper on Debian 12. */
int dmirror_shim_userfaultfd(int flags);

/* open(2) with a mode, variadic in glibc (O_TMPFILE needs the mode). */
int dmirror_shim_open(const char *path, int flags, unsigned int mode);

/* eventfd(0, EFD_CLOEXEC); sys/eventfd.h is not in Swift's Glibc module. */
int dmirror_shim_eventfd(void);

/* fork(2) is unavailable to Swift on Linux; the caller must be single-threaded. */
pid_t dmirror_shim_fork(void);

/* A CPU loop that only a signal ends (hmm_cow_in_device's child). */
void dmirror_shim_spin_forever(void) __attribute__((noreturn));

/* setpgid(0, 0), so a case's whole process group can be killed on timeout. */
int dmirror_shim_new_process_group(void);

/* mallopt(3), which Swift's Glibc module does not import. */
int dmirror_shim_mallopt(int param, int value);
extern const int dmirror_shim_M_TRIM_THRESHOLD;
extern const int dmirror_shim_M_TOP_PAD;
extern const int dmirror_shim_M_MMAP_THRESHOLD;

/* Constants Swift's Glibc overlay does not export. */
extern const int dmirror_shim_MAP_FIXED_NOREPLACE;
extern const int dmirror_shim_MREMAP_MAYMOVE;
extern const int dmirror_shim_MREMAP_FIXED;
extern const int dmirror_shim_MREMAP_DONTUNMAP;
extern const int dmirror_shim_MADV_COLLAPSE;
extern const int dmirror_shim_O_TMPFILE;

/* userfaultfd(2) ABI, named here so Swift does not need linux/userfaultfd.h. */
struct dmirror_uffd_fault {
	uint64_t address; /* faulting address, 0 when the message is not a page fault */
	uint64_t flags;
};

int dmirror_shim_uffd_api(int uffd);
int dmirror_shim_uffd_register_missing(int uffd, uint64_t start, uint64_t len);
/* Waits until uffd has a message or stop_fd is readable. 1: fault read into *out;
 * 0: stop_fd fired; -errno on error. */
int dmirror_shim_uffd_wait(int uffd, int stop_fd, struct dmirror_uffd_fault *out);
int dmirror_shim_uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len);

/* gup_test (mm/gup_test.h): one GUP/PIN call over [addr, addr+size). */
enum {
	DMIRROR_GUP_FAST_BENCHMARK     = 1,
	DMIRROR_PIN_FAST_BENCHMARK     = 2,
	DMIRROR_PIN_LONGTERM_BENCHMARK = 3,
	DMIRROR_GUP_BASIC_TEST         = 4,
};
int dmirror_shim_gup_test(int fd, int which, uint64_t addr, uint64_t size,
			  uint32_t gup_flags, uint32_t nr_pages_per_call);

#endif /* DMIRROR_SHIM_H */
