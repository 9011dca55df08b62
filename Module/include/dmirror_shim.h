/*
 * The calls Swift cannot make directly (variadic, unavailable in Swift's
 * Glibc module, or needing a Linux UAPI struct). Each returns the kernel's
 * result, or -errno on failure, and carries no policy: retrying on EINTR
 * and every other decision is the Swift syscall layer's.
 */
#ifndef DMIRROR_SHIM_H
#define DMIRROR_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "dmirror_abi.h"

/* ioctl(2) with a pointer argument; ioctl is variadic. */
int dmirror_sys_ioctl(int fd, unsigned long request, void *arg);

/* mremap(2), variadic in glibc. The new address, or -errno. */
intptr_t dmirror_sys_mremap(void *old_address, size_t old_size, size_t new_size,
			    int flags, void *new_address);

/* fork(2), unavailable to Swift; the caller must be single-threaded. */
pid_t dmirror_sys_fork(void);

/* userfaultfd(2) and pidfd_open(2): no glibc wrappers on Debian 12. */
int dmirror_sys_userfaultfd(int flags);
int dmirror_sys_pidfd_open(pid_t pid);

/* process_mrelease(2) (Linux 5.15): no glibc wrapper on Debian 12. */
int dmirror_sys_process_mrelease(int pidfd);

/* getrandom(2) without flags; sys/random.h is not in Swift's Glibc module. */
long dmirror_sys_getrandom(void *buffer, size_t length);

/* eventfd(0, EFD_CLOEXEC); sys/eventfd.h is not in Swift's Glibc module. */
int dmirror_sys_eventfd(void);

/* mallopt(3), which Swift's Glibc module does not import. */
int dmirror_sys_mallopt(int param, int value);
extern const int dmirror_M_TRIM_THRESHOLD;
extern const int dmirror_M_TOP_PAD;
extern const int dmirror_M_MMAP_THRESHOLD;

/* major(3)/minor(3) of a device number (macros in sys/sysmacros.h). */
unsigned int dmirror_dev_major(dev_t dev);
unsigned int dmirror_dev_minor(dev_t dev);

/* strerrorname_np(3): "EINVAL" for EINVAL; NULL for a number without a name. */
const char *dmirror_errno_name(int err);

/* A CPU loop that only a signal ends (hmm_cow_in_device's child). */
void dmirror_spin_forever(void) __attribute__((noreturn));

/* userfaultfd ioctls: UFFDIO_API, UFFDIO_REGISTER (MISSING mode), UFFDIO_COPY. */
int dmirror_uffd_api(int uffd);
int dmirror_uffd_register_missing(int uffd, uint64_t start, uint64_t len);
int dmirror_uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len);
/* sizeof(struct uffd_msg), and the fault address of one (0 when it is not a page fault). */
extern const size_t dmirror_uffd_msg_size;
uint64_t dmirror_uffd_msg_fault_address(const void *msg);

/* gup_test (mm/gup_test.h): one GUP/PIN call over [addr, addr+size). */
int dmirror_gup_test(int fd, int which, uint64_t addr, uint64_t size,
		     uint32_t gup_flags, uint32_t nr_pages_per_call);

#endif /* DMIRROR_SHIM_H */
